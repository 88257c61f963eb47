"""Inbound's Celery tasks (thin) and their publishers. They run on the maintenance queue (config/celery.py's
default), apart from the sends, so a flood of replies never delays a send."""
import logging
from functools import cache

from celery import shared_task

from config.celery import new_task_id, publish_by_id
from inbound import services

log = logging.getLogger("inbound")


@shared_task(name="process_webhook_event")
def process_webhook_event(event_id: int) -> str:
    return services.process_event(event_id=event_id)


@shared_task(name="process_inbound_batch")
def process_inbound_batch(batch_id: int) -> dict:
    outcome = services.process_batch(batch_id=batch_id)
    if outcome.wait is not None:
        # A message arrived since this wake-up was set: wake again when the batch's new due time comes.
        publish_batch(batch_id, countdown=outcome.wait)
    return {"batch": batch_id, "processed": outcome.processed, "wait": outcome.wait, "detail": outcome.detail}


@shared_task(name="inbound_tick")
def inbound_tick() -> dict:
    batches, events = services.due_work()
    for batch_id in batches:
        publish_batch(batch_id)
    for event_id in events:
        publish_event(event_id)
    return {"batches": len(batches), "events": len(events)}


def publish_event(event_id: int) -> None:
    """After commit. A broker failure is logged, not raised: the row is kept and beat's tick publishes it again.

    The receiver's hot path: published with ``config.celery.publish_by_id`` (Celery's own task message, straight
    to the queue). ``delay()`` does the same with per-call routing and an exchange lookup in Redis: three times the
    CPU and a second round trip."""
    try:
        _publish_by_id(process_webhook_event, event_id)
    except Exception as error:  # noqa: BLE001 (any broker error: the event is kept and retried by the tick)
        log.error("webhook_event=%s not published: %s; the tick publishes it again", event_id, error)


def _publish_by_id(task, object_id: int) -> None:
    queue = _queue_of(task.name)
    with task.app.producer_or_acquire() as producer:
        publish_by_id(producer, task, object_id, task_id=new_task_id(), queue=queue,
                      declare=[queue.bind(producer.channel)])


@cache
def _queue_of(task_name: str):
    """The queue the routes give this task (maintenance, config/celery.py)."""
    app = process_webhook_event.app
    queue_name = app.amqp.router.route({}, task_name, args=(0,), kwargs={}).get("queue") or app.amqp.default_queue
    return queue_name if hasattr(queue_name, "bind") else app.amqp.queues[queue_name]


def publish_batch(batch_id: int, *, countdown: float = 0) -> None:
    try:
        process_inbound_batch.apply_async((batch_id,), countdown=countdown)
    except Exception as error:  # noqa: BLE001
        log.error("batch=%s wake-up not published: %s; the tick wakes it", batch_id, error)
