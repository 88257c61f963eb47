"""Thin: the delivery work is in callbacks/services.py. On the maintenance queue, never the send queues."""
from celery import shared_task

from callbacks import services


@shared_task(name="deliver_status_callbacks", ignore_result=True)
def deliver_status_callbacks(message_id: int) -> None:
    """POST a message's waiting status callbacks in order; come back when the next one is due."""
    wait = services.deliver_pending(message_id=message_id)
    if wait is not None:
        deliver_status_callbacks.apply_async((message_id,), countdown=max(wait, 0.05))


@shared_task(name="wake_due_callbacks", ignore_result=True)
def wake_due_callbacks() -> int:
    return services.wake_due_deliveries()
