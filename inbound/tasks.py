"""Inbound's Celery tasks (thin) and their publishers. They run on the maintenance queue (config/celery.py's
default), apart from the sends, so a flood of replies never delays a send."""
import logging

from celery import shared_task

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
    """After commit. A broker failure is logged, not raised: the row is kept and beat's tick publishes it again."""
    try:
        process_webhook_event.delay(event_id)
    except Exception as error:  # noqa: BLE001 (any broker error: the event is kept and retried by the tick)
        log.error("webhook_event=%s not published: %s; the tick publishes it again", event_id, error)


def publish_batch(batch_id: int, *, countdown: float = 0) -> None:
    try:
        process_inbound_batch.apply_async((batch_id,), countdown=countdown)
    except Exception as error:  # noqa: BLE001
        log.error("batch=%s wake-up not published: %s; the tick wakes it", batch_id, error)
