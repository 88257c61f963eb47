"""Campaigns listen to inbound here: a contact who wrote STOP (or another opt-out word) is opted out of campaigns.
Inbound never imports campaigns, and messaging imports neither."""
from django.dispatch import receiver

from campaigns import services
from inbound.signals import contact_opted_out


@receiver(contact_opted_out, dispatch_uid="campaigns.opt_out_on_reply")
def opt_out_on_reply(sender, *, phone, **kwargs):
    services.opt_out_phones(phones=[phone], source="reply")
