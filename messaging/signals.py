"""Signals messaging sends, so other apps can follow a message without messaging importing them.

- ``message_sent(sender=OutboundMessage, message_id, instance, evolution_message_id)``: a send recorded its
  WhatsApp id (a 201, or found already sent). Sent after commit. inbound applies receipts that came first.
- ``message_status_changed(sender=OutboundMessage, message_id, status, at, callback_url)``: a message with a
  ``callback_url`` was sent, delivered, read, failed or expired. Sent after commit (``announce_status``); the
  callbacks app records the call to make and makes it in a task.
- ``retention_due(sender=OutboundMessage, batch_size, pause)``: beat's nightly retention (``maintenance.
  purge_old_records``) purged messaging's old rows; each receiver deletes its own app's past its retention
  setting and returns ``{what: rows deleted}``.
"""
from django.db import transaction
from django.dispatch import Signal

message_sent = Signal()
message_status_changed = Signal()
retention_due = Signal()


def announce_status(*, message_id: int, status: str, at, callback_url: str) -> None:
    """Send ``message_status_changed`` once the current transaction commits; nothing for a message without a
    callback_url, so the send path pays nothing for those. Receipts (inbound) announce through here too."""
    if not callback_url:
        return
    from messaging.models import OutboundMessage

    transaction.on_commit(lambda: message_status_changed.send_robust(
        sender=OutboundMessage, message_id=message_id, status=status, at=at, callback_url=callback_url,
    ))
