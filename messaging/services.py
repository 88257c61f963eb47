"""Every write to messages goes through these functions.

The API view, the admin, celery-beat and ``manage.py shell`` all call the same ones, so a rule (validation,
enqueue after commit, claim before send) holds whoever asks.
"""
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.celery import TRANSACTIONAL_QUEUE
from evolution.client import EvolutionError, SentMessage, TemporaryError, get_client
from messaging import metrics
from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt
from messaging.phones import normalize_phone

log = logging.getLogger("messaging")

SEND_TASK_NAME = "send_transactional_message"
IDEMPOTENCY_KEY_MAX_LENGTH = OutboundMessage._meta.get_field("idempotency_key").max_length
# Far enough for any reminder; near enough that a typo (year 9999) is caught instead of stored.
MAX_SCHEDULE_AHEAD = timedelta(days=10 * 365)


# --- accepting -----------------------------------------------------------------------------------------------


def validate_message(*, phone: str, text: str, instance: str | None, scheduled_at: datetime | None) -> dict:
    """Check a message the way every entry point must; return the cleaned values or raise ValidationError.

    Errors are keyed by field (phone, text, instance, scheduled_at) so callers can point at the culprit.
    """
    errors: dict[str, list[str]] = {}
    cleaned: dict = {}
    try:
        cleaned["phone"] = normalize_phone(phone)
    except ValidationError as error:
        errors["phone"] = error.messages
    if not text or not text.strip():
        errors["text"] = ["This field may not be blank."]
    elif len(text) > settings.MESSAGING_MAX_TEXT_LENGTH:
        errors["text"] = [
            f"Ensure this field has no more than {settings.MESSAGING_MAX_TEXT_LENGTH} characters "
            f"(it has {len(text)})."
        ]
    cleaned["text"] = text
    cleaned["instance"] = instance or settings.EVOLUTION_INSTANCE_NAME
    if cleaned["instance"] not in settings.EVOLUTION_INSTANCES:
        errors["instance"] = [
            f'Unknown instance "{cleaned["instance"]}". Known: {", ".join(settings.EVOLUTION_INSTANCES)}.'
        ]
    if scheduled_at is not None:
        if timezone.is_naive(scheduled_at):
            scheduled_at = timezone.make_aware(scheduled_at)
        if scheduled_at <= timezone.now():
            errors["scheduled_at"] = ["The send time must be in the future."]
        elif scheduled_at > timezone.now() + MAX_SCHEDULE_AHEAD:
            errors["scheduled_at"] = [f"The send time must be within {MAX_SCHEDULE_AHEAD.days // 365} years."]
    cleaned["scheduled_at"] = scheduled_at
    if errors:
        raise ValidationError(errors)
    return cleaned


def accept_message(
    *,
    phone: str,
    text: str,
    instance: str | None = None,
    scheduled_at: datetime | None = None,
    idempotency_key: str | None = None,
    created_by=None,
    resend_of: OutboundMessage | None = None,
) -> tuple[OutboundMessage, bool]:
    """Validate and store a message, then enqueue its send once the row is committed.

    Returns ``(message, created)``. With an ``idempotency_key`` seen before, the first message is returned and
    nothing is created. A scheduled message waits in the database until beat dispatches it.
    """
    idempotency_key = (idempotency_key or "").strip() or None
    if idempotency_key and (len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH or not idempotency_key.isprintable()):
        raise ValidationError(
            {"idempotency_key": [f"Use up to {IDEMPOTENCY_KEY_MAX_LENGTH} printable characters."]}
        )
    if idempotency_key:
        existing = OutboundMessage.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    cleaned = validate_message(phone=phone, text=text, instance=instance, scheduled_at=scheduled_at)
    message = _new_message(cleaned, idempotency_key=idempotency_key, created_by=created_by, resend_of=resend_of)
    try:
        with transaction.atomic():
            message.save(force_insert=True)
            if message.status == MessageStatus.QUEUED:
                transaction.on_commit(lambda: enqueue_send(message))
    except IntegrityError:
        if not idempotency_key:
            raise
        # Two requests with one key raced; the other one won.
        return OutboundMessage.objects.get(idempotency_key=idempotency_key), False
    log.info(
        "message=%s accepted phone=%s instance=%s status=%s scheduled_at=%s",
        message.pk, message.phone, message.instance, message.status, message.scheduled_at,
    )
    metrics.message_accepted(instance=message.instance)
    return message, True


