"""Beat's periodic work on messages: release due schedules, recover stuck work, keep the tables to their retention.

Each function is safe when two beat ticks (or a tick and ``manage.py requeue_stuck``) overlap: every row is moved
by a conditional UPDATE, so it is published once. The tasks that run them are in ``messaging/tasks.py`` and their
schedule in ``config/celery.py``.
"""
import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from messaging import metrics, tasks
from messaging.models import FINAL_STATUSES, AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt

log = logging.getLogger("messaging")

STUCK_BATCH = 1000


def dispatch_due_messages(*, limit: int = 1000) -> int:
    """Queue the scheduled messages whose time has come, released in one UPDATE and published in one batch.

    Overdue messages are expired first, on the same few-second tick, so one whose expiry passed is never released.
    """
    expire_overdue_messages()
    with transaction.atomic():
        released = OutboundMessage.objects.release_due(now=timezone.now(), limit=limit)
        if released:
            transaction.on_commit(lambda: tasks.publish_sends(released))
    if released:
        log.info("messages=%s released: their send time came", tasks.id_ranges(released))
    return len(released)


def expire_overdue_messages() -> int:
    """End every waiting (scheduled, queued, retrying) message whose ``expires_at`` has passed as ``expired``.

    Sending ones are left alone: that attempt may already have reached WhatsApp, so it finishes normally. A worker
    that picks up an overdue message before this runs expires it itself (``services.send_message``).
    """
    moved = OutboundMessage.objects.expire_overdue(now=timezone.now())
    for instance, count in moved.items():
        metrics.messages_expired(instance=instance, count=count)
    if moved:
        log.warning("expired %s messages not sent before their expires_at: %s", sum(moved.values()), moved)
    return sum(moved.values())


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

    for message in OutboundMessage.objects.filter(status=MessageStatus.QUEUED, updated_at__lt=cutoff)[:STUCK_BATCH]:
        if OutboundMessage.objects.filter(pk=message.pk, status=MessageStatus.QUEUED, updated_at__lt=cutoff).update(updated_at=now):
            counts["queued"] += tasks.publish_send(message)

    for message in OutboundMessage.objects.filter(status=MessageStatus.RETRYING, next_attempt_at__lt=cutoff)[:STUCK_BATCH]:
        if OutboundMessage.objects.filter(
            pk=message.pk, status=MessageStatus.RETRYING, next_attempt_at__lt=cutoff
        ).update(next_attempt_at=now, updated_at=now):
            counts["retrying"] += tasks.publish_send(message)

    for message in OutboundMessage.objects.filter(status=MessageStatus.SENDING, updated_at__lt=cutoff)[:STUCK_BATCH]:
        result = _recover_interrupted(message, cutoff)
        if result:
            counts[result] += 1

    if any(counts.values()):
        log.warning("requeued stuck work: %s", counts)
    return counts


def _recover_interrupted(message: OutboundMessage, cutoff) -> str | None:
    # The attempt that was cut off counts: on the last allowed one, the message fails (it may have gone out,
    # which the error says) rather than getting a try the retry budget does not have.
    give_up = message.attempt_count > settings.MESSAGING_MAX_RETRIES
    with transaction.atomic():
        if not OutboundMessage.objects.recover_interrupted(message.pk, stuck_before=cutoff, give_up=give_up):
            return None  # it finished after all, or another sweeper took it
        SendAttempt.objects.mark_interrupted(message_id=message.pk, number=message.attempt_count)
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
    tasks.publish_send(message)
    log.warning("message=%s attempt=%s interrupted; re-queued to check and resend", message.pk, message.attempt_count)
    return "interrupted"


# --- retention -----------------------------------------------------------------------------------------------


def purge_old_records(
    *, cutoff: datetime | None = None, messages: bool = True, batch_size: int = 5000, pause: float = 0.0,
) -> dict[str, int]:
    """Delete attempts that started, and (with ``messages``) sent, failed or cancelled messages that finished,
    before ``cutoff`` (default: MESSAGING_RETENTION_DAYS ago; nothing when that is 0). Unfinished messages are
    never deleted. A batch per transaction, so the tables stay usable while it runs."""
    if cutoff is None:
        if not settings.MESSAGING_RETENTION_DAYS:
            return {"attempts": 0, "messages": 0}
        cutoff = timezone.now() - timedelta(days=settings.MESSAGING_RETENTION_DAYS)
    attempts, finished = old_records(cutoff)
    deleted = {"attempts": _delete_in_batches(SendAttempt, attempts, batch_size, pause), "messages": 0}
    if messages:
        deleted["messages"] = _delete_in_batches(OutboundMessage, finished, batch_size, pause)
    if any(deleted.values()):
        log.info("retention: deleted %s attempts and %s messages from before %s",
                 deleted["attempts"], deleted["messages"], cutoff.isoformat())
    return deleted


def old_records(cutoff):
    """The attempts and the finished messages that retention deletes at ``cutoff``."""
    return (
        SendAttempt.objects.filter(started_at__lt=cutoff),
        OutboundMessage.objects.filter(status__in=FINAL_STATUSES, finished_at__lt=cutoff),
    )


def _delete_in_batches(model, rows, batch_size: int, pause: float) -> int:
    """Delete ``rows`` a batch at a time, oldest ids first; each batch commits on its own."""
    total = 0
    while True:
        # Ordered by primary key: old rows have low ids, so each batch is an early-stopping index scan.
        ids = list(rows.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return total
        # Deleting by id (not re-running the filter) bounds the batch even as the cutoff's rows keep coming.
        deleted = model.objects.filter(pk__in=ids).delete()[1].get(model._meta.label, 0)
        total += deleted
        if len(ids) < batch_size or not deleted:
            return total
        if pause:
            time.sleep(pause)
