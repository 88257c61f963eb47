"""Beat's nightly retention (the purge_old_records task) keeps callbacks to MESSAGING_RETENTION_DAYS, as the
messages they tell of: old attempts and finished callbacks go; one still being retried stays."""
from datetime import timedelta

import pytest
from django.utils import timezone

from callbacks.models import CallbackAttempt, CallbackDelivery, DeliveryState
from messaging import tasks
from messaging.models import MessageStatus, OutboundMessage

pytestmark = pytest.mark.django_db


def ago(days: int):
    return timezone.now() - timedelta(days=days)


def delivery(message, status: str, *, days: int, state: str = DeliveryState.DELIVERED, attempts: int = 1):
    row = CallbackDelivery.objects.create(
        message=message, status=status, rank=1, at=ago(days), url=message.callback_url, state=state,
        attempt_count=attempts, created_at=ago(days), finished_at=ago(days) if state != DeliveryState.PENDING else None,
    )
    for number in range(1, attempts + 1):
        CallbackAttempt.objects.create(delivery=row, number=number, started_at=ago(days), http_status=500)
    return row


def test_the_nightly_retention_deletes_old_callbacks_and_their_attempts_but_not_one_still_retried(settings):
    settings.MESSAGING_RETENTION_DAYS = 30
    # A message still scheduled, so messaging's own retention leaves it (and its callbacks) alone.
    message = OutboundMessage.objects.create(phone="+5511987650901", text="hi", instance="console",
                                             status=MessageStatus.SCHEDULED, scheduled_at=ago(-1),
                                             callback_url="https://example.com/status")
    old = delivery(message, "sent", days=31, state=DeliveryState.GAVE_UP, attempts=3)
    recent = delivery(message, "delivered", days=29)
    retried = delivery(message, "read", days=40, state=DeliveryState.PENDING, attempts=2)

    deleted = tasks.purge_old_records.apply().get()

    assert (deleted["callbacks"], deleted["callback_attempts"]) == (1, 5)  # old's 3 attempts, retried's 2
    assert set(CallbackDelivery.objects.all()) == {recent, retried}
    assert not CallbackDelivery.objects.filter(pk=old.pk).exists()
    assert CallbackAttempt.objects.filter(delivery=retried).count() == 0
    assert CallbackAttempt.objects.filter(delivery=recent).count() == 1
