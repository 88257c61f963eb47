"""Celery tasks, and the publisher of the send task beside it.

Tasks are thin: they take ids, call a service, and turn its answer into retry or done. Queues, routes and the beat
schedule that run them are in config/celery.py.
"""
import logging
from collections.abc import Sequence
from contextlib import nullcontext

from celery import shared_task
from django.db import InterfaceError, OperationalError

from config.celery import QUEUE_OF_PRIORITY, TRANSACTIONAL_QUEUE, publish_by_id
from evolution import instances
from messaging import maintenance, services
from messaging.models import OutboundMessage

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
    """Publish ``send_transactional_message`` for committed messages on one broker connection, each to the queue
    of its priority (transactional_messages or bulk_messages); return how many were published. Call after
    commit.

    A failure is logged, not raised: the row is the record, and the stuck-work sweeper
    (``maintenance.requeue_stuck_messages``) publishes again whatever did not go out, so an accepted message is
    never lost to a broker outage.

    The messages are Celery's own task messages, straight to their queue (``config.celery.publish_by_id``),
    published with one kombu producer inside ``Producer.batch()``: Redis buffers them in a pipeline, other
    transports publish one by one.
    """
    if not messages:
        return 0
    app = send_transactional_message.app
    queues = {priority: app.amqp.queues[name] for priority, name in QUEUE_OF_PRIORITY.items()}
    published = 0
    try:
        with app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(**PUBLISH_CONNECT_RETRY)
            # Declared once per connection (kombu caches it).
            declare = {priority: [queue.bind(producer.channel)] for priority, queue in queues.items()}
            # A batch costs a client of its own: worth it from two messages on.
            with producer.batch(max_size=PUBLISH_BATCH_SIZE) if len(messages) > 1 else nullcontext():
                for message in messages:
                    publish_by_id(producer, send_transactional_message, message.pk, task_id=message.task_id,
                                  queue=queues[message.priority], declare=declare[message.priority])
                    published += 1
    except Exception:
        log.exception("messages=%s enqueue failed (%s handed to the broker before the error); "
                      "the stuck-work sweeper will retry", id_ranges(messages), published)
        _remember_unpublished(messages)
        return 0
    if len(messages) == 1:
        log.info("message=%s task=%s enqueued queue=%s", messages[0].pk, messages[0].task_id,
                 QUEUE_OF_PRIORITY[messages[0].priority])
    else:
        log.info("messages=%s enqueued queues=%s count=%s", id_ranges(messages),
                 ",".join(sorted({QUEUE_OF_PRIORITY[m.priority] for m in messages})), len(messages))
    return published


def _remember_unpublished(messages: Sequence[OutboundMessage]) -> None:
    # The row records that its task never reached the broker, so the next sweep (every
    # MESSAGING_SWEEP_INTERVAL_SECONDS) publishes it as soon as the broker answers, not after the stuck cutoff.
    try:
        OutboundMessage.objects.mark_unpublished([message.pk for message in messages])
    except Exception:  # the database may be what failed; the stuck cutoff still covers these rows
        log.exception("messages=%s could not be marked unpublished", id_ranges(messages))


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
