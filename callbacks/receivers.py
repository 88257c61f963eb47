"""The callbacks app listens to messaging here: messaging announces status changes and never imports this app."""
from django.dispatch import receiver

from callbacks import services
from messaging.signals import message_status_changed


@receiver(message_status_changed, dispatch_uid="callbacks.record_status_change")
def record_status_change(sender, *, message_id, status, at, callback_url, **kwargs):
    services.record_status_change(message_id=message_id, status=status, at=at, callback_url=callback_url)
