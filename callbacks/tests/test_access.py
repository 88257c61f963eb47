"""Who sees callbacks and replies, through the API and the admin: the access model of GET /messages. Support and
Operators see them all; an API client sees the callbacks of its own messages and the replies of the phones it
sent to, unless it is granted more."""
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import ApiClient
from callbacks.models import CallbackAttempt, CallbackDelivery
from inbound.models import InboundMessage
from messaging.models import OutboundMessage
from messaging.tests.admin_fixtures import make_user

pytestmark = pytest.mark.django_db


def with_key(name: str) -> tuple[APIClient, ApiClient]:
    row, key = ApiClient.objects.create_client(name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, row


def person(username: str, *groups: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user(username, groups=groups))
    return client


def told(created_by, phone: str, *statuses: str) -> OutboundMessage:
    """A sent message with a callback_url and a delivery per status, the first POST answered 200."""
    message = OutboundMessage.objects.create(phone=phone, text="hi", instance="console", status="sent",
                                             callback_url="https://example.com/status", created_by=created_by)
    for rank, status in enumerate(statuses, start=1):
        delivery = CallbackDelivery.objects.create(message=message, status=status, rank=rank, at=timezone.now(),
                                                   url=message.callback_url, state="delivered", attempt_count=1)
        CallbackAttempt.objects.create(delivery=delivery, number=1, http_status=200, duration_ms=12)
    return message


def test_an_api_client_reads_the_callbacks_of_its_own_messages_only():
    shop, shop_row = with_key("shop")
    crm, crm_row = with_key("crm")
    mine = told(shop_row.user, "+5511987650701", "sent", "delivered", "read")
    theirs = told(crm_row.user, "+5511987650702", "sent")

    listed = shop.get("/callbacks").json()["results"]
    assert {item["message"] for item in listed} == {mine.pk}
    ordered = shop.get(f"/messages/{mine.pk}/callbacks")
    assert ordered.status_code == 200
    assert [item["status"] for item in ordered.json()] == ["sent", "delivered", "read"]
    assert ordered.json()[0]["attempts"] == [
        {"number": 1, "started_at": ordered.json()[0]["attempts"][0]["started_at"], "finished_at": None,
         "duration_ms": 12, "http_status": 200, "error": ""}]
    assert shop.get(f"/messages/{theirs.pk}/callbacks").status_code == 404
    assert shop.get("/callbacks", {"message": theirs.pk}).json()["results"] == []


def test_support_and_operators_read_every_callback_and_a_role_less_user_none():
    shop, shop_row = with_key("shop")
    message = told(shop_row.user, "+5511987650703", "sent", "delivered")

    for role in ("Support", "Operators"):
        client = person(role.lower(), role)
        assert len(client.get("/callbacks", {"message": message.pk}).json()["results"]) == 2
        assert len(client.get(f"/messages/{message.pk}/callbacks").json()) == 2
    nobody = person("nobody")
    assert nobody.get("/callbacks").status_code == 403
    assert nobody.get(f"/messages/{message.pk}/callbacks").status_code == 403


def test_a_client_granted_a_role_sees_what_the_role_sees():
    shop, shop_row = with_key("shop")
    _, crm_row = with_key("crm")
    theirs = told(crm_row.user, "+5511987650704", "sent")
    assert shop.get("/callbacks").json()["results"] == []

    shop_row.user.groups.add(Group.objects.get(name="Support"))

    assert [item["message"] for item in shop.get("/callbacks").json()["results"]] == [theirs.pk]


@pytest.mark.parametrize("query", [{"state": "lost"}, {"status": "queued"}, {"message": "1\x00"}, {"message": "0"}])
def test_a_filter_the_api_cannot_read_is_a_400_in_the_envelope(query):
    answer = person("sam", "Support").get("/callbacks", query)
    assert answer.status_code == 400
    assert answer.json()["success"] is False and list(answer.json()["error"]["fields"]) == list(query)


def test_get_inbound_for_a_phone_shows_a_client_only_the_replies_of_phones_it_sent_to():
    shop, shop_row = with_key("shop")
    OutboundMessage.objects.create(phone="+5511987650705", text="hi", instance="console", created_by=shop_row.user)
    for n, phone in enumerate(("+5511987650705", "+5511987650706")):
        InboundMessage.objects.create(instance="console", whatsapp_id=f"3EB0ACCESS{n}", phone=phone,
                                      remote_jid=phone[1:] + "@s.whatsapp.net", text=f"reply from {phone}")

    assert [m["text"] for m in shop.get("/inbound", {"phone": "5511987650705"}).json()["results"]] == [
        "reply from +5511987650705"]
    assert shop.get("/inbound", {"phone": "+55 11 98765-0706"}).json()["results"] == []
    assert len(person("sam", "Support").get("/inbound", {"phone": "+55 11 98765-0706"}).json()["results"]) == 1


# --- the admin -----------------------------------------------------------------------------------------------------


def test_support_reads_conversations_and_callbacks_in_the_admin_but_edits_no_keyword_rule(client):
    message = told(None, "+5511987650707", "sent")
    client.force_login(make_user("sam", groups=["Support"]))

    assert client.get("/admin/callbacks/callbackdelivery/").status_code == 200
    assert client.get(f"/admin/callbacks/callbackdelivery/{message.callback_deliveries.get().pk}/change/").status_code == 200
    assert client.get("/admin/inbound/inboundmessage/conversation/5511987650707/").status_code == 200
    assert client.get("/admin/inbound/keywordrule/add/").status_code == 403


def test_operators_edit_keyword_rules_and_reply_from_a_conversation(client, settings):
    settings.EVOLUTION_INSTANCES = ["console"]
    client.force_login(make_user("olga", groups=["Operators"]))

    added = client.post("/admin/inbound/keywordrule/add/", {"keyword": "PRECIO", "action": "reply",
                                                            "reply_text": "Desde 10 €", "enabled": "on"})
    replied = client.post("/admin/inbound/inboundmessage/conversation/5511987650708/",
                          {"text": "¡Hola!", "instance": "console"})

    assert added.status_code == 302, added.context["adminform"].form.errors if added.context else added
    assert replied.status_code == 302
    assert OutboundMessage.objects.get(phone="+5511987650708").text == "¡Hola!"
    assert client.get("/admin/callbacks/callbackdelivery/").status_code == 200
