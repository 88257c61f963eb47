"""The life of one message: validate, accept, send, cancel, send now, resend. Every write to messages goes
through these functions.

The API view, the admin, celery-beat and ``manage.py shell`` all call the same ones, so a rule (validation,
enqueue after commit, claim before send) holds whoever asks. Beat's periodic work (due schedules, stuck work,
retention) is in ``messaging/maintenance.py``; the send task and its publisher are in ``messaging/tasks.py``.
"""
import logging
import random
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.celery import new_task_id
from config.overlap import Overlapped
from evolution import instances, throttle
from evolution.client import EvolutionError, SentMessage, TemporaryError, get_client
from messaging import heartbeats, idempotency, metrics, tasks
from messaging.callback_urls import clean_callback_url
from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage, Priority, SendAttempt
from messaging.phones import normalize_phone
from messaging.signals import announce_status, message_sent
from messaging.storable import unstorable

log = logging.getLogger("messaging")

# Far enough for any reminder; near enough that a typo (year 9999) is caught instead of stored.
MAX_SCHEDULE_AHEAD = timedelta(days=10 * 365)
BULK_MAX_MESSAGES = 1000
_CONTROL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # C0 and C1, but tab, LF and CR
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # what normalize_phone returns


# --- accepting -----------------------------------------------------------------------------------------------


def validate_message(
    *,
    phone: str,
    text: str,
    instance: str | None,
    scheduled_at: datetime | None,
    expires_at: datetime | None = None,
    valid_for_seconds: int | None = None,
    callback_url: str | None = None,
    phone_is_normalized: bool = False,
) -> dict:
    """Check a message the way every entry point must; return the cleaned values or raise ValidationError.

    Everything a stored message must satisfy is checked here, whoever calls (API, admin, bulk, shell, beat), so
    none of them can reach a database error. Errors are keyed by field (phone, text, instance, scheduled_at,
    expires_at, valid_for_seconds, callback_url). The cleaned values carry ``expires_at`` (None when the message
    never expires): ``valid_for_seconds`` counts from ``scheduled_at`` when there is one, else from now; and
    ``callback_url`` ("" for none), where its status changes are POSTed (callbacks/). ``phone_is_normalized``:
    the caller's phone is one ``normalize_phone`` already returned (a contact's stored phone), so when it has the
    E.164 shape it is not parsed again: a third of a 100,000-message campaign's preparation.
    """
    errors: dict[str, list[str]] = {}
    cleaned: dict = {}
    for field, value in (("phone", phone), ("text", text), ("instance", instance)):
        if value is not None and not isinstance(value, str):
            errors[field] = ["Not a valid string."]
        elif problem := unstorable(value or ""):
            errors[field] = [problem]
    if "phone" not in errors and phone_is_normalized and _E164.fullmatch(phone or ""):
        cleaned["phone"] = phone
    elif "phone" not in errors:
        try:
            cleaned["phone"] = normalize_phone(phone)
        except ValidationError as error:
            errors["phone"] = error.messages
    if "text" not in errors:
        if not text or not _has_visible_character(text):
            errors["text"] = ["This field may not be blank."]
        elif _CONTROL.search(text):
            errors["text"] = ["Control characters are not allowed (tabs and line breaks are)."]
        elif len(text) > settings.MESSAGING_MAX_TEXT_LENGTH:
            errors["text"] = [
                f"Ensure this field has no more than {settings.MESSAGING_MAX_TEXT_LENGTH} characters "
                f"(it has {len(text)})."
            ]
    cleaned["text"] = text
    cleaned["instance"] = instance or settings.EVOLUTION_INSTANCE_NAME
    if "instance" not in errors and cleaned["instance"] not in settings.EVOLUTION_INSTANCES:
        errors["instance"] = [
            f'Unknown instance "{cleaned["instance"]}". Known: {", ".join(settings.EVOLUTION_INSTANCES)}.'
        ]
    if scheduled_at is not None:
        try:
            scheduled_at = _as_utc(scheduled_at)
        except (OverflowError, ValueError):  # out of range once in UTC (year 1 at +01:00, year 9999 at -01:00)
            errors["scheduled_at"] = [f"The send time must be within {MAX_SCHEDULE_AHEAD.days // 365} years."]
        else:
            if scheduled_at <= timezone.now():
                errors["scheduled_at"] = ["The send time must be in the future."]
            elif scheduled_at > timezone.now() + MAX_SCHEDULE_AHEAD:
                errors["scheduled_at"] = [f"The send time must be within {MAX_SCHEDULE_AHEAD.days // 365} years."]
    cleaned["scheduled_at"] = scheduled_at
    cleaned["expires_at"] = _clean_expiry(errors, expires_at, valid_for_seconds, scheduled_at)
    try:
        cleaned["callback_url"] = clean_callback_url(callback_url)
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    return cleaned