def _new_message(cleaned: dict, **fields) -> OutboundMessage:
    """An unsaved message from validated values. A scheduled one waits with no task; any other gets its task id
    now, so the answer can carry it without a second write after publishing."""
    scheduled = cleaned["scheduled_at"] is not None
    return OutboundMessage(
        **cleaned,
        status=MessageStatus.SCHEDULED if scheduled else MessageStatus.QUEUED,
        task_id="" if scheduled else str(uuid.uuid4()),
        **fields,
    )


def enqueue_send(message: OutboundMessage) -> bool:
    """Publish the send task. Call after commit. A failure is logged, not raised: the row is the record, and
    ``requeue_stuck_messages`` publishes it again, so an accepted message is never lost to a broker outage."""
    return enqueue_sends([message]) == 1


# Redis commands buffered before the publish batch is flushed (one pipeline round trip each).
ENQUEUE_BATCH_SIZE = 1000


def enqueue_sends(messages: Sequence[OutboundMessage]) -> int:
    """Publish the send tasks of committed messages on one broker connection; return how many were published.

    The messages are Celery's own task messages (the headers ``app.amqp.create_task_message`` builds, made once
    and reused with each message's task id), published with one kombu producer inside ``Producer.batch()``:
    Redis buffers them in a pipeline, other transports publish one by one. That skips the per-message routing
    and queue re-binding of ``send_task``, which cost more than the publish itself, and goes through the
    default exchange straight to the queue (AMQP's "" exchange; kombu's Redis transport otherwise reads the
    exchange's bindings from Redis on every publish). The queue is still declared, once per connection.
    Failures are logged, not
    raised, as in ``enqueue_send``: the sweeper publishes whatever did not go out.
    """
    if not messages:
        return 0
    app = current_app
    queue = app.amqp.queues[TRANSACTIONAL_QUEUE]
    template = app.amqp.create_task_message("", SEND_TASK_NAME, [0], {})
    embed = json.dumps(template.body[2])
    reply_to = template.properties.get("reply_to", "")
    retry, retry_policy = app.conf.task_publish_retry, app.conf.task_publish_retry_policy
    published = 0
    try:
        with app.producer_or_acquire() as producer:
            declare = [queue.bind(producer.channel)]  # declared once per connection (kombu caches it)
            # A batch costs a client of its own: worth it from two messages on.
            with producer.batch(max_size=ENQUEUE_BATCH_SIZE) if len(messages) > 1 else nullcontext():
                for message in messages:
                    task_id = message.task_id
                    producer.publish(
                        f"[[{int(message.pk)}], {{}}, {embed}]",
                        exchange="",  # straight to the queue: no per-message binding lookup
                        routing_key=queue.name,
                        declare=declare,
                        headers={**template.headers, "id": task_id, "root_id": task_id, "argsrepr": f"[{message.pk}]"},
                        content_type="application/json",
                        content_encoding="utf-8",
                        correlation_id=task_id,
                        reply_to=reply_to,
                        retry=retry,
                        retry_policy=retry_policy,
                    )
                    published += 1
    except Exception:
        log.exception("messages=%s enqueue failed (%s handed to the broker before the error); "
                      "the stuck-work sweeper will retry", id_ranges(messages), published)
        return 0
    if len(messages) == 1:
        log.info("message=%s task=%s enqueued queue=%s", messages[0].pk, messages[0].task_id, TRANSACTIONAL_QUEUE)
    else:
        log.info("messages=%s enqueued queue=%s count=%s", id_ranges(messages), TRANSACTIONAL_QUEUE, len(messages))
    return published


