"""The admin's conversation with one contact: both ways interleaved by time, and a reply through the send path."""
import re
from html import unescape
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from inbound.models import InboundMessage
from messaging.models import MessageStatus, OutboundMessage

PHONE = "+5511987650701"
URL = "/admin/inbound/inboundmessage/conversation/5511987650701/"


def staff(client, role: str | None):
    person = get_user_model().objects.create_user(username=f"person-{role}", password="x-secret-pass-1", is_staff=True)
    if role:
        person.groups.add(Group.objects.get(name=role))
    client.force_login(person)
    return person


@pytest.fixture
def talk(db, settings):
    settings.EVOLUTION_INSTANCE_NAME, settings.EVOLUTION_INSTANCES = "console", ["console", "sales"]
    start = timezone.now() - timedelta(hours=1)
    OutboundMessage.objects.create(phone=PHONE, text="Your order shipped", instance="console", status=MessageStatus.SENT,
                                   created_at=start, sent_at=start, delivered_at=start + timedelta(seconds=5))
    InboundMessage.objects.create(instance="console", whatsapp_id="W1", phone=PHONE, remote_jid="x", push_name="Ana",
                                  message_type="conversation", text="When does it arrive?",
                                  received_at=start + timedelta(minutes=2))
    OutboundMessage.objects.create(phone=PHONE, text="Tomorrow before noon", instance="console",
                                   status=MessageStatus.SENT, created_at=start + timedelta(minutes=3),
                                   sent_at=start + timedelta(minutes=3))
    InboundMessage.objects.create(instance="sales", whatsapp_id="W2", phone=PHONE, remote_jid="x", push_name="Ana",
                                  message_type="conversation", text="Thanks!", received_at=start + timedelta(minutes=4))
    InboundMessage.objects.create(instance="console", whatsapp_id="W3", phone="+5511987650799", remote_jid="y",
                                  message_type="conversation", text="someone else", received_at=start)


def lines_of(page) -> list[tuple[str, str]]:
    html = page.content.decode()
    return [(direction, unescape(text)) for direction, text in
            re.findall(r'<li class="\w+" data-direction="(\w+)">([^<]*)<span', html)]


def test_the_conversation_shows_both_ways_interleaved_by_time(client, talk):
    staff(client, "Support")
    page = client.get(URL)

    assert page.status_code == 200
    assert lines_of(page) == [("out", "Your order shipped"), ("in", "When does it arrive?"),
                              ("out", "Tomorrow before noon"), ("in", "Thanks!")]
    assert "Sent, delivered" in page.content.decode()
    assert 'id="reply-form"' not in page.content.decode()  # Support may not compose


def test_the_replies_list_links_each_reply_to_its_conversation(client, talk):
    staff(client, "Operators")
    page = client.get("/admin/inbound/inboundmessage/")
    assert page.status_code == 200
    assert URL in page.content.decode()


def test_an_operator_replies_through_the_send_path_from_the_last_replys_instance(client, talk):
    operator = staff(client, "Operators")
    page = client.get(URL)
    assert 'id="reply-form"' in page.content.decode()
    assert re.search(r'<option value="sales" selected>', page.content.decode())  # where Ana wrote last

    answer = client.post(URL, {"text": "You're welcome", "instance": "sales"})

    assert answer.status_code == 302 and answer["Location"] == URL
    reply = OutboundMessage.objects.get(text="You're welcome")
    assert (reply.phone, reply.instance, reply.status, reply.created_by, reply.source) == (
        PHONE, "sales", MessageStatus.QUEUED, operator, "admin:conversation")
    assert reply.task_id  # queued for the send task, like any accepted message
    page = client.get(URL)
    assert f"queued as message #{reply.pk}" in page.content.decode()
    assert lines_of(page)[-1] == ("out", "You're welcome")


def test_a_reply_that_does_not_validate_is_shown_with_its_error_and_not_stored(client, talk):
    staff(client, "Operators")
    answer = client.post(URL, {"text": "\u200b", "instance": "console"})  # only a zero-width space

    assert answer.status_code == 200
    assert "This field may not be blank." in answer.content.decode()
    assert OutboundMessage.objects.count() == 2


def test_replying_needs_add_outboundmessage_and_reading_needs_view_inboundmessage(client, talk):
    staff(client, "Support")
    assert client.post(URL, {"text": "hi", "instance": "console"}).status_code == 403
    assert OutboundMessage.objects.count() == 2

    client.logout()
    staff(client, None)
    assert client.get(URL).status_code == 403
