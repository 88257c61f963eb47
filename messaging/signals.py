"""Signals messaging sends, so other apps can follow a message without messaging importing them.

- ``message_sent(sender=OutboundMessage, message_id, instance, evolution_message_id)``: a send recorded its
  WhatsApp id (a 201, or found already sent). Sent after commit. inbound applies receipts that came first.
"""
from django.dispatch import Signal

message_sent = Signal()
