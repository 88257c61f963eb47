"""Every write of inbound: webhook secrets and registration, raw events, receipts, replies, batches, opt-outs.

The receiver view calls ``authenticate`` and ``store_event`` and answers; everything else runs in a task
(inbound/tasks.py) that calls ``process_event`` and, once a contact is quiet, ``process_batch``.
"""
import functools
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from evolution import instances, webhooks
from evolution.client import EvolutionError, get_client
from inbound import keywords, signals
from inbound.models import (
    Batch,
    BatchStatus,
    InboundMessage,
    InstanceWebhook,
    KeywordAction,
    KeywordRule,
    OptOut,
    Receipt,
    WebhookEvent,
)
from messaging import metrics
from messaging import services as messaging_services
from messaging.idempotency import keyword_reply_key
from messaging.models import OutboundMessage
from messaging.signals import announce_status

log = logging.getLogger("inbound")

RECEIVER_PATH = "/webhooks/evolution/{instance}"


# --- the webhook's secret and its registration on Evolution -----------------------------------------------------


def webhook_url(instance: str) -> str:
    if not settings.CONSOLE_PUBLIC_URL:
        raise ValueError("Set CONSOLE_PUBLIC_URL to the address Evolution API reaches the console at.")
    return settings.CONSOLE_PUBLIC_URL.rstrip("/") + RECEIVER_PATH.format(instance=instance)


def secret_for(instance: str) -> str:
    """The instance's secret, made on first use and kept: registering again must not lock out the retries of
    events Evolution already holds with the old one."""
    hook, _ = InstanceWebhook.objects.get_or_create(instance=instance, defaults={"secret": secrets.token_urlsafe(32)})
    return hook.secret


@dataclass(frozen=True)
class Registration:
    instance: str
    ok: bool
    detail: str  # the URL on success, the error otherwise


def register_webhook(*, instance: str) -> Registration:
    """Point ``instance``'s webhook at the console (POST /webhook/set) with the events it needs and its secret."""
    try:
        url = webhook_url(instance)
    except ValueError as error:
        return Registration(instance, False, str(error))
    body = webhooks.webhook_set_body(url=url, headers={webhooks.SECRET_HEADER: secret_for(instance)})
    try:
        get_client().set_webhook(instance=instance, body=body)
    except EvolutionError as error:
        InstanceWebhook.objects.filter(instance=instance).update(last_error=str(error)[:2000])
        log.warning("instance=%s webhook not registered: %s", instance, error)
        return Registration(instance, False, str(error))
    InstanceWebhook.objects.filter(instance=instance).update(url=url, registered_at=timezone.now(), last_error="")
    log.info("instance=%s webhook registered url=%s", instance, url)
    return Registration(instance, True, url)


def register_webhooks(*, instances_to_register=None) -> list[Registration]:
    return [register_webhook(instance=name) for name in (instances_to_register or settings.EVOLUTION_INSTANCES)]


# The receiver's hot path skips the secret's query when this process checked the same secret for the same instance
# less than this long ago. Only matches are remembered (a wrong secret always asks the database), and secrets are
# never rotated (secret_for keeps them), so the cost is that a deleted webhook row still opens the door this long.
SECRET_MEMORY_SECONDS = 10.0
_checked_secrets: dict[tuple[str, str], float] = {}  # (instance, secret) -> until when it is taken as right


def authenticate(*, instance: str, secret: str | None) -> bool:
    """Whether ``secret`` is the one the console gave ``instance``'s webhook."""
    if not secret:
        return False
    now = time.monotonic()
    if _checked_secrets.get((instance, secret), 0.0) > now:
        return True
    known = InstanceWebhook.objects.filter(instance=instance).values_list("secret", flat=True).first()
    if not (known and hmac.compare_digest(known.encode(), secret.encode())):
        return False
    if len(_checked_secrets) > 1000:  # one entry per instance in practice; never let it grow
        _checked_secrets.clear()
    _checked_secrets[(instance, secret)] = now + SECRET_MEMORY_SECONDS
    return True