def id_ranges(messages: Sequence[OutboundMessage]) -> str:
    """Every id, compactly, for one log line about many messages: "4001-5000,5003"."""
    ids = sorted(message.pk for message in messages)
    runs: list[list[int]] = []
    for pk in ids:
        if runs and pk == runs[-1][1] + 1:
            runs[-1][1] = pk
        else:
            runs.append([pk, pk])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


# --- accepting in bulk ----------------------------------------------------------------------------------------

BULK_MAX_MESSAGES = 1000


@dataclass(frozen=True)
class BulkItemResult:
    """One item of a bulk request: the stored message, or the field errors that kept it out."""

    message: OutboundMessage | None = None
    errors: dict[str, list[str]] | None = None


def accept_messages(*, items: Sequence[dict], created_by=None) -> list[BulkItemResult]:
    """Validate each item on its own like ``accept_message``; store the valid ones and enqueue them after commit.

    ``items`` are dicts with ``phone``, ``text`` and optionally ``instance`` and ``scheduled_at``. Rejected items
    write nothing; the accepted ones are inserted in one statement and their tasks published in one batch once
    the rows are committed (the same guarantees as one message: row first, enqueue after commit). Returns one
    result per item, in order. Idempotency keys are not supported here.
    """
    if len(items) > BULK_MAX_MESSAGES:
        raise ValidationError({"messages": [f"Send at most {BULK_MAX_MESSAGES} messages per request."]})
    results: list[BulkItemResult] = []
    accepted: list[OutboundMessage] = []
    now = timezone.now()
    for item in items:
        try:
            cleaned = validate_message(
                phone=item.get("phone"), text=item.get("text"), instance=item.get("instance"),
                scheduled_at=item.get("scheduled_at"),
            )
        except ValidationError as error:
            results.append(BulkItemResult(errors=error.message_dict))
            continue
        message = _new_message(cleaned, created_by=created_by, created_at=now, updated_at=now)
        accepted.append(message)
        results.append(BulkItemResult(message=message))
    if accepted:
        with transaction.atomic():
            OutboundMessage.objects.bulk_create(accepted)  # PostgreSQL and SQLite set the pks
            queued = [message for message in accepted if message.status == MessageStatus.QUEUED]
            if queued:
                transaction.on_commit(lambda: enqueue_sends(queued))
        for instance, count in Counter(message.instance for message in accepted).items():
            metrics.message_accepted(instance=instance, count=count)
        log.info(
            "messages=%s accepted in bulk rejected=%s",
            id_ranges(accepted), len(items) - len(accepted),
        )
    return results


# --- sending -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendOutcome:
    message_id: int
    status: str  # the message's status after this try, or "skipped" when this caller did not own it
    attempt: int | None = None
    retry_in: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def send_message(*, message_id: int, task_id: str = "") -> SendOutcome:
    """Make one attempt at sending a queued or retrying message through Evolution API.

    The claim is a conditional UPDATE, so with many workers (or a task delivered twice) exactly one caller
    sends. The attempt row is written before the HTTP call, so even a crash mid-call leaves a trace. After an
    attempt that may have reached WhatsApp (timeout, reset, worker crash) the next one asks findMessages first
    and does not send again if WhatsApp already has it.
    """
    claimed_at = time.monotonic()
    if not OutboundMessage.objects.claim_for_sending(message_id):
        log.info("message=%s task=%s skipped: not queued or due (sent, cancelled or owned elsewhere)", message_id, task_id)
        return SendOutcome(message_id=message_id, status="skipped")
    message = OutboundMessage.objects.get(pk=message_id)
    attempt = SendAttempt.objects.create(message=message, number=message.attempt_count, task_id=task_id)
    must_reconcile = attempt.number > 1 and _previous_attempt_maybe_sent(message, attempt.number)
    client = get_client()
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
        last_try = not (error.retryable and attempt.number <= settings.MESSAGING_MAX_RETRIES)
        if last_try and error.maybe_sent:
            # Before giving up for good, ask once more: a timed-out last try may have gone out, and a "failed"
            # message invites an operator to resend it.
            found = _find_quietly(client, message)
            if found is not None:
                return _record_success(message, attempt, found, reconciled=True)
        return _record_failure(message, attempt, error, still_unknown=must_reconcile and not checked)
    return _record_success(message, attempt, sent, reconciled=found is not None)


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
    first_try = SendAttempt.objects.filter(message=message).order_by("number").values_list("started_at", flat=True)[0]
    since = first_try - CLOCK_SKEW
    others = OutboundMessage.objects.filter(phone=message.phone, sent_at__gte=since).exclude(pk=message.pk)
    return client.find_sent_message(
        instance=message.instance,
        number=message.phone,
        text=message.text,
        since=since,
        until=timezone.now() + CLOCK_SKEW,
        exclude_ids=set(others.exclude(evolution_message_id="").values_list("evolution_message_id", flat=True)),
    )