def _clean_expiry(errors: dict, expires_at, valid_for_seconds, scheduled_at) -> datetime | None:
    """The moment after which the message must not be sent, from either way of giving it (never both)."""
    if expires_at is not None and valid_for_seconds is not None:
        errors["valid_for_seconds"] = ["Give expires_at or valid_for_seconds, not both."]
        return None
    if expires_at is None and valid_for_seconds is None:
        return None  # the usual case: no clock read for it
    starts = scheduled_at if isinstance(scheduled_at, datetime) and "scheduled_at" not in errors else timezone.now()
    if valid_for_seconds is not None:
        if isinstance(valid_for_seconds, bool) or not isinstance(valid_for_seconds, int) or valid_for_seconds < 1:
            errors["valid_for_seconds"] = ["A whole number of seconds, 1 or more."]
            return None
        if valid_for_seconds > MAX_SCHEDULE_AHEAD.total_seconds():
            errors["valid_for_seconds"] = [f"At most {MAX_SCHEDULE_AHEAD.days // 365} years' worth of seconds."]
            return None
        return starts + timedelta(seconds=valid_for_seconds)
    if expires_at is None:
        return None
    try:
        expires_at = _as_utc(expires_at)
    except (OverflowError, ValueError):
        errors["expires_at"] = [f"The expiry must be within {MAX_SCHEDULE_AHEAD.days // 365} years of the send time."]
        return None
    if expires_at <= timezone.now():
        errors["expires_at"] = ["The expiry must be in the future."]
    elif expires_at <= starts:
        errors["expires_at"] = ["The expiry must be after the send time (scheduled_at)."]
    elif expires_at > starts + MAX_SCHEDULE_AHEAD:
        errors["expires_at"] = [f"The expiry must be within {MAX_SCHEDULE_AHEAD.days // 365} years of the send time."]
    return expires_at


