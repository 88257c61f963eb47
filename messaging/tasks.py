"""Celery tasks, and the publisher of the send task beside it.

Tasks are thin: they take ids, call a service, and turn its answer into retry or done. Queues, routes and the beat
schedule that run them are in config/celery.py.
"""
import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from config.celery import BULK_QUEUE, QUEUE_OF_PRIORITY, TRANSACTIONAL_QUEUE, new_task_id, publish_by_id
from evolution import instances
from messaging import maintenance, metrics, services
from messaging.models import OutboundMessage, Priority

log = logging.getLogger("messaging")


DATABASE_RETRY_SECONDS = 5


# ignore_result: the message row is the task's result (GET /tasks/{id} reads it), so no django-celery-results
# row is written per send: that write was four statements (BEGIN, SELECT, INSERT, COMMIT) next to the send's own.
@shared_task(bind=True, name="send_transactional_message", max_retries=None, ignore_result=True)
def send_transactional_message(self, message_id: int, paced_until: float | None = None) -> dict:
    # Retries are counted on the row (attempt_count), not by Celery, so a re-queued task keeps the budget.
    try:
        outcome = services.send_message(message_id=message_id, task_id=self.request.id or "", paced_until=paced_until)
    except (OperationalError, InterfaceError) as error:
        # PostgreSQL is down: the row cannot be read or moved. Keep the task (not failed, not dropped) and try
        # again shortly; the claim makes a rerun harmless, and the sweeper finishes any send this left half-done.
        log.warning("message=%s task=%s database unavailable (%s); retrying in %ss",
                    message_id, self.request.id, type(error).__name__, DATABASE_RETRY_SECONDS)
        queue = (self.request.delivery_info or {}).get("routing_key") or TRANSACTIONAL_QUEUE
        raise self.retry(countdown=DATABASE_RETRY_SECONDS, kwargs={"paced_until": paced_until}, queue=queue)
    if outcome.retry_in is not None:
        # Back on the queue it came from (a bulk send stays behind transactional ones), carrying its paced slot.
        queue = (self.request.delivery_info or {}).get("routing_key") or TRANSACTIONAL_QUEUE
        raise self.retry(countdown=outcome.retry_in, kwargs={"paced_until": outcome.paced_until}, queue=queue)
    return outcome.as_dict()


# A batch hands the rest of its messages back to the queue after this long, so a transactional send waits behind
# at most about this much bulk work per worker thread, however slow the gateway answers.
BATCH_TIME_BUDGET_SECONDS = 1.0


@shared_task(bind=True, name="send_bulk_messages", max_retries=None, ignore_result=True)
def send_bulk_messages(self, message_ids: list[int]) -> None:
    """Send several bulk messages of one instance, one after the other, in one task run.

    Each goes through ``services.send_message`` exactly as under its own ``send_transactional_message``: its own
    claim, attempt rows and final state, so exactly-once holds per message. What a batch saves is Celery's work
    per task (fetch, ack, trace), which was most of a worker's CPU per send. A message that must come back later
    (a retry, a paced or paused send) goes back on the queue as its own ``send_transactional_message``.
    """
    queue = (self.request.delivery_info or {}).get("routing_key") or BULK_QUEUE
    with metrics.batched():  # one Redis write for the batch's counts
        started = time.monotonic()
        for index, message_id in enumerate(message_ids):
            if index and time.monotonic() - started > BATCH_TIME_BUDGET_SECONDS:
                log.info("messages=%s handed back to the queue after %.1fs of batch %s", message_ids[index:],
                         time.monotonic() - started, self.request.id)
                rest = message_ids[index:]
                try:
                    _publish([(send_bulk_messages, rest, new_task_id(), queue)])
                except Exception:
                    log.exception("messages=%s could not be handed back to the queue; the stuck-work sweeper will",
                                  rest)
                    _remember_unpublished(rest)
                return
            try:
                outcome = services.send_message(message_id=message_id, task_id=self.request.id or "")
            except (OperationalError, InterfaceError) as error:
                # As send_transactional_message does: keep the rest of the batch, try again when the database is back.
                log.warning("messages=%s task=%s database unavailable (%s); retrying in %ss",
                            message_ids[index:], self.request.id, type(error).__name__, DATABASE_RETRY_SECONDS)
                raise self.retry(countdown=DATABASE_RETRY_SECONDS, args=(message_ids[index:],), queue=queue)
            if outcome.retry_in is not None:
                _send_later(message_id, outcome, queue_name=queue)


def _send_later(message_id: int, outcome: services.SendOutcome, *, queue_name: str) -> None:
    """What ``self.retry`` does for a single send, for one message of a batch: its own task, due later."""
    try:
        send_transactional_message.apply_async(
            (message_id,), {"paced_until": outcome.paced_until}, countdown=outcome.retry_in, queue=queue_name,
        )
    except Exception:
        log.exception("message=%s could not be queued for its next try; the stuck-work sweeper will", message_id)
        _remember_unpublished([message_id])