# --- raw events -------------------------------------------------------------------------------------------------


def dedupe_key(envelope: webhooks.Envelope) -> str:
    """The same event however many times Evolution posts it: its retries carry the same date_time and data.
    date_time is part of it so that two real events with equal data (close, open, close) stay two."""
    canonical = json.dumps(
        [envelope.instance, envelope.event, envelope.date_time, envelope.data], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def store_event(*, envelope: webhooks.Envelope, body: dict) -> tuple[WebhookEvent | None, bool]:
    """Store the event as posted; its task is published after commit. Returns ``(event, created)``; a retry of a
    stored event is ``(None, False)`` and publishes nothing.

    One statement, ``INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING id``, in autocommit: the unique
    constraint decides (never check-then-insert), and the row is committed when it returns, so the task is
    published right after (inside an outer transaction, after that commits). One round trip instead of the
    BEGIN, INSERT and COMMIT of an ORM create in a transaction: this is the receiver's hot path."""
    from inbound import tasks

    event = WebhookEvent(
        instance=envelope.instance, event=envelope.event, dedupe_key=dedupe_key(envelope), body=body,
        received_at=timezone.now(),
    )
    event.pk = _insert_unless_stored(event)
    if event.pk is None:
        return None, False
    transaction.on_commit(lambda: tasks.publish_event(event.pk))
    return event, True


def _insert_unless_stored(event: WebhookEvent) -> int | None:
    """The new row's id, or None when an event with its dedupe_key is already stored (PostgreSQL, SQLite)."""
    connection = connections[router.db_for_write(WebhookEvent)]
    quote = connection.ops.quote_name
    fields = [WebhookEvent._meta.get_field(name) for name in ("instance", "event", "dedupe_key", "body", "received_at", "error")]
    values = [field.get_db_prep_save(getattr(event, field.attname), connection) for field in fields]
    sql = (
        f"INSERT INTO {quote(WebhookEvent._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT ({quote('dedupe_key')}) DO NOTHING "
        f"RETURNING {quote(WebhookEvent._meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    return row[0] if row else None


def process_event(*, event_id: int) -> str:
    """Do what one stored event says; a second run of the same event changes nothing. Returns what it did."""
    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is None or event.processed_at is not None:
        return "nothing to do"
    envelope = webhooks.parse_envelope(json.dumps(event.body))
    if envelope.event == webhooks.MESSAGES_UPDATE:
        done = _on_receipt(envelope, event)
    elif envelope.event == webhooks.MESSAGES_UPSERT:
        done = _on_message(envelope, event)
    elif envelope.event == webhooks.CONNECTION_UPDATE:
        done = _on_connection_update(envelope)
    else:
        done = f"{envelope.event} kept, nothing to do"
    WebhookEvent.objects.filter(pk=event_id, processed_at__isnull=True).update(processed_at=timezone.now())
    log.info("webhook_event=%s instance=%s event=%s processed: %s", event.pk, event.instance, event.event, done)
    return done


# --- receipts ---------------------------------------------------------------------------------------------------


def _on_receipt(envelope: webhooks.Envelope, event: WebhookEvent) -> str:
    receipt = webhooks.parse_receipt(envelope.data)
    if receipt is None or not receipt.from_me:
        return "no receipt of ours"
    if receipt.status not in webhooks.DELIVERED_STATUSES | webhooks.READ_STATUSES:
        return f"{receipt.status} not recorded"
    # Kept before it is applied: a send that has not saved this id yet applies it when it does (receivers.py).
    Receipt.objects.bulk_create(
        [Receipt(instance=envelope.instance, evolution_message_id=receipt.key_id, status=receipt.status, at=event.received_at)],
        ignore_conflicts=True,
    )
    applied = apply_receipts(instance=envelope.instance, evolution_message_id=receipt.key_id) or (
        OutboundMessage.objects.filter(instance=envelope.instance, evolution_message_id=receipt.key_id).exists()
    )
    return f"{receipt.status} for {receipt.key_id}" + ("" if applied else " kept for when its send is saved")


def apply_early_receipts(*, instance: str, evolution_message_id: str) -> bool:
    """After a send saved its WhatsApp id (receivers.py): apply the receipts that came before it, if any; True
    when one moved the message. Nearly always none did, and that answer is one indexed ``SELECT`` whose text is
    made once per process: the ORM query it replaces compiled itself on every send, several times the cost of its
    round trip (a fifth of a drain worker's CPU)."""
    connection = connections[router.db_for_read(Receipt)]
    with connection.cursor() as cursor:
        cursor.execute(_any_receipt_sql(connection.alias), [instance, evolution_message_id])
        if cursor.fetchone() is None:
            return False
    return apply_receipts(instance=instance, evolution_message_id=evolution_message_id)


@functools.cache
def _any_receipt_sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    meta = Receipt._meta
    return (
        f"SELECT 1 FROM {quote(meta.db_table)} WHERE {quote(meta.get_field('instance').column)} = %s"
        f" AND {quote(meta.get_field('evolution_message_id').column)} = %s LIMIT 1"
    )


def apply_receipts(*, instance: str, evolution_message_id: str) -> bool:
    """Apply every receipt kept for this message id to its sent message; True when one moved it. Idempotent,
    and a read is never undone by a later delivery receipt."""
    moved = False
    for status, at in Receipt.objects.filter(instance=instance, evolution_message_id=evolution_message_id).values_list(
        "status", "at"
    ):
        # A read message was delivered, at the latest when it was read: a read that comes first sets both (and
        # counts in both metrics), with only "read" told to the callback_url.
        delivered = OutboundMessage.objects.record_delivered(
            instance=instance, evolution_message_id=evolution_message_id, at=at
        )
        if status in webhooks.READ_STATUSES:
            told = "read"
            changed = OutboundMessage.objects.record_read(instance=instance, evolution_message_id=evolution_message_id, at=at)
        else:
            told, changed = "delivered", delivered
        if changed:
            _announce_receipt(instance=instance, evolution_message_id=evolution_message_id, status=told, at=at)
        metrics.receipt_applied(instance=instance, delivered=int(delivered), read=int(changed and told == "read"))
        moved |= changed
    return moved


def _announce_receipt(*, instance: str, evolution_message_id: str, status: str, at) -> None:
    """A receipt is a status change the message's callback_url hears of (messaging.signals, callbacks/)."""
    with_callback = OutboundMessage.objects.filter(instance=instance, evolution_message_id=evolution_message_id)
    for pk, callback_url in with_callback.exclude(callback_url="").values_list("pk", "callback_url"):
        announce_status(message_id=pk, status=status, at=at, callback_url=callback_url)


# --- replies and their batches ----------------------------------------------------------------------------------


def _on_message(envelope: webhooks.Envelope, event: WebhookEvent) -> str:
    incoming = webhooks.parse_incoming_message(envelope.data)
    if incoming is None:
        return "no message"
    if incoming.from_me:
        return "written from the instance's phone; not a reply"
    if not incoming.phone:
        return f"from {incoming.remote_jid or 'nowhere'}: not a contact's chat, kept raw only"
    message, batch, opened = record_reply(instance=envelope.instance, incoming=incoming, event=event)
    if message is None:
        return f"{incoming.whatsapp_id} already stored"
    return f"reply {message.pk} from {message.phone} in batch {batch.pk}" + (" (opened)" if opened else "")


def record_reply(*, instance: str, incoming: webhooks.IncomingMessage, event: WebhookEvent | None = None):
    """Store a contact's message and put it in the contact's open batch (opening one if none is). Returns
    ``(message, batch, opened)``, or ``(None, None, False)`` when this WhatsApp message is already stored.

    One transaction: a message is never stored without its batch. The open batch is locked while its wait is
    restarted, so a claim (``BatchQuerySet.claim``) running at that moment waits, then finds it not due; a batch
    claimed first is no longer open here, and the message opens the next one."""
    now = timezone.now()
    due_at = now + timedelta(seconds=settings.INBOUND_DEBOUNCE_SECONDS)
    sent_at = datetime.fromtimestamp(incoming.timestamp, tz=dt_timezone.utc) if incoming.timestamp else None
    with transaction.atomic():
        try:
            with transaction.atomic():
                message = InboundMessage.objects.create(
                    instance=instance,
                    whatsapp_id=incoming.whatsapp_id,
                    phone=incoming.phone,
                    remote_jid=incoming.remote_jid,
                    push_name=incoming.push_name[:200],
                    message_type=incoming.message_type[:64],
                    text=incoming.text,
                    sent_at=sent_at,
                    received_at=event.received_at if event else now,
                    event=event,
                )
        except IntegrityError:
            return None, None, False
        batch, opened = _attach(message, due_at=due_at, now=now)
    if opened:
        from inbound import tasks

        transaction.on_commit(lambda: tasks.publish_batch(batch.pk, countdown=settings.INBOUND_DEBOUNCE_SECONDS))
    log.info("inbound=%s instance=%s phone=%s batch=%s%s", message.pk, instance, message.phone, batch.pk,
             " opened" if opened else " extended")
    return message, batch, opened


def _attach(message: InboundMessage, *, due_at, now) -> tuple[Batch, bool]:
    for _ in range(10):
        batch = (
            Batch.objects.select_for_update()
            .filter(instance=message.instance, phone=message.phone, status=BatchStatus.COLLECTING)
            .first()
        )
        if batch is not None:
            Batch.objects.extend(batch.pk, due_at=due_at, now=now)  # locked and collecting: this moves it
            InboundMessage.objects.filter(pk=message.pk).update(batch=batch)
            return batch, False
        try:
            with transaction.atomic():
                batch = Batch.objects.create(
                    instance=message.instance, phone=message.phone, opened_at=now, last_message_at=now,
                    due_at=due_at, message_count=1,
                )
        except IntegrityError:
            continue  # another message of this contact opened one a moment ago: join it
        InboundMessage.objects.filter(pk=message.pk).update(batch=batch)
        return batch, True
    raise RuntimeError(f"no batch for inbound message {message.pk} after 10 tries")


@dataclass(frozen=True)
class BatchOutcome:
    processed: bool
    wait: float | None = None  # still collecting: look again in this many seconds
    detail: str = ""


def process_batch(*, batch_id: int) -> BatchOutcome:
    """Process a due batch once: claim it, run the keyword rules over its messages in arrival order, then tell
    ``batch_ready``'s receivers. A batch not yet due says how long to wait; one claimed by another says so."""
    now = timezone.now()
    if not Batch.objects.claim(batch_id, now=now):
        batch = Batch.objects.filter(pk=batch_id).values("status", "due_at").first()
        if batch is not None and batch["status"] == BatchStatus.COLLECTING:
            return BatchOutcome(False, wait=max(0.05, (batch["due_at"] - now).total_seconds()))
        return BatchOutcome(False, detail="taken by another task" if batch else "no such batch")
    batch = Batch.objects.get(pk=batch_id)
    messages = list(batch.messages.order_by("received_at", "id"))
    done = _apply_keyword_rules(batch, messages)
    for receiver, answer in signals.batch_ready.send_robust(sender=Batch, batch=batch, messages=messages):
        if isinstance(answer, Exception):
            log.error("batch=%s receiver %r failed: %r", batch.pk, receiver, answer)
    outcome = "; ".join(done) or "no keyword"
    Batch.objects.finish(batch_id, outcome=outcome)
    log.info("batch=%s instance=%s phone=%s processed %s messages: %s", batch.pk, batch.instance, batch.phone,
             len(messages), outcome)
    return BatchOutcome(True, detail=outcome)


def _apply_keyword_rules(batch: Batch, messages: list[InboundMessage]) -> list[str]:
    rules = {rule.keyword: rule for rule in KeywordRule.objects.filter(enabled=True)}
    done, answered = [], set()
    for message in messages:
        rule = rules.get(keywords.normalize_keyword(message.text))
        if rule is None:
            continue
        if rule.action == KeywordAction.OPT_OUT:
            opted = opt_out(phone=batch.phone, instance=batch.instance, keyword=rule.keyword, message=message)
            done.append(f"{rule.keyword}: opted out" if opted else f"{rule.keyword}: already opted out")
        if rule.reply_text.strip() and rule.pk not in answered:
            answered.add(rule.pk)  # one answer per rule per batch, however often the word was written
            reply, _ = messaging_services.accept_message(
                phone=batch.phone,
                text=rule.reply_text,
                instance=batch.instance,
                idempotency_key=keyword_reply_key(batch_id=batch.pk, rule_id=rule.pk),
                source=f"inbound:batch:{batch.pk}",
            )
            done.append(f"{rule.keyword}: answered with message {reply.pk}")
    return done


def opt_out(*, phone: str, instance: str = "", keyword: str = "", message: InboundMessage | None = None) -> bool:
    """Record that ``phone`` wants no more messages; True if it had not already. ``contact_opted_out`` is sent
    once, after commit."""
    opt, created = OptOut.objects.get_or_create(
        phone=phone, defaults={"instance": instance, "keyword": keyword, "message": message}
    )
    if created:
        transaction.on_commit(
            lambda: signals.contact_opted_out.send_robust(
                sender=OptOut, phone=phone, instance=instance, keyword=keyword
            )
        )
        log.info("phone=%s instance=%s opted out keyword=%s", phone, instance, keyword)
    return created


# --- instance state -----------------------------------------------------------------------------------------------


def _on_connection_update(envelope: webhooks.Envelope) -> str:
    update = webhooks.parse_connection_update(envelope.data)
    if update is None:
        return "no state"
    InstanceWebhook.objects.filter(instance=envelope.instance).update(
        state=update.state, state_changed_at=timezone.now()
    )
    # Sends wait instead of failing while the instance is down, and resume as soon as it says it is open.
    if update.state == "open":
        instances.resume(envelope.instance)
    elif update.state in ("close", "refused"):
        instances.pause(envelope.instance, f"connection.update says {update.state}")
    return f"state {update.state}"


# --- beat's tick ----------------------------------------------------------------------------------------------------

TICK_LIMIT = 500
STALE_CLAIM = timedelta(minutes=10)
UNPROCESSED_AFTER = timedelta(seconds=60)
DUE_GRACE = timedelta(seconds=2)  # the batch's own countdown normally wakes it; the tick is the safety net


def due_work(*, now=None) -> tuple[list[int], list[int]]:
    """What beat's tick publishes: batches past due that no countdown woke (a worker restarted), and events
    whose task never ran (the broker was down). Batches claimed by a vanished worker are released first."""
    now = now or timezone.now()
    Batch.objects.release_stale(claimed_before=now - STALE_CLAIM)
    batches = list(
        Batch.objects.filter(status=BatchStatus.COLLECTING, due_at__lte=now - DUE_GRACE)
        .order_by("due_at").values_list("pk", flat=True)[:TICK_LIMIT]
    )
    events = list(
        WebhookEvent.objects.filter(processed_at__isnull=True, received_at__lte=now - UNPROCESSED_AFTER)
        .order_by("received_at").values_list("pk", flat=True)[:TICK_LIMIT]
    )
    return batches, events
