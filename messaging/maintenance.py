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

from django.db.models import Q

from config.celery import SEND_QUEUES
from messaging import heartbeats, metrics, selectors, tasks
from messaging.models import FINAL_STATUSES, AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt
from messaging.signals import announce_status, retention_due

log = logging.getLogger("messaging")

STUCK_BATCH = 1000
# A waiting row with no task anywhere (the send queues are empty) after this long lost its task: a Redis flush, or
# a restart without AOF. Longer than a publish after commit takes, far shorter than the stuck cutoff.
LOST_TASK_AFTER = timedelta(seconds=30)


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
    now = timezone.now()
    moved = OutboundMessage.objects.expire_overdue(now=now)
    if moved:  # the rows this sweep moved are those it stamped finished_at=now
        told = OutboundMessage.objects.filter(status=MessageStatus.EXPIRED, finished_at=now).exclude(callback_url="")
        for pk, callback_url in told.values_list("pk", "callback_url"):
            announce_status(message_id=pk, status=MessageStatus.EXPIRED, at=now, callback_url=callback_url)
    for instance, count in moved.items():
        metrics.messages_expired(instance=instance, count=count)
    if moved:
        log.warning("expired %s messages not sent before their expires_at: %s", sum(moved.values()), moved)
    return sum(moved.values())


def what_the_sweep_takes() -> str:
    """``requeue_stuck_messages``'s rules in one phrase, for the admin's report and the API's description."""
    return (
        f"it takes work whose publish failed at once, work the broker lost after {LOST_TASK_AFTER.seconds} s "
        f"(when the send queues are empty), the sends of a worker whose heartbeat stopped, and anything else left "
        f"for more than {settings.MESSAGING_STUCK_AFTER_SECONDS:g} s; a live worker's send is never taken"
    )


def requeue_stuck_messages() -> dict[str, int]:
    """Find work that a lost publish or a dead worker left behind and put it back on the queue.

    Beat runs it every MESSAGING_SWEEP_INTERVAL_SECONDS, so what it can tell at once is recovered at once:
    - never published: its publish failed (broker down at accept time) and the row says so; published again as
      soon as the broker answers;
    - lost by the broker: waiting for LOST_TASK_AFTER while the send queues are empty (Redis flushed, or restarted
      without AOF);
    - sending, held by a worker whose heartbeat is gone (killed, its host lost): its attempt is marked interrupted
      and the next try asks Evolution API whether it went out before sending again.
    And whatever it cannot tell, after MESSAGING_STUCK_AFTER_SECONDS: queued or retrying that long (a lost task
    while other tasks wait), sending that long with no heartbeat to go by (embedded mode, Redis unreachable).
    Duplicated tasks are harmless: the send claims the row first.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.MESSAGING_STUCK_AFTER_SECONDS)
    counts = {"queued": 0, "retrying": 0, "interrupted": 0, "failed": 0}
    for status, published in _republish_unpublished(now).items():
        counts[status] += published
    for status, published in _republish_lost_tasks(now).items():
        counts[status] += published

    for message in OutboundMessage.objects.filter(status=MessageStatus.QUEUED, updated_at__lt=cutoff)[:STUCK_BATCH]:
        if OutboundMessage.objects.take_stuck_queued(message.pk, stuck_before=cutoff, now=now):
            counts["queued"] += tasks.publish_send(message)

    for message in OutboundMessage.objects.filter(status=MessageStatus.RETRYING, next_attempt_at__lt=cutoff)[:STUCK_BATCH]:
        if OutboundMessage.objects.take_stuck_retrying(message.pk, stuck_before=cutoff, now=now):
            counts["retrying"] += tasks.publish_send(message)

    sending = list(OutboundMessage.objects.filter(status=MessageStatus.SENDING).order_by("updated_at")[:STUCK_BATCH])
    holders = _workers_holding(sending)
    dead = heartbeats.dead_workers(holders.values())
    for message in sending:
        if message.updated_at < cutoff:
            result = _recover_interrupted(message, cutoff)
        elif dead and holders.get(message.pk) in dead:
            result = _recover_interrupted(message, cutoff, dead_attempt=message.attempt_count)
        else:
            continue  # its worker is alive (or cannot be told): never taken over before the cutoff
        if result:
            counts[result] += 1

    if any(counts.values()):
        log.warning("requeued stuck work: %s", counts)
    return counts


def _republish_unpublished(now) -> dict[str, int]:
    """Publish again the rows whose publish failed, once they are due; each is taken by one sweep (a conditional
    UPDATE clears its mark), and a publish that fails again marks it again for the next sweep."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    marked = OutboundMessage.objects.filter(
        due, publish_failed_at__isnull=False, status__in=(MessageStatus.QUEUED, MessageStatus.RETRYING)
    ).order_by("publish_failed_at")[:STUCK_BATCH]
    taken = [message for message in marked if OutboundMessage.objects.take_unpublished(message, now=now)]
    return _publish_counted(taken)


