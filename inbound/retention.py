"""Inbound's part of beat's nightly retention (messaging.maintenance.purge_old_records sends ``retention_due``):
replies, finished batches, processed raw webhook events and receipts older than INBOUND_RETENTION_DAYS. Opt-outs
are kept whatever their age (a purged reply leaves its opt-out without its message), and so is work not done yet:
a batch still collecting or processing, an event its task has not processed."""
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from inbound.models import Batch, BatchStatus, InboundMessage, Receipt, WebhookEvent
from messaging.maintenance import delete_in_batches


def purge_old_records(*, batch_size: int = 5000, pause: float = 0.0) -> dict[str, int]:
    if not settings.INBOUND_RETENTION_DAYS:
        return {}
    cutoff = timezone.now() - timedelta(days=settings.INBOUND_RETENTION_DAYS)
    # Messages before their batches and events, so deleting those nulls no reference to a row about to go anyway.
    return {
        "inbound_messages": delete_in_batches(
            InboundMessage, InboundMessage.objects.filter(received_at__lt=cutoff), batch_size, pause),
        "inbound_batches": delete_in_batches(
            Batch, Batch.objects.filter(status=BatchStatus.DONE, processed_at__lt=cutoff), batch_size, pause),
        "webhook_events": delete_in_batches(
            WebhookEvent, WebhookEvent.objects.filter(received_at__lt=cutoff, processed_at__isnull=False),
            batch_size, pause),
        "receipts": delete_in_batches(Receipt, Receipt.objects.filter(at__lt=cutoff), batch_size, pause),
    }
