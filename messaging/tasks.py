"""Celery tasks: thin. They take ids, call a service, and turn its answer into retry or done."""
from celery import shared_task

from messaging import services


@shared_task(bind=True, name="send_transactional_message", max_retries=None)
def send_transactional_message(self, message_id: int) -> dict:
    # Retries are counted on the row (attempt_count), not by Celery, so a re-queued task keeps the budget.
    outcome = services.send_message(message_id=message_id, task_id=self.request.id or "")
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.as_dict()


@shared_task(name="dispatch_due_messages")
def dispatch_due_messages() -> int:
    return services.dispatch_due_messages()


@shared_task(name="requeue_stuck_messages")
def requeue_stuck_messages() -> dict:
    return services.requeue_stuck_messages()
