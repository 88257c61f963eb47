"""One access model for every door: the API checks the admin's permissions, and API clients see their own."""
import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from access.models import ApiClient
from messaging import services
from messaging.models import MessageStatus, OutboundMessage

pytestmark = pytest.mark.django_db

MESSAGE = {"phone": "+55 11 98765-4321", "message": "Hola"}


def person(username, *, roles=(), staff=False, permissions=()) -> object:
    user = get_user_model().objects.create_user(username=username, password="secret-pass-123", is_staff=staff)
    user.groups.add(*(Group.objects.get(name=role) for role in roles))
    user.user_permissions.add(*(Permission.objects.get(codename=codename) for codename in permissions))
    return user


def signed_in(user) -> APIClient:
    """A browser session, as the admin leaves it, used on the API."""
    client = APIClient()
    client.login(username=user.username, password="secret-pass-123")
    return client


def with_token(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def machine(name) -> tuple[APIClient, ApiClient]:
    client_row, key = ApiClient.objects.create_client(name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, client_row


def post(client, path, body, **headers):
    return client.post(path, data=json.dumps(body), content_type="application/json", **headers)


def test_a_support_session_cannot_send_through_the_api(sandbox_settings):
    support = signed_in(person("support", roles=["Support"], staff=True))

    response = post(support, "/messages", MESSAGE)

    assert response.status_code == 403
    assert response.json()["success"] is False
    assert OutboundMessage.objects.count() == 0


def test_a_support_session_reads_every_message_as_in_the_admin(sandbox_settings):
    services.accept_message(phone="+5511987654321", text="from someone")
    support = signed_in(person("support", roles=["Support"], staff=True))
    assert len(support.get("/messages").json()["results"]) == 1


@pytest.mark.parametrize("staff", [True, False], ids=["staff", "not-staff"])
@pytest.mark.parametrize("door", [signed_in, with_token])
def test_a_user_with_no_role_can_neither_list_nor_send(sandbox_settings, door, staff):
    services.accept_message(phone="+5511987654321", text="private")
    nobody = door(person("nobody", staff=staff))

    assert nobody.get("/messages").status_code == 403
    assert post(nobody, "/messages", MESSAGE).status_code == 403
    assert post(nobody, "/messages/bulk", {"messages": [MESSAGE]}).status_code == 403
    assert OutboundMessage.objects.count() == 1


def test_a_support_session_may_read_and_resend_and_nothing_else_through_the_api(sandbox_settings):
    # Every API operation, as a Support user would try them from the browser their admin session is in.
    queued, _ = services.accept_message(phone="+5511987654321", text="queued")
    later, _ = services.accept_message(phone="+5511987654321", text="later",
                                       scheduled_at=timezone.now() + timedelta(hours=1))
    failed, _ = services.accept_message(phone="+5511987654321", text="failed")
    OutboundMessage.objects.filter(pk=failed.pk).update(status=MessageStatus.FAILED)
    support = signed_in(person("support", roles=["Support"], staff=True))

    assert support.get("/messages").status_code == 200
    assert support.get(f"/messages/{queued.pk}").status_code == 200
    assert post(support, "/messages", MESSAGE).status_code == 403
    assert post(support, "/messages/bulk", {"messages": [MESSAGE]}).status_code == 403
    assert post(support, f"/messages/{queued.pk}/cancel", {}).status_code == 403
    assert post(support, f"/messages/{later.pk}/send-now", {}).status_code == 403
    assert post(support, "/maintenance/requeue-stuck", {}).status_code == 403
    resent = post(support, f"/messages/{failed.pk}/resend", {})

    assert (resent.status_code, resent.json()["resend_of"]) == (202, failed.pk)
    assert OutboundMessage.objects.get(pk=queued.pk).status == MessageStatus.QUEUED
    assert OutboundMessage.objects.get(pk=later.pk).status == MessageStatus.SCHEDULED
    assert OutboundMessage.objects.count() == 4  # the three, and the resend


def test_a_client_granted_cancel_and_resend_cannot_touch_another_clients_messages(sandbox_settings):
    shop, shop_row = machine("shop")
    crm, _ = machine("crm")
    shop_row.user.user_permissions.add(*Permission.objects.filter(
        codename__in=["cancel_outboundmessage", "resend_outboundmessage"]))
    theirs = post(crm, "/messages", MESSAGE).json()
    failed = post(crm, "/messages", {**MESSAGE, "message": "failed"}).json()
    OutboundMessage.objects.filter(pk=failed["id"]).update(status=MessageStatus.FAILED)
    mine = post(shop, "/messages", MESSAGE).json()

    assert post(shop, f"/messages/{theirs['id']}/cancel", {}).status_code == 404
    assert post(shop, f"/messages/{failed['id']}/resend", {}).status_code == 404
    assert OutboundMessage.objects.get(pk=theirs["id"]).status == MessageStatus.QUEUED
    assert not OutboundMessage.objects.filter(resend_of_id=failed["id"]).exists()
    assert post(shop, f"/messages/{mine['id']}/cancel", {}).json()["status"] == "cancelled"  # granted: its own


def test_sending_for_later_needs_the_schedule_permission(sandbox_settings):
    sender = with_token(person("sender", permissions=["add_outboundmessage"]))
    later = (timezone.now() + timedelta(hours=1)).isoformat()

    assert post(sender, "/messages", {**MESSAGE, "scheduled_at": later}).status_code == 403
    assert post(sender, "/messages/bulk", {"messages": [MESSAGE, {**MESSAGE, "scheduled_at": later}]}).status_code == 403
    assert OutboundMessage.objects.count() == 0
    assert post(sender, "/messages", MESSAGE).status_code == 202


def test_an_api_client_sees_and_finds_only_its_own_messages(sandbox_settings):
    shop, _ = machine("shop")
    crm, _ = machine("crm")
    mine = post(shop, "/messages", MESSAGE).json()
    theirs = post(crm, "/messages", MESSAGE).json()

    assert [m["id"] for m in shop.get("/messages").json()["results"]] == [mine["id"]]
    assert shop.get(f"/messages/{mine['id']}").status_code == 200
    assert shop.get(f"/messages/{theirs['id']}").status_code == 404
    assert shop.get(f"/tasks/{theirs['task_id']}").status_code == 404
    assert shop.get(f"/tasks/{mine['task_id']}").json()["message_id"] == mine["id"]


def test_two_clients_using_the_same_key_make_two_messages_and_a_repeat_makes_none(sandbox_settings):
    shop, _ = machine("shop")
    crm, _ = machine("crm")

    first = post(shop, "/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="order-1")
    other = post(crm, "/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="order-1")
    again = post(shop, "/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="order-1")

    assert (first.status_code, other.status_code, again.status_code) == (202, 202, 200)
    assert first.json()["id"] != other.json()["id"]
    assert again.json()["id"] == first.json()["id"]
    assert OutboundMessage.objects.count() == 2


def test_a_repeated_keyed_bulk_request_creates_nothing_and_another_body_under_its_key_is_a_422(sandbox_settings):
    shop, _ = machine("shop")
    batch = {"messages": [MESSAGE, {"phone": "12", "message": "bad"}, {**MESSAGE, "message": "second"}]}

    first = post(shop, "/messages/bulk", batch, HTTP_IDEMPOTENCY_KEY="batch-7")
    again = post(shop, "/messages/bulk", batch, HTTP_IDEMPOTENCY_KEY="batch-7")
    changed = post(shop, "/messages/bulk", {"messages": [MESSAGE, MESSAGE, MESSAGE]}, HTTP_IDEMPOTENCY_KEY="batch-7")

    assert (first.status_code, again.status_code, changed.status_code) == (202, 200, 422)
    assert [r.get("id") for r in again.json()["results"]] == [r.get("id") for r in first.json()["results"]]
    assert list(changed.json()["error"]["fields"]) == ["Idempotency-Key"]
    assert OutboundMessage.objects.count() == 2


def test_a_client_cannot_cancel_or_resend_without_those_permissions(sandbox_settings):
    shop, _ = machine("shop")
    mine = post(shop, "/messages", MESSAGE).json()
    assert post(shop, f"/messages/{mine['id']}/cancel", {}).status_code == 403
    assert OutboundMessage.objects.get(pk=mine["id"]).status == MessageStatus.QUEUED


def test_an_operator_cancels_resends_and_sends_now_through_the_api(sandbox_settings):
    api = with_token(person("operator", roles=["Operators"], staff=True))
    queued, _ = services.accept_message(phone="+5511987654321", text="cancel me")
    later, _ = services.accept_message(phone="+5511987654321", text="later",
                                       scheduled_at=timezone.now() + timedelta(hours=1))
    failed, _ = services.accept_message(phone="+5511987654321", text="failed")
    OutboundMessage.objects.filter(pk=failed.pk).update(status=MessageStatus.FAILED)

    assert post(api, f"/messages/{queued.pk}/cancel", {}).json()["status"] == "cancelled"
    assert post(api, f"/messages/{queued.pk}/cancel", {}).status_code == 409
    assert post(api, f"/messages/{later.pk}/send-now", {}).json()["status"] == "queued"
    resent = post(api, f"/messages/{failed.pk}/resend", {})
    assert (resent.status_code, resent.json()["resend_of"]) == (202, failed.pk)
    assert post(api, f"/messages/{failed.pk}/resend", {}).json()["id"] == resent.json()["id"]
    assert post(api, f"/messages/{failed.pk}/explode", {}).status_code == 404


def test_a_revoked_client_key_is_refused(sandbox_settings):
    shop, row = machine("shop")
    assert post(shop, "/messages", MESSAGE).status_code == 202
    row.revoke()
    response = post(shop, "/messages", MESSAGE)
    assert response.status_code == 401
    assert response.json()["success"] is False
    assert OutboundMessage.objects.count() == 1


def test_a_deleted_token_or_a_deactivated_person_is_refused_on_the_next_request(sandbox_settings):
    operator = person("operator", roles=["Operators"])
    api = with_token(operator)
    assert post(api, "/messages", MESSAGE).status_code == 202

    operator.is_active = False
    operator.save(update_fields=["is_active"])
    assert post(api, "/messages", MESSAGE).status_code == 401

    operator.is_active = True
    operator.save(update_fields=["is_active"])
    assert post(api, "/messages", MESSAGE).status_code == 202
    Token.objects.filter(user=operator).delete()
    refused = post(api, "/messages", MESSAGE)
    assert (refused.status_code, refused.json()["success"]) == (401, False)
    assert OutboundMessage.objects.count() == 2


def test_a_key_is_read_with_its_user_as_the_orm_reads_them(sandbox_settings):
    from access import lookups

    operator = person("operator", roles=["Operators"])
    token = Token.objects.create(user=operator)
    _, row = machine("shop")

    for model, column, value, expected in [
        (Token, "key", token.key, Token.objects.select_related("user").get(key=token.key)),
        (ApiClient, "lookup", row.lookup, ApiClient.objects.select_related("user").get(lookup=row.lookup)),
    ]:
        found = lookups.with_user(model, column, value)
        assert [getattr(found, f.attname) for f in model._meta.concrete_fields] == [
            getattr(expected, f.attname) for f in model._meta.concrete_fields]
        assert [getattr(found.user, f.attname) for f in found.user._meta.concrete_fields] == [
            getattr(expected.user, f.attname) for f in expected.user._meta.concrete_fields]
        assert not found._state.adding and not found.user._state.adding
    assert lookups.with_user(Token, "key", "no-such-key") is None


def test_a_forged_key_is_refused(sandbox_settings):
    _, row = machine("shop")
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Bearer wac_{row.lookup}_not-the-secret")
    assert post(forged, "/messages", MESSAGE).status_code == 401


def test_the_admin_makes_a_client_shows_its_key_once_and_revokes_it(admin_client, sandbox_settings):
    page = admin_client.post("/admin/access/apiclient/add/", {"name": "shop checkout"}, follow=True)
    text = page.content.decode()
    key = text.split("shown this once: <code>")[1].split("</code>")[0]
    row = ApiClient.objects.get(name="shop checkout")
    assert key.startswith("wac_") and row.key_digest not in text and key not in row.key_digest
    assert key not in admin_client.get(f"/admin/access/apiclient/{row.pk}/change/").content.decode()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert post(client, "/messages", MESSAGE).status_code == 202
    admin_client.post("/admin/access/apiclient/", {"action": "revoke_selected", "_selected_action": [row.pk]})
    assert post(client, "/messages", MESSAGE).status_code == 401


@pytest.mark.parametrize("method,path", [
    ("get", "/messages"), ("post", "/messages"), ("post", "/messages/bulk"), ("get", "/messages/1"),
    ("post", "/messages/1/cancel"), ("post", "/messages/1/resend"), ("post", "/messages/1/send-now"),
    ("get", "/messages/1/callbacks"), ("get", "/tasks/some-task"), ("post", "/maintenance/requeue-stuck"),
    ("get", "/inbound"), ("get", "/callbacks"), ("post", "/campaigns"), ("get", "/campaigns/1"),
    ("post", "/campaigns/1/pause"), ("post", "/contacts/import"), ("get", "/contacts/import/1"),
])
def test_an_anonymous_caller_gets_401_from_every_api_route(client, method, path):
    # README, Security: what an anonymous caller reaches is the public endpoints' table, and nothing of the API.
    response = client.get(path) if method == "get" else client.post(path, data="{}", content_type="application/json")
    assert response.status_code == 401, path
    assert response.json()["success"] is False


def test_an_anonymous_caller_gets_only_what_the_public_endpoints_table_says(client, sandbox_settings):
    assert client.get("/").json()["service"] == "WhatsApp messaging console"
    assert set(client.get("/health").json()) == {"status", "checks", "paused_instances"}
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    assert client.post("/webhooks/evolution/console", data="{}", content_type="application/json").status_code == 401
    assert client.post("/webhooks/evolution/no-such", data="{}", content_type="application/json").status_code == 401
    assert client.get("/webhooks/evolution/console").status_code == 405
    assert client.get("/admin/").status_code == 302  # to the login page
    assert client.get("/no-such-path").status_code == 404