@shared_task(name="dispatch_due_messages")
def dispatch_due_messages() -> int:
    return maintenance.dispatch_due_messages()


@shared_task(name="requeue_stuck_messages")
def requeue_stuck_messages() -> dict:
    return maintenance.requeue_stuck_messages()


@shared_task(name="check_paused_instances")
def check_paused_instances() -> list[str]:
    return instances.check_paused_instances()


@shared_task(name="purge_old_records")
def purge_old_records() -> dict:
    return maintenance.purge_old_records()


# --- publishing the send task ------------------------------------------------------------------------------------

# Redis commands buffered before the publish batch is flushed (one pipeline round trip each).
PUBLISH_BATCH_SIZE = 1000
# How hard a publish tries to reach a broker that is down: one quick retry, then the sweeper's turn. Without it
# kombu's connection retry (broker_connection_timeout, 2 s steps) held each POST /messages about 6 s in an outage.
PUBLISH_CONNECT_RETRY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.2, "interval_max": 0.2,
                         "timeout": 1}


def publish_send(message: OutboundMessage) -> bool:
    """Publish the send task of one committed message (see ``publish_sends``)."""
    return publish_sends([message]) == 1


def publish_sends(messages: Sequence[OutboundMessage]) -> int:
    """Publish the send tasks of committed messages on one broker connection, to the queue of their priority;
    return how many messages were published. Call after commit.

    A transactional message gets its own ``send_transactional_message`` on transactional_messages. Bulk messages
    (bulk requests, campaigns, scheduled releases) go to bulk_messages in batches of up to
    MESSAGING_BULK_BATCH_SIZE of one instance, each a ``send_bulk_messages`` task (a batch of one is a
    ``send_transactional_message`` like any other).

    A failure is logged, not raised: the row is the record, and the stuck-work sweeper
    (``maintenance.requeue_stuck_messages``) publishes again whatever did not go out, so an accepted message is
    never lost to a broker outage.

    The messages are Celery's own task messages, straight to their queue (``config.celery.publish_by_id``),
    published with one kombu producer inside ``Producer.batch()``: Redis buffers them in a pipeline, other
    transports publish one by one.
    """
    if not messages:
        return 0
    sends = _send_tasks(messages)
    try:
        _publish(sends)
    except Exception:
        log.exception("messages=%s enqueue failed; the stuck-work sweeper will retry", id_ranges(messages))
        _remember_unpublished([message.pk for message in messages])
        return 0
    if len(messages) == 1:
        log.info("message=%s task=%s enqueued queue=%s", messages[0].pk, messages[0].task_id,
                 QUEUE_OF_PRIORITY[messages[0].priority])
    else:
        log.info("messages=%s enqueued queues=%s count=%s tasks=%s", id_ranges(messages),
                 ",".join(sorted({QUEUE_OF_PRIORITY[m.priority] for m in messages})), len(messages), len(sends))
    return len(messages)


def _send_tasks(messages: Sequence[OutboundMessage]) -> list[tuple]:
    """(task, argument, task id, queue name) for each task that sends these messages."""
    size = settings.MESSAGING_BULK_BATCH_SIZE
    singles, bulk_of_instance = [], {}
    for message in messages:
        if message.priority == Priority.BULK:
            bulk_of_instance.setdefault(message.instance, []).append(message)
        else:
            singles.append(message)
    sends = []
    for bulk in bulk_of_instance.values():
        for start in range(0, len(bulk), size):
            batch = bulk[start:start + size]
            if len(batch) == 1:  # alone, it is sent like any single message (to its priority's queue)
                singles.append(batch[0])
            else:
                sends.append((send_bulk_messages, [message.pk for message in batch], new_task_id(), BULK_QUEUE))
    return [(send_transactional_message, message.pk, message.task_id, QUEUE_OF_PRIORITY[message.priority])
            for message in singles] + sends


def _publish(sends: Sequence[tuple]) -> None:
    """Publish (task, argument, task id, queue name) tasks on one broker connection; raise what the broker
    raised."""
    app = send_transactional_message.app
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(**PUBLISH_CONNECT_RETRY)
        declared = {}
        # A batch costs a client of its own: worth it from two messages on.
        with producer.batch(max_size=PUBLISH_BATCH_SIZE) if len(sends) > 1 else nullcontext():
            for task, argument, task_id, name in sends:
                queue = app.amqp.queues[name]
                if name not in declared:  # declared once per connection (kombu caches it)
                    declared[name] = [queue.bind(producer.channel)]
                publish_by_id(producer, task, argument, task_id=task_id, queue=queue, declare=declared[name])


def _remember_unpublished(message_ids: Sequence[int]) -> None:
    # The row records that its task never reached the broker, so the next sweep (every
    # MESSAGING_SWEEP_INTERVAL_SECONDS) publishes it as soon as the broker answers, not after the stuck cutoff.
    try:
        OutboundMessage.objects.mark_unpublished(list(message_ids))
    except Exception:  # the database may be what failed; the stuck cutoff still covers these rows
        log.exception("messages=%s could not be marked unpublished", list(message_ids))


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
