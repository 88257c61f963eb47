"""GET /inbound: replies for integrators, under the same access model as GET /messages."""
import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from access.models import ApiClient
from inbound.models import InboundMessage
from messaging.models import OutboundMessage

pytestmark = pytest.mark.django_db


def reply(phone, text, n):
    return InboundMessage.objects.create(instance="console", whatsapp_id=f"3EB0{n}", phone=phone,
                                         remote_jid=phone[1:] + "@s.whatsapp.net", text=text)


def test_it_lists_the_replies_of_one_phone_newest_first():
    reply("+5511987650601", "first", 1)
    reply("+5511987650601", "second", 2)
    reply("+5511987650602", "someone else", 3)
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_superuser(username="root", password="x-pass-12345"))

    body = client.get("/inbound", {"phone": "+55 11 98765-0601"}).json()

    assert [item["text"] for item in body["results"]] == ["second", "first"]


def test_an_api_client_sees_only_the_replies_of_phones_it_sent_to():
    api_client, key = ApiClient.objects.create_client(name="crm")
    OutboundMessage.objects.create(phone="+5511987650603", text="hi", instance="console", created_by=api_client.user)
    reply("+5511987650603", "mine", 4)
    reply("+5511987650604", "not mine", 5)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    body = client.get("/inbound").json()

    assert [item["text"] for item in body["results"]] == ["mine"]


def test_a_phone_with_too_few_digits_to_mean_one_contact_finds_nothing():
    reply("+5511987650605", "hello", 6)
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_superuser(username="root", password="x-pass-12345"))

    answer = client.get("/inbound", {"phone": "not a phone 12"})

    assert answer.status_code == 200
    assert answer.json()["results"] == []
