"""Inbound listens to messaging here: messaging sends ``message_sent`` and ``retention_due`` and never imports
inbound."""
from django.dispatch import receiver

from inbound import retention, services
from messaging.signals import message_sent, retention_due


@receiver(message_sent, dispatch_uid="inbound.apply_early_receipts")
def apply_early_receipts(sender, *, message_id, instance, evolution_message_id, **kwargs):
    """A receipt can arrive before the send saved the message's WhatsApp id (Evolution posts it while the HTTP
    answer is still on its way); it was kept, and is applied now."""
    services.apply_early_receipts(instance=instance, evolution_message_id=evolution_message_id)


@receiver(retention_due, dispatch_uid="inbound.purge_old_records")
def purge_old_records(sender, *, batch_size, pause, **kwargs) -> dict[str, int]:
    return retention.purge_old_records(batch_size=batch_size, pause=pause)
