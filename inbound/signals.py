"""The signals inbound sends, for the apps and projects that plug into replies (campaigns, a bot, a CRM).

- ``contact_opted_out(sender=OptOut, phone, instance, keyword)``: a contact wrote an opt-out keyword; sent once
  per phone, after the opt-out is committed. Campaigns listen to skip the contact.
- ``batch_ready(sender=Batch, batch, messages)``: a contact went quiet for INBOUND_DEBOUNCE_SECONDS; ``messages``
  are the batch's InboundMessages in arrival order. Sent once per batch, after the keyword rules ran: the one place
  to hook an automation. A receiver that raises is logged and does not stop the batch or the other receivers.
"""
from django.dispatch import Signal

contact_opted_out = Signal()
batch_ready = Signal()
