"""POST /messages and friends: what clients see, including every way to get it wrong."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging import maintenance, services
from messaging.models import MessageStatus, OutboundMessage

pytestmark = pytest.mark.django_db


def post(api, body, **headers):
    return api.post("/messages", data=json.dumps(body), content_type="application/json", **headers)


def test_it_accepts_a_message_with_202_and_returns_it(api, sandbox_settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(api, {"phone": "+55 11 98765-4321", "message": "Hola Carlos"})
    assert response.status_code == 202
    body = response.json()
    assert body["success"] is True
    assert body["status"] == "queued"
    assert body["phone"] == "+5511987654321"
    assert body["message"] == "Hola Carlos"
    assert body["instance_name"] == sandbox_settings.EVOLUTION_INSTANCE_NAME
    assert body["task_id"]
    message = OutboundMessage.objects.get(pk=body["id"])
    assert message.task_id == body["task_id"]
    # The send is published only once the row is committed.
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"message": "hi"}, "phone"),
        ({"phone": "", "message": "hi"}, "phone"),
        ({"phone": "+55 11 98765-4321"}, "message"),
        ({"phone": "+55 11 98765-4321", "message": ""}, "message"),
        ({"phone": "+55 11 98765-4321", "message": "   "}, "message"),
        ({"phone": "12", "message": "hi"}, "phone"),
        ({"phone": "not a phone", "message": "hi"}, "phone"),
        ({"phone": "+55 11 98765-4321", "message": "x" * 4097}, "message"),
        ({"phone": "+55 11 98765-4321", "message": "hi", "instance_name": "nope"}, "instance_name"),
        ({"phone": "+55 11 98765-4321", "message": "hi", "scheduled_at": "tomorrow-ish"}, "scheduled_at"),
        ({"phone": "+55 11 98765-4321", "message": "hi", "scheduled_at": "2020-01-01T10:00:00Z"}, "scheduled_at"),
        ({"phone": "+55 11 98765-4321", "message": {"text": "hi"}}, "message"),
    ],
)
def test_it_rejects_bad_input_with_400_naming_the_field_and_writes_nothing(api, sandbox_settings, body, field):
    response = post(api, body)
    assert response.status_code == 400
    error = response.json()
    assert error["success"] is False
    assert field in error["error"]["fields"], error
    assert error["error"]["message"].startswith(f"{field}: ")
    assert OutboundMessage.objects.count() == 0


def test_it_rejects_a_body_that_is_not_json_with_400(api, sandbox_settings):
    response = api.post("/messages", data="phone=1&message=2{", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert OutboundMessage.objects.count() == 0


def test_it_rejects_a_json_list_with_400(api, sandbox_settings):
    response = api.post("/messages", data="[1, 2]", content_type="application/json")
    assert response.status_code == 400
    assert OutboundMessage.objects.count() == 0


def test_it_requires_a_token(client, sandbox_settings):
    response = client.post("/messages", data=json.dumps({"phone": "+5511987654321", "message": "hi"}), content_type="application/json")
    assert response.status_code == 401
    assert response.json()["success"] is False
    assert OutboundMessage.objects.count() == 0


def test_a_repeat_with_the_same_idempotency_key_returns_the_first_message_and_creates_nothing(api, sandbox_settings):
    first = post(api, {"phone": "+5511987654321", "message": "Pedido 123"}, HTTP_IDEMPOTENCY_KEY="order-123")
    again = post(api, {"phone": "+5511987654321", "message": "Pedido 123"}, HTTP_IDEMPOTENCY_KEY="order-123")
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert OutboundMessage.objects.count() == 1


def test_an_overlong_idempotency_key_is_a_400_naming_the_header(api, sandbox_settings):
    response = post(api, {"phone": "+5511987654321", "message": "hi"}, HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert OutboundMessage.objects.count() == 0


def test_null_characters_are_a_400_not_a_database_error(api, sandbox_settings):
    response = post(api, {"phone": "+5511987654321", "message": "hi\u0000there"})
    assert response.status_code == 400
    assert "message" in response.json()["error"]["fields"]


def test_a_scheduled_message_waits_with_no_task(api, sandbox_settings, django_capture_on_commit_callbacks):
    when = timezone.now() + timedelta(hours=1)
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(api, {"phone": "+5511987654321", "message": "later", "scheduled_at": when.isoformat()})
    assert response.status_code == 202
    assert response.json()["status"] == "scheduled"
    assert response.json()["task_id"] is None
    assert callbacks == []
    assert maintenance.dispatch_due_messages() == 0
    assert OutboundMessage.objects.get().status == MessageStatus.SCHEDULED


def test_it_shows_a_message_with_its_attempts(api, sandbox_settings):
    message, _ = services.accept_message(phone="+5511987654321", text="hi")
    response = api.get(f"/messages/{message.pk}")
    assert response.status_code == 200
    assert response.json()["id"] == message.pk
    assert response.json()["attempts"] == []


def test_an_unknown_message_is_a_json_404(api, sandbox_settings):
    response = api.get("/messages/999999")
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_it_lists_messages_filtered_by_status_and_phone(api, sandbox_settings):
    services.accept_message(phone="+5511987654321", text="one")
    services.accept_message(phone="+5511912345678", text="two")
    cancelled, _ = services.accept_message(phone="+5511912345678", text="three")
    services.cancel_message(message_id=cancelled.pk)

    by_phone = api.get("/messages", {"phone": "+55 11 91234-5678"}).json()["results"]
    assert [m["message"] for m in by_phone] == ["three", "two"]
    by_status = api.get("/messages", {"status": "cancelled"}).json()["results"]
    assert [m["message"] for m in by_status] == ["three"]
    assert api.get("/messages", {"status": "bogus"}).status_code == 400


def test_the_root_says_hello_with_links(client):
    body = client.get("/").json()
    assert set(body["links"]) >= {"messages", "health", "docs", "admin"}


def test_the_docs_are_served_without_a_cdn(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()
    assert client.get("/schema").status_code == 200


def test_health_is_200_when_database_broker_and_instance_are_fine(client, sandbox_settings):
    response = client.get("/health")
    assert response.status_code == 200, response.json()
    assert {name: check["status"] for name, check in response.json()["checks"].items()} == {
        "database": "ok", "broker": "ok", "evolution": "ok",
    }


def test_health_is_503_when_the_instance_is_disconnected(client, sandbox_settings, evolution_sandbox):
    import httpx

    httpx.post(f"{evolution_sandbox.url}/_sandbox/instances/{evolution_sandbox.instance}/state", json={"state": "close"})
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["evolution"]["status"] == "error"
    assert response.json()["checks"]["database"]["status"] == "ok"


def test_a_forged_cursor_is_a_404_not_a_server_error(api, sandbox_settings):
    import base64

    cursor = base64.b64encode(b"p=abc").decode()
    response = api.get("/messages", {"cursor": cursor})
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_a_task_id_with_a_null_character_is_a_404(api, sandbox_settings):
    assert api.get("/tasks/%00").status_code == 404


def test_an_idempotency_key_with_control_characters_is_a_400(api, sandbox_settings):
    response = post(api, {"phone": "+5511987654321", "message": "hi"}, HTTP_IDEMPOTENCY_KEY="a\x00b")
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert OutboundMessage.objects.count() == 0


def test_a_send_time_years_away_is_a_400(api, sandbox_settings):
    response = post(api, {"phone": "+5511987654321", "message": "hi", "scheduled_at": "2099-01-01T10:00:00Z"})
    assert response.status_code == 400
    assert "scheduled_at" in response.json()["error"]["fields"]


def test_a_client_cannot_use_the_consoles_reserved_idempotency_keys(api, sandbox_settings):
    response = post(api, {"phone": "+5511987654321", "message": "hi"}, HTTP_IDEMPOTENCY_KEY="console:resend-of:1")
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert OutboundMessage.objects.count() == 0