def _previous_attempt_maybe_sent(message: OutboundMessage, number: int) -> bool:
    previous = SendAttempt.objects.filter(message=message, number=number - 1).values_list("maybe_sent", flat=True)
    return bool(previous and previous[0])


def _record_success(message, attempt, sent: SentMessage, *, reconciled: bool) -> SendOutcome:
    now = timezone.now()
    with transaction.atomic():
        SendAttempt.objects.filter(pk=attempt.pk).update(
            outcome=AttemptOutcome.SENT,
            finished_at=now,
            http_status=None if reconciled else 201,
            evolution_message_id=sent.message_id,
            reconciled=reconciled,
        )
        owned = OutboundMessage.objects.mark_sent(
            message.pk, attempt=attempt.number, evolution_message_id=sent.message_id, remote_jid=sent.remote_jid
        )
    if not owned:
        log.warning("message=%s attempt=%s sent but the row had moved on; left as it is", message.pk, attempt.number)
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


def _record_failure(message, attempt, error: EvolutionError, *, still_unknown: bool) -> SendOutcome:
    now = timezone.now()
    retry = error.retryable and attempt.number <= settings.MESSAGING_MAX_RETRIES
    delay = settings.MESSAGING_RETRY_DELAY_SECONDS
    with transaction.atomic():
        SendAttempt.objects.filter(pk=attempt.pk).update(
            outcome=AttemptOutcome.TEMPORARY_ERROR if error.retryable else AttemptOutcome.PERMANENT_ERROR,
            finished_at=now,
            http_status=error.status_code,
            error_kind=error.kind,
            error_text=error.detail[:2000],
            maybe_sent=error.maybe_sent or still_unknown,
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
    return _release(message_id)


def _release(message_id: int) -> bool:
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        released = OutboundMessage.objects.release_for_dispatch(message_id, task_id=task_id)
        if released:
            message = OutboundMessage(pk=message_id, task_id=task_id)
            transaction.on_commit(lambda: enqueue_send(message))
    return released


# --- periodic work (celery-beat) -----------------------------------------------------------------------------


def dispatch_due_messages(*, limit: int = 1000) -> int:
    """Queue the scheduled messages whose time has come. Safe when two beat ticks overlap: each row is
    released by a conditional UPDATE, so it is enqueued once."""
    due = OutboundMessage.objects.filter(
        status=MessageStatus.SCHEDULED, scheduled_at__lte=timezone.now()
    ).order_by("scheduled_at").values_list("pk", flat=True)[:limit]
    released = sum(_release(pk) for pk in list(due))
    if released:
        log.info("dispatched %s due scheduled messages", released)
    return released


def requeue_stuck_messages() -> dict[str, int]:
    """Find work that a lost publish or a dead worker left behind and put it back on the queue.

    - queued for too long: the publish after commit failed (broker down) or the broker lost the task;
    - retrying long past its due time: the retry's publish was lost;
    - sending for too long: the worker died mid-send; its attempt is marked interrupted and the next try asks
      Evolution API whether it went out before sending again.
    Duplicated tasks are harmless: the send claims the row first.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.MESSAGING_STUCK_AFTER_SECONDS)
    counts = {"queued": 0, "retrying": 0, "interrupted": 0, "failed": 0}

    for message in OutboundMessage.objects.filter(status=MessageStatus.QUEUED, updated_at__lt=cutoff)[:1000]:
        if OutboundMessage.objects.filter(pk=message.pk, status=MessageStatus.QUEUED, updated_at__lt=cutoff).update(updated_at=now):
            counts["queued"] += enqueue_send(message)

    for message in OutboundMessage.objects.filter(status=MessageStatus.RETRYING, next_attempt_at__lt=cutoff)[:1000]:
        if OutboundMessage.objects.filter(
            pk=message.pk, status=MessageStatus.RETRYING, next_attempt_at__lt=cutoff
        ).update(next_attempt_at=now, updated_at=now):
            counts["retrying"] += enqueue_send(message)

    for message in OutboundMessage.objects.filter(status=MessageStatus.SENDING, updated_at__lt=cutoff)[:1000]:
        result = _recover_interrupted(message, cutoff)
        if result:
            counts[result] += 1

    if any(counts.values()):
        log.warning("requeued stuck work: %s", counts)
    return counts


def _recover_interrupted(message: OutboundMessage, cutoff) -> str | None:
    give_up = message.attempt_count > settings.MESSAGING_MAX_RETRIES
    with transaction.atomic():
        if not OutboundMessage.objects.recover_interrupted(message.pk, stuck_before=cutoff, give_up=give_up):
            return None  # it finished after all, or another sweeper took it
        SendAttempt.objects.filter(
            message=message, number=message.attempt_count, outcome=AttemptOutcome.STARTED
        ).update(
            outcome=AttemptOutcome.INTERRUPTED,
            finished_at=timezone.now(),
            error_kind="interrupted",
            error_text="The worker stopped during the send.",
            maybe_sent=True,
        )
    metrics.attempt_finished(
        instance=message.instance,
        outcome=AttemptOutcome.INTERRUPTED,
        seconds=None,
        final_status=MessageStatus.FAILED if give_up else None,
        reason="interrupted",
    )
    if give_up:
        log.error("message=%s attempt=%s interrupted on its last attempt; failed", message.pk, message.attempt_count)
        return "failed"
    enqueue_send(message)
    log.warning("message=%s attempt=%s interrupted; re-queued to check and resend", message.pk, message.attempt_count)
    return "interrupted"


# --- operator actions: resend, retry failed, and batches for the admin -------------------------------------------

RESENDABLE_STATUSES = (MessageStatus.SENT, MessageStatus.FAILED)
RESERVED_KEY_PREFIX = "console:"  # idempotency keys the console makes itself; the API refuses them from clients


def resend_key(original_id: int) -> str:
    """The idempotency key of the resend of a message. One per original: a double-clicked or repeated resend
    finds the first copy instead of making a second one. To send it yet again, resend the resend."""
    return f"{RESERVED_KEY_PREFIX}resend-of:{original_id}"


@dataclass(frozen=True)
class ResendOutcome:
    original_id: int
    resend: OutboundMessage | None  # the new (or earlier) copy, None when refused
    created: bool
    reason: str = ""  # why nothing new was made


def resend_message(*, message_id: int, created_by=None) -> ResendOutcome:
    """Send the text of a sent or failed message again, as a new message linked to it (``resend_of``).

    The original keeps its history. A message is resent at most once (see ``resend_key``); asking again returns
    the existing copy with ``created=False``.
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
            idempotency_key=resend_key(original.pk),
            created_by=created_by,
            resend_of=original,
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
