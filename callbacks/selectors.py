"""Reads of callbacks for the API: who may see which status callbacks, by the access model of GET /messages."""
from django.db.models import Prefetch, QuerySet

from callbacks.models import CallbackAttempt, CallbackDelivery
from messaging.api.permissions import VIEW as VIEW_MESSAGES

VIEW_CALLBACKS = "callbacks.view_callbackdelivery"


def visible_deliveries(*, user) -> QuerySet:
    """What ``user`` may read: every callback with both view permissions (Support, Operators: what the admin shows
    them); otherwise (an API client) the callbacks of the messages it sent, as it sees only its own messages."""
    deliveries = CallbackDelivery.objects.prefetch_related(
        Prefetch("attempts", queryset=CallbackAttempt.objects.order_by("number"))
    )
    if user.has_perm(VIEW_CALLBACKS) and user.has_perm(VIEW_MESSAGES):
        return deliveries
    return deliveries.filter(message__created_by=user)


def callback_list(*, user, message: int | None = None, state: str = "", status: str = "") -> QuerySet:
    deliveries = visible_deliveries(user=user)
    if message:
        deliveries = deliveries.filter(message_id=message)
    if state:
        deliveries = deliveries.filter(state=state)
    if status:
        deliveries = deliveries.filter(status=status)
    return deliveries.order_by("-id")


def callbacks_of_message(*, user, message_id: int) -> list[CallbackDelivery]:
    """A message's callbacks in the order they are told (its statuses' order), if ``user`` may see them."""
    return list(visible_deliveries(user=user).filter(message_id=message_id).order_by("rank", "id"))