def _republish_lost_tasks(now) -> dict[str, int]:
    """Publish again the due rows that have waited LOST_TASK_AFTER with no task in the send queues: the broker
    lost them. Only asked when every send queue is empty, so a backlog is never mistaken for a loss."""
    if any(selectors.queue_depths().get(queue) != 0 for queue in SEND_QUEUES):  # a backlog, or no broker
        return {}
    stale = now - LOST_TASK_AFTER
    taken = [
        message for message in OutboundMessage.objects.lost_tasks(stale=stale).order_by("updated_at")[:STUCK_BATCH]
        if OutboundMessage.objects.take_lost_task(message.pk, stale=stale, now=now)
    ]
    return _publish_counted(taken)


def _publish_counted(messages: list[OutboundMessage]) -> dict[str, int]:
    if not messages or not tasks.publish_sends(messages):
        return {}
    counts: dict[str, int] = {}
    for message in messages:
        counts[message.status] = counts.get(message.status, 0) + 1
    return counts


def _workers_holding(messages: list[OutboundMessage]) -> dict[int, str]:
    """The worker recorded on each sending message's current attempt ("" or absent: none recorded)."""
    number = {message.pk: message.attempt_count for message in messages}
    rows = SendAttempt.objects.filter(message_id__in=number, outcome=AttemptOutcome.STARTED).exclude(worker="")
    return {
        message_id: worker
        for message_id, attempt, worker in rows.values_list("message_id", "number", "worker")
        if attempt == number[message_id]
    }


def _recover_interrupted(message: OutboundMessage, cutoff, *, dead_attempt: int | None = None) -> str | None:
    # The attempt that was cut off counts: on the last allowed one, the message fails (it may have gone out,
    # which the error says) rather than getting a try the retry budget does not have. Attempts a paused
    # instance excused are not in the budget.
    give_up = message.counted_attempts > settings.MESSAGING_MAX_RETRIES
    with transaction.atomic():
        if not OutboundMessage.objects.recover_interrupted(
            message.pk, stuck_before=cutoff, give_up=give_up, dead_attempt=dead_attempt
        ):
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
        callback_url = OutboundMessage.objects.filter(pk=message.pk).values_list("callback_url", flat=True).first()
        announce_status(message_id=message.pk, status=MessageStatus.FAILED, at=timezone.now(), callback_url=callback_url or "")
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
    before ``cutoff``. Unfinished messages are never deleted. A batch per transaction, so the tables stay usable
    while it runs.

    Without ``cutoff`` (beat's nightly run): MESSAGING_RETENTION_DAYS ago (nothing when that is 0), and then
    every other app purges its own old rows past its own setting (``retention_due``: replies and raw webhook
    events in inbound/, callback attempts in callbacks/), whose counts join the answer."""
    nightly = cutoff is None
    if nightly and settings.MESSAGING_RETENTION_DAYS:
        cutoff = timezone.now() - timedelta(days=settings.MESSAGING_RETENTION_DAYS)
    deleted = {"attempts": 0, "messages": 0}
    if cutoff is not None:
        attempts, finished = old_records(cutoff)
        deleted["attempts"] = delete_in_batches(SendAttempt, attempts, batch_size, pause)
        if messages:
            deleted["messages"] = delete_in_batches(OutboundMessage, finished, batch_size, pause)
        if any(deleted.values()):
            log.info("retention: deleted %s attempts and %s messages from before %s",
                     deleted["attempts"], deleted["messages"], cutoff.isoformat())
    if nightly:
        for receiver, counts in retention_due.send_robust(sender=OutboundMessage, batch_size=batch_size, pause=pause):
            if isinstance(counts, Exception):  # one app's failure leaves the others' retention to run
                log.error("retention: %s failed: %s: %s", getattr(receiver, "__qualname__", receiver),
                          type(counts).__name__, counts)
            else:
                deleted.update(counts)
    return deleted


def old_records(cutoff):
    """The attempts and the finished messages that retention deletes at ``cutoff``."""
    return (
        SendAttempt.objects.filter(started_at__lt=cutoff),
        OutboundMessage.objects.filter(status__in=FINAL_STATUSES, finished_at__lt=cutoff),
    )


def delete_in_batches(model, rows, batch_size: int, pause: float) -> int:
    """Delete ``rows`` a batch at a time, oldest ids first; each batch commits on its own. Other apps' retention
    uses it too."""
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