def _has_visible_character(text: str) -> bool:
    # Zero-width spaces and joiners (Cf) and control characters show nothing: a text of only those is blank.
    return any(not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Cc") for ch in text)


def _as_utc(moment: datetime) -> datetime:
    # In UTC before it is stored: PostgreSQL refuses offsets past +/-15:59, which Python accepts.
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment.astimezone(dt_timezone.utc)


def accept_message(
    *,
    phone: str,
    text: str,
    instance: str | None = None,
    scheduled_at: datetime | None = None,
    expires_at: datetime | None = None,
    valid_for_seconds: int | None = None,
    idempotency_key: idempotency.Key | None = None,
    created_by=None,
    resend_of: OutboundMessage | None = None,
    source: str = "",
    callback_url: str | None = None,
) -> tuple[OutboundMessage, bool]:
    """Validate and store a message, then publish its send task once the row is committed.

    Returns ``(message, created)``. With an ``idempotency_key`` seen before, the first message is returned and
    nothing is created, even if the request would no longer validate (its send time has passed); the same key
    with another request raises ``idempotency.KeyReused``. A scheduled message waits in the database until beat
    releases it. A message given ``expires_at`` or ``valid_for_seconds`` and not sent by then ends ``expired``,
    never sent. Callers make keys with ``idempotency`` (``clean_key`` for a client's, in its scope). With a
    ``callback_url``, each status change is POSTed there (callbacks/).
    """
    fingerprint = ""
    if idempotency_key:
        fingerprint = idempotency.fingerprint(
            phone=phone, text=text, instance=instance, scheduled_at=scheduled_at,
            expires_at=expires_at, valid_for_seconds=valid_for_seconds, callback_url=callback_url,
        ) if idempotency_key.fingerprinted else ""
        existing = idempotency.find_earlier(idempotency_key, fingerprint)
        if existing is not None:
            return existing, False
    cleaned = validate_message(
        phone=phone, text=text, instance=instance, scheduled_at=scheduled_at,
        expires_at=expires_at, valid_for_seconds=valid_for_seconds, callback_url=callback_url,
    )
    message = _new_message(
        cleaned,
        idempotency_scope=idempotency_key.scope if idempotency_key else "",
        idempotency_key=idempotency_key.value if idempotency_key else None,
        request_fingerprint=fingerprint,
        created_by=created_by,
        resend_of=resend_of,
        source=source,
    )
    try:
        # The INSERT commits on its own (autocommit: one round trip, where BEGIN ... COMMIT took two); a savepoint
        # only inside a caller's transaction, so that a lost idempotency race does not break it.
        with transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext():
            OutboundMessage.objects.insert_one(message)
    except IntegrityError:
        if not idempotency_key:
            raise
        # Two requests with one key raced; the other one won.
        return idempotency.find_earlier(idempotency_key, fingerprint), False
    if message.status == MessageStatus.QUEUED:
        transaction.on_commit(lambda: tasks.publish_send(message))  # at once, or when the caller's transaction commits
    log.info(
        "message=%s accepted phone=%s instance=%s status=%s scheduled_at=%s expires_at=%s",
        message.pk, message.phone, message.instance, message.status, message.scheduled_at, message.expires_at,
    )
    metrics.message_accepted(instance=message.instance)
    return message, True


def _new_message(cleaned: dict, *, bulk: bool = False, **fields) -> OutboundMessage:
    """An unsaved message from validated values. A scheduled one waits with no task; any other gets its task id
    now, so the answer can carry it without a second write after publishing. A single send goes out as
    transactional; a bulk item or a scheduled release as bulk, behind the single sends."""
    scheduled = cleaned["scheduled_at"] is not None
    return OutboundMessage.build(
        **cleaned,
        status=MessageStatus.SCHEDULED if scheduled else MessageStatus.QUEUED,
        priority=Priority.BULK if bulk or scheduled else Priority.TRANSACTIONAL,
        task_id="" if scheduled else new_task_id(),
        **fields,
    )


# --- accepting in bulk ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkItemResult:
    """One item of a bulk request: the stored (or earlier) message, or the field errors that kept it out."""

    message: OutboundMessage | None = None
    errors: dict[str, list[str]] | None = None
    created: bool = True


def accept_messages(
    *, items: Sequence[dict], created_by=None, source: str = "", one_request: bool = False,
    phones_are_normalized: bool = False, overlap: Overlapped | None = None,
) -> list[BulkItemResult]:
    """Validate each item on its own like ``accept_message``; store the valid ones and publish them after commit.

    ``items`` are dicts with ``phone``, ``text`` and optionally ``instance``, ``scheduled_at``, ``expires_at`` or
    ``valid_for_seconds``, and ``idempotency_key`` (an ``idempotency.Key``; a campaign's "run 7, contact 42" is a
    ``MessageKey``, so a re-run makes nothing twice). Rejected items write
    nothing; the accepted ones are inserted in one statement and their tasks published in one batch once the rows
    are committed (the same guarantees as one message: row first, publish after commit). An item whose key was
    seen before returns that message with ``created=False``; one first used for another request is an error on
    its item, or, with ``one_request`` (the keys of one keyed bulk request), ``idempotency.KeyReused`` raised
    before anything is written. ``phones_are_normalized``: every phone is ``normalize_phone``'s own output (see
    ``validate_message``). Returns one result per item, in order. A ``MessageKey`` is looked up only when storing
    it conflicts (its caller left out the messages it made already), a request's key always first.

    With ``overlap`` (the campaign fan-out) the rows are stored on its connection while the caller goes on, and
    the results are those known before storing: an item whose key turns out to be taken when storing (a run
    triggered twice) is then settled there, in the background, as it would be here.
    """
    if len(items) > BULK_MAX_MESSAGES:
        raise ValidationError({"messages": [f"Send at most {BULK_MAX_MESSAGES} messages per request."]})
    options = dict(created_by=created_by, source=source, one_request=one_request, phones_are_normalized=phones_are_normalized)
    results, accepted = _accept_messages(items, **options)
    if accepted and overlap is not None:
        if not overlap.inline:
            OutboundMessage.objects.reserve_pks(accepted)  # here: one round trip less on the storing thread
        overlap.submit(_store, accepted, items, options)
    elif accepted:
        results = _store(accepted, items, options) or results
    return results


def _accept_messages(
    items: Sequence[dict], *, created_by, source: str, one_request: bool, phones_are_normalized: bool,
    look_up_every_key: bool = False,
) -> tuple[list[BulkItemResult], list[OutboundMessage]]:
    """The results of validating ``items``, and the new messages among them (not stored yet)."""
    earlier = idempotency.find_all_earlier([
        key for item in items if (key := item.get("idempotency_key")) and (key.fingerprinted or look_up_every_key)
    ])
    results: list[BulkItemResult] = []
    accepted: list[OutboundMessage] = []
    now = timezone.now()
    for item in items:
        key = item.get("idempotency_key") or None
        fingerprint = idempotency.fingerprint(
            phone=item.get("phone"), text=item.get("text"), instance=item.get("instance"),
            scheduled_at=item.get("scheduled_at"), expires_at=item.get("expires_at"),
            valid_for_seconds=item.get("valid_for_seconds"), callback_url=item.get("callback_url"),
        ) if key and key.fingerprinted else ""
        if key in earlier:
            try:
                idempotency.ensure_same_request(earlier[key], fingerprint)
            except idempotency.KeyReused as reused:
                if one_request:
                    raise
                results.append(BulkItemResult(errors={"idempotency_key": [str(reused)]}))
            else:
                results.append(BulkItemResult(message=earlier[key], created=False))
            continue
        try:
            cleaned = validate_message(
                phone=item.get("phone"), text=item.get("text"), instance=item.get("instance"),
                scheduled_at=item.get("scheduled_at"), expires_at=item.get("expires_at"),
                valid_for_seconds=item.get("valid_for_seconds"), callback_url=item.get("callback_url"),
                phone_is_normalized=phones_are_normalized,
            )
        except ValidationError as error:
            results.append(BulkItemResult(errors=error.message_dict))
            continue
        message = _new_message(
            cleaned, bulk=True, idempotency_scope=key.scope if key else "", idempotency_key=key.value if key else None,
            request_fingerprint=fingerprint, created_by=created_by, source=source,
            created_at=now, updated_at=now,
        )
        if key:
            earlier[key] = message  # the same key twice in one request is one message
        accepted.append(message)
        results.append(BulkItemResult(message=message))
    return results, accepted


def _store(accepted: list[OutboundMessage], items: Sequence[dict], options: dict) -> list[BulkItemResult] | None:
    """Insert ``accepted`` in one statement and publish the queued ones after commit. If a key is taken (another
    request stored it meanwhile, or a ``MessageKey``'s message exists), accept ``items`` again with every key
    looked up, which finds it, and return those results instead."""
    try:
        _insert(accepted, rejected=len(items) - len(accepted))
    except IntegrityError:
        results, accepted = _accept_messages(items, **options, look_up_every_key=True)
        if accepted:
            _insert(accepted, rejected=len(items) - len(accepted))
        return results
    return None


def _insert(accepted: list[OutboundMessage], *, rejected: int) -> None:
    with transaction.atomic():
        OutboundMessage.objects.insert_many(accepted)  # PostgreSQL and SQLite set the pks
        queued = [message for message in accepted if message.status == MessageStatus.QUEUED]
        if queued:
            transaction.on_commit(lambda: tasks.publish_sends(queued))
    for instance, count in Counter(message.instance for message in accepted).items():
        metrics.message_accepted(instance=instance, count=count)
    log.info("messages=%s accepted in bulk rejected=%s", tasks.id_ranges(accepted), rejected)


# --- sending -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendOutcome:
    message_id: int
    status: str  # the message's status after this try, "skipped" when this caller did not own it, or "deferred"
    attempt: int | None = None
    retry_in: float | None = None
    paced_until: float | None = None  # a deferred send's reserved slot (epoch seconds): it goes then, unasked

    def as_dict(self) -> dict:
        return asdict(self)


def send_message(*, message_id: int, task_id: str = "", paced_until: float | None = None) -> SendOutcome:
    """Make one attempt at sending a queued or retrying message through Evolution API.

    The claim is a conditional UPDATE, so with many workers (or a task delivered twice) exactly one caller
    sends. A claimed message whose instance is paused, or whose paced slot is still ahead, is handed back
    ("deferred", no attempt spent) with the time to come back; so is one whose attempt fails because its instance
    turns out to be disconnected (the attempt stays, not counted). The attempt row is written before the HTTP call,
    so even a crash mid-call leaves a trace. After an attempt that may have reached WhatsApp (timeout, reset,
    worker crash) the next one asks findMessages first and does not send again if WhatsApp already has it.
    """
    claimed_at = time.monotonic()
    worker = heartbeats.current_worker()
    message, attempt = OutboundMessage.objects.claim_and_start(
        message_id, task_id=task_id, worker=worker, instances=_unhindered_instances()
    )
    if message is None:
        if expire_message(message_id=message_id):  # not claimed because it is overdue: it is never sent
            return SendOutcome(message_id=message_id, status=MessageStatus.EXPIRED)
        log.info("message=%s task=%s skipped: not queued or due (sent, cancelled or owned elsewhere)", message_id, task_id)
        return SendOutcome(message_id=message_id, status="skipped")
    client = get_client()  # before the pace's spacing check: a thread's first send builds its client
    if attempt is None:  # its instance is paced or paused (or unknown): may it go now?
        hold = _hold(message, paced_until)
        if hold is not None:
            return hold
        attempt = SendAttempt.objects.start(message=message, task_id=task_id, worker=worker)
    must_reconcile = attempt.number > 1 and SendAttempt.objects.maybe_sent(message_id=message.pk, number=attempt.number - 1)
    checked = False
    try:
        found = None
        if must_reconcile:
            found = _find_already_sent(client, message)
            checked = True
        if found is None:
            _ensure_time_to_send(claimed_at)
        sent = found or client.send_text(instance=message.instance, number=message.phone, text=message.text)
    except EvolutionError as error:
        still_unknown = must_reconcile and not checked
        # A dead WhatsApp connection (or an unreachable Evolution) would fail every send of this instance: stop
        # them until it is back, and do not count this attempt: the instance failed, not the message. (After a
        # timeout Evolution is slow, and asking it would wait again.)
        if error.retryable and error.kind != "timeout" and instances.pause_if_disconnected(message.instance):
            return _record_paused(message, attempt, error, still_unknown=still_unknown)
        last_try = not (error.retryable and message.counted_attempts <= settings.MESSAGING_MAX_RETRIES)
        if last_try and error.maybe_sent:
            # Before giving up for good, ask once more: a timed-out last try may have gone out, and a "failed"
            # message invites an operator to resend it.
            found = _find_quietly(client, message)
            if found is not None:
                return _record_success(message, attempt, found, reconciled=True)
        return _record_failure(message, attempt, error, still_unknown=still_unknown)
    return _record_success(message, attempt, sent, reconciled=found is not None)


def expire_message(*, message_id: int) -> bool:
    """End a waiting message whose ``expires_at`` has passed as ``expired``. False when it is not overdue, or is
    no longer waiting (an attempt in flight finishes normally: it may already have reached WhatsApp)."""
    if not OutboundMessage.objects.expire(message_id):
        return False
    instance, callback_url = OutboundMessage.objects.filter(pk=message_id).values_list(
        "instance", "callback_url"
    ).first() or ("", "")
    announce_status(message_id=message_id, status=MessageStatus.EXPIRED, at=timezone.now(), callback_url=callback_url)
    log.warning("message=%s instance=%s expired: not sent before its expires_at; never sent", message_id, instance)
    metrics.messages_expired(instance=instance or "")
    return True


def _unhindered_instances() -> list[str]:
    """The configured instances whose sends nothing may hold back now: not paced, and not paused as last read
    (at most a second ago, as ``_hold`` reads it). A claim of one of their messages starts its attempt in the
    same statement; any other goes through ``_hold`` first."""
    return [name for name in settings.EVOLUTION_INSTANCES
            if throttle.interval_for(name) is None and instances.paused_reason(name) is None]


# A deferred send without a reserved slot comes back at most this much later (it waits in a worker's memory,
# and must come back well before the stuck-work sweeper would take it for lost).
MAX_DEFER_SECONDS = 60.0


def _hold(message: OutboundMessage, paced_until: float | None) -> SendOutcome | None:
    """Why this claimed message may not be sent now, as a deferred outcome (the claim undone); None to send."""
    reason = instances.paused_reason(message.instance)
    if reason is not None:
        return _defer(message, instances.PAUSE_RECHECK_SECONDS, None, f"instance paused: {reason}")
    if paced_until is not None and time.time() >= paced_until - 0.05:
        return _spaced(message)  # this send's slot, reserved when it was deferred, has come
    slot = throttle.reserve(message.instance, bulk=message.priority == Priority.BULK)
    if slot.reserved and slot.wait <= 0.05:
        return _spaced(message)
    if slot.reserved:
        return _defer(message, slot.wait, time.time() + slot.wait, "paced")
    # No slot within reach: come back later, at a random moment so the waiting sends do not all return at once.
    return _defer(message, min(slot.wait, MAX_DEFER_SECONDS) * random.uniform(0.5, 1.0), None, "paced, backlog")


# A send too close behind the previous one waits this long at most in the worker; beyond it, it is deferred.
SPACING_SLEEP_MAX_SECONDS = 1.0


def _spaced(message: OutboundMessage) -> SendOutcome | None:
    """Let a paced send start only far enough behind the instance's previous one (see evolution.throttle)."""
    for _ in range(3):  # bounded: under contention another sender may take the gap again
        wait = throttle.spacing_wait(message.instance)
        if wait <= 0:
            return None
        if wait > SPACING_SLEEP_MAX_SECONDS:
            break
        time.sleep(wait)
    return _defer(message, wait, time.time() + wait, "paced, spacing")


def _defer(message: OutboundMessage, wait: float, paced_until: float | None, why: str) -> SendOutcome:
    until = timezone.now() + timedelta(seconds=wait)
    if not OutboundMessage.objects.defer(message.pk, attempt=message.attempt_count, until=until):
        return SendOutcome(message_id=message.pk, status="skipped")
    log.info("message=%s instance=%s deferred %.1fs (%s); no attempt spent", message.pk, message.instance, wait, why)
    return SendOutcome(message_id=message.pk, status="deferred", retry_in=wait, paced_until=paced_until)


def _ensure_time_to_send(claimed_at: float) -> None:
    """Refuse to start a send that could still be running when the sweeper takes this claim for dead.

    The sweeper re-queues a message that has been `sending` for MESSAGING_STUCK_AFTER_SECONDS; if this worker
    were still inside its HTTP call then, the next attempt could send the message a second time. A send takes
    at most the connect plus the read timeout, so it may only start while that much time is left.
    """
    longest_send = settings.EVOLUTION_CONNECT_TIMEOUT_SECONDS + settings.EVOLUTION_TIMEOUT_SECONDS
    if time.monotonic() - claimed_at > settings.MESSAGING_STUCK_AFTER_SECONDS - 2 * longest_send:
        raise TemporaryError(
            "checking Evolution API before resending took too long; not sending in this attempt", kind="timeout"
        )


def _find_quietly(client, message: OutboundMessage) -> SentMessage | None:
    try:
        return _find_already_sent(client, message)
    except EvolutionError:
        return None


# Evolution stamps messages with its own clock; allow for skew between its host and ours.
CLOCK_SKEW = timedelta(minutes=2)


def _find_already_sent(client, message: OutboundMessage) -> SentMessage | None:
    """Did one of this message's earlier attempts reach WhatsApp? Look from its first attempt on, and never
    take another message of ours with the same text to the same number for this one."""
    since = SendAttempt.objects.first_started_at(message.pk) - CLOCK_SKEW
    others = OutboundMessage.objects.filter(phone=message.phone, sent_at__gte=since).exclude(pk=message.pk)
    return client.find_sent_message(
        instance=message.instance,
        number=message.phone,
        text=message.text,
        since=since,
        until=timezone.now() + CLOCK_SKEW,
        exclude_ids=set(others.exclude(evolution_message_id="").values_list("evolution_message_id", flat=True)),
    )


def _record_success(message, attempt, sent: SentMessage, *, reconciled: bool) -> SendOutcome:
    now = timezone.now()
    owned = OutboundMessage.objects.mark_sent(
        message.pk, attempt=attempt, evolution_message_id=sent.message_id, remote_jid=sent.remote_jid,
        reconciled=reconciled, at=now,
    )
    if not owned:
        log.warning("message=%s attempt=%s sent but the row had moved on; left as it is", message.pk, attempt.number)
    else:
        announce_status(message_id=message.pk, status=MessageStatus.SENT, at=now, callback_url=message.callback_url)
        # Receipts Evolution posted before this id was saved are applied now (inbound listens).
        transaction.on_commit(lambda: message_sent.send_robust(
            sender=OutboundMessage, message_id=message.pk, instance=message.instance,
            evolution_message_id=sent.message_id,
        ))
    log.info(
        "message=%s attempt=%s task=%s instance=%s sent evolution_id=%s%s",
        message.pk, attempt.number, attempt.task_id, message.instance, sent.message_id,
        " (found already sent; not sent again)" if reconciled else "",
    )
    metrics.attempt_finished(
        instance=message.instance,
        outcome=AttemptOutcome.SENT,
        seconds=(now - attempt.started_at).total_seconds(),
        final_status=MessageStatus.SENT if owned else None,
    )
    return SendOutcome(message_id=message.pk, status=MessageStatus.SENT, attempt=attempt.number)


def retry_delay(attempt: int, error: EvolutionError | None = None) -> float:
    """Seconds to wait before the try after failed attempt number ``attempt`` (1 for the first).

    ``fixed`` (the default) waits MESSAGING_RETRY_DELAY_SECONDS every time; ``exponential`` waits that times
    2^(attempt-1), spread by a random 0.5-1.5 so messages that failed together do not retry together. A wait the
    server asked for (a 429's Retry-After) is honoured when longer. Never more than MESSAGING_RETRY_MAX_DELAY_SECONDS,
    which settings keep within the stuck-work sweeper's cutoff.
    """
    base = settings.MESSAGING_RETRY_DELAY_SECONDS
    cap = settings.MESSAGING_RETRY_MAX_DELAY_SECONDS
    delay = base
    if settings.MESSAGING_RETRY_BACKOFF == "exponential":
        delay = base * 2 ** min(max(attempt - 1, 0), 32) * random.uniform(0.5, 1.5)
    asked = getattr(error, "retry_after", None)
    if asked is not None:
        delay = max(delay, asked)
    return min(delay, cap)


def _record_paused(message, attempt, error: EvolutionError, *, still_unknown: bool) -> SendOutcome:
    """The attempt failed because its instance is disconnected (now paused): keep the attempt as the trace (with
    its maybe_sent, so the next try asks findMessages first), count it out of the retry budget, and put the message
    back to wait until the pause is looked at again, like a paused send that never started."""
    now = timezone.now()
    wait = instances.PAUSE_RECHECK_SECONDS
    with transaction.atomic():
        SendAttempt.objects.finish_failed(
            attempt.pk, retryable=True, http_status=error.status_code, error_kind=error.kind,
            error_text=error.detail, maybe_sent=error.maybe_sent or still_unknown, finished_at=now, counted=False,
        )
        owned = OutboundMessage.objects.pause_attempt(
            message.pk, attempt=attempt.number, error_kind=error.kind, error=error.detail,
            until=now + timedelta(seconds=wait),
        )
    if not owned:
        log.warning("message=%s attempt=%s failed after the row had moved on; left as it is", message.pk, attempt.number)
        return SendOutcome(message_id=message.pk, status="skipped", attempt=attempt.number)
    metrics.attempt_finished(
        instance=message.instance, outcome=AttemptOutcome.TEMPORARY_ERROR,
        seconds=(now - attempt.started_at).total_seconds(), final_status=None, reason=error.kind,
    )
    log.warning(
        "message=%s attempt=%s task=%s instance=%s failed kind=%s http=%s: %s; instance paused, attempt not counted, "
        "deferred %ss", message.pk, attempt.number, attempt.task_id, message.instance, error.kind, error.status_code,
        error.detail, wait,
    )
    return SendOutcome(message_id=message.pk, status="deferred", attempt=attempt.number, retry_in=wait)


def _record_failure(message, attempt, error: EvolutionError, *, still_unknown: bool) -> SendOutcome:
    now = timezone.now()
    counted = message.counted_attempts  # the claim counted this attempt; a pause's excused ones are not in it
    retry = error.retryable and counted <= settings.MESSAGING_MAX_RETRIES
    delay = retry_delay(counted, error)
    with transaction.atomic():
        SendAttempt.objects.finish_failed(
            attempt.pk,
            retryable=error.retryable,
            http_status=error.status_code,
            error_kind=error.kind,
            error_text=error.detail,
            maybe_sent=error.maybe_sent or still_unknown,
            finished_at=now,
        )
        if retry:
            owned = OutboundMessage.objects.mark_retrying(
                message.pk,
                attempt=attempt.number,
                error_kind=error.kind,
                error=error.detail,
                next_attempt_at=now + timedelta(seconds=delay),
            )
        else:
            owned = OutboundMessage.objects.mark_failed(
                message.pk, attempt=attempt.number, error_kind=error.kind, error=error.detail
            )
    if not owned:
        # The sweeper gave this attempt up for lost and a newer one owns the message: leave it to that one.
        log.warning("message=%s attempt=%s failed after the row had moved on; left as it is", message.pk, attempt.number)
        return SendOutcome(message_id=message.pk, status="skipped", attempt=attempt.number)
    metrics.attempt_finished(
        instance=message.instance,
        outcome=AttemptOutcome.TEMPORARY_ERROR if error.retryable else AttemptOutcome.PERMANENT_ERROR,
        seconds=(now - attempt.started_at).total_seconds(),
        final_status=None if retry else MessageStatus.FAILED,
        reason=error.kind,
    )
    log_args = (message.pk, attempt.number, attempt.task_id, message.instance, error.kind, error.status_code, error.detail)
    if retry:
        log.warning("message=%s attempt=%s task=%s instance=%s failed kind=%s http=%s: %s; retrying in %ss", *log_args, delay)
        return SendOutcome(message_id=message.pk, status=MessageStatus.RETRYING, attempt=attempt.number, retry_in=delay)
    announce_status(message_id=message.pk, status=MessageStatus.FAILED, at=now, callback_url=message.callback_url)
    log.error("message=%s attempt=%s task=%s instance=%s failed for good kind=%s http=%s: %s", *log_args)
    return SendOutcome(message_id=message.pk, status=MessageStatus.FAILED, attempt=attempt.number)


# --- operator actions ----------------------------------------------------------------------------------------


def cancel_message(*, message_id: int) -> bool:
    """Cancel a message that is not being sent yet. Returns False when it was too late."""
    cancelled = OutboundMessage.objects.cancel(message_id)
    log.info("message=%s cancel %s", message_id, "done" if cancelled else "refused: already sending or finished")
    return cancelled


def send_now(*, message_id: int) -> bool:
    """Release a scheduled message for sending right away."""
    task_id = new_task_id()
    with transaction.atomic():
        released = OutboundMessage.objects.release_for_dispatch(message_id, task_id=task_id)
        if released:
            message = OutboundMessage(pk=message_id, task_id=task_id)
            transaction.on_commit(lambda: tasks.publish_send(message))
    return released


# --- operator actions: resend, retry failed, and batches for the admin -------------------------------------------

RESENDABLE_STATUSES = (MessageStatus.SENT, MessageStatus.FAILED)


@dataclass(frozen=True)
class ResendOutcome:
    original_id: int
    resend: OutboundMessage | None  # the new (or earlier) copy, None when refused
    created: bool
    reason: str = ""  # why nothing new was made


def resend_message(*, message_id: int, created_by=None) -> ResendOutcome:
    """Send the text of a sent or failed message again, as a new message linked to it (``resend_of``).

    The original keeps its history. A message is resent at most once (see ``idempotency.resend_key``); asking
    again returns the existing copy with ``created=False``.
    """
    original = OutboundMessage.objects.filter(pk=message_id).first()
    if original is None:
        return ResendOutcome(message_id, None, False, "no such message")
    if original.status not in RESENDABLE_STATUSES:
        return ResendOutcome(message_id, None, False, f"{original.get_status_display().lower()}, not sent or failed")
    try:
        resend, created = accept_message(
            phone=original.phone,
            text=original.text,
            instance=original.instance,
            idempotency_key=idempotency.resend_key(original.pk),
            created_by=created_by,
            resend_of=original,
            callback_url=original.callback_url,  # its integrator hears of the copy too (signed as the original's)
        )
    except ValidationError as error:  # e.g. its instance is no longer configured
        return ResendOutcome(message_id, None, False, "; ".join(error.messages))
    if not created:
        log.info("message=%s resend refused: already resent as message=%s", original.pk, resend.pk)
        return ResendOutcome(message_id, resend, False, "already resent")
    log.info("message=%s resent as message=%s by user=%s", original.pk, resend.pk, getattr(created_by, "pk", None))
    return ResendOutcome(message_id, resend, True)


@dataclass
class ActionReport:
    """What a batch action did: ids it acted on, new messages it made, and ids it skipped, by reason."""

    done: list[int]
    created: list[int]
    skipped: dict[str, list[int]]

    @classmethod
    def empty(cls) -> "ActionReport":
        return cls(done=[], created=[], skipped={})

    def skip(self, reason: str, message_id: int) -> None:
        self.skipped.setdefault(reason, []).append(message_id)


def resend_messages(*, message_ids, created_by=None, only_failed: bool = False) -> ActionReport:
    """Resend each message (see ``resend_message``). With ``only_failed`` ("retry failed") sent messages are
    skipped, so an operator can select a whole time window and retry only what did not go out."""
    report = ActionReport.empty()
    statuses = dict(OutboundMessage.objects.filter(pk__in=list(message_ids)).values_list("pk", "status"))
    for message_id in message_ids:
        if only_failed and statuses.get(message_id) != MessageStatus.FAILED:
            report.skip(_status_reason(statuses.get(message_id)), message_id)
            continue
        outcome = resend_message(message_id=message_id, created_by=created_by)
        if outcome.created:
            report.done.append(message_id)
            report.created.append(outcome.resend.pk)
        else:
            report.skip(outcome.reason, message_id)
    return report


def retry_failed(*, message_ids, created_by=None) -> ActionReport:
    """Resend the failed messages among ``message_ids``; the others are skipped with their status."""
    return resend_messages(message_ids=message_ids, created_by=created_by, only_failed=True)


def cancel_messages(*, message_ids) -> ActionReport:
    """Cancel each message that is not sending yet (``cancel_message``); report the rest with their status."""
    return _each(message_ids, lambda pk: cancel_message(message_id=pk))


def send_messages_now(*, message_ids) -> ActionReport:
    """Release each scheduled message now (``send_now``); report the rest with their status."""
    return _each(message_ids, lambda pk: send_now(message_id=pk))


def _each(message_ids, act) -> ActionReport:
    report = ActionReport.empty()
    refused = []
    for message_id in message_ids:
        (report.done if act(message_id) else refused).append(message_id)
    # Read the statuses after the attempt: the refusal reason is whatever state won the race.
    for message_id, status in OutboundMessage.objects.filter(pk__in=refused).values_list("pk", "status"):
        report.skip(_status_reason(status), message_id)
    return report


def _status_reason(status: str | None) -> str:
    return f"already {status}" if status else "no such message"
