"""The callbacks app listens to messaging here: messaging announces status changes and beat's retention, and never
imports this app."""
from django.dispatch import receiver

from callbacks import services
from messaging.signals import message_status_changed, retention_due


@receiver(message_status_changed, dispatch_uid="callbacks.record_status_change")
def record_status_change(sender, *, message_id, status, at, callback_url, **kwargs):
    services.record_status_change(message_id=message_id, status=status, at=at, callback_url=callback_url)


@receiver(retention_due, dispatch_uid="callbacks.purge_old_records")
def purge_old_records(sender, *, batch_size, pause, **kwargs) -> dict[str, int]:
    return services.purge_old_records(batch_size=batch_size, pause=pause)
