"""Beat's nightly retention (the purge_old_records task) keeps inbound's tables to INBOUND_RETENTION_DAYS:
replies, finished batches, processed raw events and receipts; never an opt-out, nor work not done yet."""
from datetime import timedelta

import pytest
from django.utils import timezone

from inbound.models import Batch, BatchStatus, InboundMessage, OptOut, Receipt, WebhookEvent
from messaging import tasks

pytestmark = pytest.mark.django_db


def ago(days: int):
    return timezone.now() - timedelta(days=days)


def reply(days: int, n: int, *, batch=None, event=None) -> InboundMessage:
    return InboundMessage.objects.create(instance="console", whatsapp_id=f"3EB0OLD{n}", phone="+5511987650801",
                                         remote_jid="5511987650801@s.whatsapp.net", text=f"reply {n}",
                                         received_at=ago(days), batch=batch, event=event)


def batch(days: int, status: str) -> Batch:
    done = status == BatchStatus.DONE
    return Batch.objects.create(instance="console", phone=f"+55119876508{days:02d}", status=status,
                                opened_at=ago(days), due_at=ago(days), processed_at=ago(days) if done else None)


def event(days: int, n: int, *, processed: bool = True) -> WebhookEvent:
    return WebhookEvent.objects.create(instance="console", event="messages.upsert", dedupe_key=f"key-{n}", body={},
                                       received_at=ago(days), processed_at=ago(days) if processed else None)


def test_the_nightly_retention_deletes_old_replies_batches_events_and_receipts(settings):
    settings.INBOUND_RETENTION_DAYS = 30
    old_batch, new_batch = batch(31, BatchStatus.DONE), batch(29, BatchStatus.DONE)
    stuck = batch(60, BatchStatus.PROCESSING)  # its worker vanished: the tick releases it, retention must not
    old_event, new_event = event(31, 1), event(29, 2)
    unprocessed = event(60, 3, processed=False)  # the tick publishes it again
    old_reply = reply(31, 1, batch=old_batch, event=old_event)
    kept_reply = reply(29, 2, batch=new_batch, event=new_event)
    OptOut.objects.create(phone="+5511987650801", keyword="STOP", message=old_reply, opted_out_at=ago(31))
    Receipt.objects.create(instance="console", evolution_message_id="3EB0A", status="READ", at=ago(31))
    kept_receipt = Receipt.objects.create(instance="console", evolution_message_id="3EB0B", status="READ", at=ago(29))

    deleted = tasks.purge_old_records.apply().get()

    assert {key: deleted[key] for key in ("inbound_messages", "inbound_batches", "webhook_events", "receipts")} == {
        "inbound_messages": 1, "inbound_batches": 1, "webhook_events": 1, "receipts": 1}
    assert list(InboundMessage.objects.all()) == [kept_reply]
    assert set(Batch.objects.all()) == {new_batch, stuck}
    assert set(WebhookEvent.objects.all()) == {new_event, unprocessed}
    assert list(Receipt.objects.all()) == [kept_receipt]
    opt_out = OptOut.objects.get()  # the contact stays opted out, whatever the age of the STOP
    assert (opt_out.phone, opt_out.message) == ("+5511987650801", None)


def test_inbound_retention_zero_keeps_everything(settings):
    settings.INBOUND_RETENTION_DAYS = 0
    reply(3650, 1, batch=batch(3650, BatchStatus.DONE), event=event(3650, 1))
    Receipt.objects.create(instance="console", evolution_message_id="3EB0A", status="READ", at=ago(3650))

    deleted = tasks.purge_old_records.apply().get()

    assert "inbound_messages" not in deleted
    assert (InboundMessage.objects.count(), Batch.objects.count(), WebhookEvent.objects.count(),
            Receipt.objects.count()) == (1, 1, 1, 1)
