"""Receipts: the sandbox's messages.update moves a sent message to delivered, and read, never back."""
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from inbound import services
from inbound.models import Receipt
from inbound.tests.support import post, receipt
from messaging import services as messaging_services
from messaging.models import MessageStatus, OutboundMessage
from messaging.signals import message_sent
from tests_support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_sent_message_is_delivered_when_the_sandbox_acknowledges_it(console):
    message, _ = messaging_services.accept_message(phone="+5511987650201", text="your code is 1234")

    wait_for(lambda: OutboundMessage.objects.get(pk=message.pk).delivered_at, what="delivered_at set")
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.read_at is None
    assert message.delivered_at >= message.sent_at


def test_a_sent_message_is_delivered_then_read_as_the_sandbox_posts_its_receipts(console, evolution_sandbox):
    # The sandbox as `make dev` runs it reads what it delivers; here sooner (its test default is never to read).
    evolution_sandbox.set_receipts(delivered_after=0.2, read_after=0.5)
    message, _ = messaging_services.accept_message(phone="+5511987650204", text="your table is ready")

    delivered = wait_for(lambda: OutboundMessage.objects.get(pk=message.pk).delivered_at, what="delivered_at set")
    wait_for(lambda: OutboundMessage.objects.get(pk=message.pk).read_at, what="read_at set")

    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.sent_at <= message.delivered_at <= message.read_at
    assert message.delivered_at == delivered  # the READ did not move it
    assert list(Receipt.objects.filter(evolution_message_id=message.evolution_message_id)
                .order_by("at").values_list("status", flat=True)) == ["DELIVERY_ACK", "READ"]
    assert [m["status"] for m in evolution_sandbox.sent_messages()] == ["READ"]


def test_a_receipt_that_arrives_before_the_send_saved_the_id_is_applied_when_it_does(console, evolution_sandbox):
    # 0408: the sandbox sends (and posts its receipts) but holds the HTTP answer 3 s, so the receipt comes first.
    message, _ = messaging_services.accept_message(phone="+5511987650408", text="slow gateway")

    early = wait_for(lambda: Receipt.objects.filter(status="DELIVERY_ACK").first(), what="receipt stored")
    assert OutboundMessage.objects.get(pk=message.pk).evolution_message_id == ""  # the send has not saved it yet
    wait_for(lambda: OutboundMessage.objects.get(pk=message.pk).status == MessageStatus.SENT, timeout=30, what="sent")
    # Applied right after the send's own commit (on_commit), so a moment after "sent" shows, not with it.
    wait_for(lambda: OutboundMessage.objects.get(pk=message.pk).delivered_at, timeout=10, what="early receipt applied")
    message.refresh_from_db()
    assert message.evolution_message_id == early.evolution_message_id
    assert message.delivered_at == early.at


def test_read_is_recorded_and_never_goes_back_to_delivered(console):
    message = OutboundMessage.objects.create(
        phone="+5511987650202", text="hi", instance="console", status=MessageStatus.SENT,
        evolution_message_id="3EB0AAAABBBBCCCCDDDD", sent_at=timezone.now(),
    )

    post(console.url, receipt("3EB0AAAABBBBCCCCDDDD", "READ"))
    read = wait_for(lambda: OutboundMessage.objects.get(pk=message.pk).read_at, what="read_at set")
    post(console.url, receipt("3EB0AAAABBBBCCCCDDDD", "DELIVERY_ACK"))
    wait_for(lambda: Receipt.objects.filter(status="DELIVERY_ACK").exists(), what="late delivery receipt stored")
    post(console.url, receipt("3EB0AAAABBBBCCCCDDDD", "PLAYED"))
    wait_for(lambda: Receipt.objects.filter(status="PLAYED").exists(), what="played receipt stored")

    message.refresh_from_db()
    assert message.read_at == read
    assert message.delivered_at == read  # a read message was delivered, at the latest when it was read
    assert message.status == MessageStatus.SENT


def test_the_api_shows_when_a_message_was_delivered_and_read(console):
    user = get_user_model().objects.create_superuser(username="root", password="x-secret-pass-1")
    message = OutboundMessage.objects.create(
        phone="+5511987650203", text="hi", instance="console", status=MessageStatus.SENT,
        evolution_message_id="3EB0EEEEFFFF00001111", sent_at=timezone.now(),
    )
    client = APIClient()
    client.force_authenticate(user)
    assert client.get(f"/messages/{message.pk}").json()["delivered_at"] is None

    post(console.url, receipt("3EB0EEEEFFFF00001111", "DELIVERY_ACK"))
    wait_for(lambda: OutboundMessage.objects.get(pk=message.pk).delivered_at, what="delivered")

    body = client.get(f"/messages/{message.pk}").json()
    assert body["delivered_at"] is not None
    assert body["read_at"] is None


def test_receipts_of_messages_the_console_did_not_send_are_kept_and_change_nothing(console):
    post(console.url, receipt("3EB0NOTOURS000000000", "DELIVERY_ACK"))

    wait_for(lambda: Receipt.objects.filter(evolution_message_id="3EB0NOTOURS000000000").exists(), what="kept")
    assert not OutboundMessage.objects.filter(delivered_at__isnull=False).exists()


def test_a_read_kept_before_the_send_saved_its_id_marks_the_message_delivered_and_read_once_it_does():
    # What inbound does on messaging's message_sent (receivers.py), without the processes around it.
    message = OutboundMessage.objects.create(
        phone="+5511987650205", text="hi", instance="console", status=MessageStatus.SENT,
        evolution_message_id="3EB0EARLYREAD0000000", sent_at=timezone.now(),
    )
    read_at = timezone.now()
    Receipt.objects.create(instance="console", evolution_message_id="3EB0EARLYREAD0000000", status="READ", at=read_at)

    message_sent.send_robust(sender=OutboundMessage, message_id=message.pk, instance="console",
                             evolution_message_id="3EB0EARLYREAD0000000")

    message.refresh_from_db()
    assert message.delivered_at == read_at and message.read_at == read_at


def test_a_send_no_receipt_came_before_is_left_as_sent():
    message = OutboundMessage.objects.create(
        phone="+5511987650206", text="hi", instance="console", status=MessageStatus.SENT,
        evolution_message_id="3EB0NORECEIPT0000000", sent_at=timezone.now(),
    )
    # A receipt of the same id on another instance is another message's.
    Receipt.objects.create(instance="other", evolution_message_id="3EB0NORECEIPT0000000", status="READ")

    assert services.apply_early_receipts(instance="console", evolution_message_id="3EB0NORECEIPT0000000") is False
    message.refresh_from_db()
    assert message.delivered_at is None and message.read_at is None
