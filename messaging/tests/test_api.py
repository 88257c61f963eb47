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


# --- issue 9: what a new user tripped over ------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["98765 4321", "98765-4321", "987654321", "+55 11 98765-4321", "4321"])
def test_the_phone_filter_finds_a_message_by_any_fragment_the_admin_search_finds(api, admin_client, sandbox_settings, typed):
    wanted, _ = services.accept_message(phone="+5511987654321", text="wanted")
    services.accept_message(phone="+5511912345678", text="other")

    by_api = [m["id"] for m in api.get("/messages", {"phone": typed}).json()["results"]]
    by_admin = list(admin_client.get("/admin/messaging/outboundmessage/", {"q": typed}).context["cl"].result_list)

    assert by_api == [wanted.pk]
    assert [m.pk for m in by_admin] == by_api


@pytest.mark.parametrize("path", ["/messages/abc", "/messages/-1", "/messages/1/attempts", "/nowhere"])
def test_a_path_no_route_matches_is_the_json_error_envelope(api, sandbox_settings, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == "not_found"


def test_the_admin_keeps_its_own_pages_for_unknown_paths(admin_client):
    assert admin_client.get("/admin/messaging/outboundmessage/999999/change/").status_code in (302, 404)
    assert "application/json" not in admin_client.get("/admin/nowhere/").get("Content-Type", "")


def test_an_idempotency_key_reused_with_another_body_is_a_422_naming_the_header(api, sandbox_settings):
    first = post(api, {"phone": "+5511987654321", "message": "Pedido 123"}, HTTP_IDEMPOTENCY_KEY="order-123")
    other = post(api, {"phone": "+5511987654321", "message": "Pedido 124"}, HTTP_IDEMPOTENCY_KEY="order-123")
    assert first.status_code == 202
    assert other.status_code == 422
    assert list(other.json()["error"]["fields"]) == ["Idempotency-Key"]
    assert other.json()["error"]["message"].startswith("Idempotency-Key: ")
    assert OutboundMessage.objects.count() == 1
    # The same request typed another way is a true repeat.
    again = post(api, {"phone": "+55 11 98765-4321", "message": "Pedido 123"}, HTTP_IDEMPOTENCY_KEY="order-123")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])


def test_a_retried_scheduled_request_returns_its_message_even_after_its_send_time(api, sandbox_settings):
    when = (timezone.now() + timedelta(seconds=1)).isoformat()
    body = {"phone": "+5511987654321", "message": "reminder", "scheduled_at": when}
    first = post(api, body, HTTP_IDEMPOTENCY_KEY="reminder-9")
    assert first.status_code == 202
    import time
    time.sleep(1.2)  # the client's retry comes after the send time it asked for

    again = post(api, body, HTTP_IDEMPOTENCY_KEY="reminder-9")

    assert again.status_code == 200, again.json()
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("padding", ["\xa0", "\x85", " ", "\u2003"])
def test_a_reserved_key_is_refused_whatever_whitespace_hides_its_prefix(api, sandbox_settings, padding):
    original, _ = services.accept_message(phone="+5511987654321", text="hi")
    response = post(api, {"phone": "+5511987654321", "message": "x"},
                    HTTP_IDEMPOTENCY_KEY=f"{padding}console:resend-of:{original.pk}")
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert not OutboundMessage.objects.filter(idempotency_key__startswith="console:").exists()


def test_a_number_typed_without_its_country_code_is_refused_not_sent_abroad(api, sandbox_settings):
    response = post(api, {"phone": "11 98765-4321", "message": "hi"})
    assert response.status_code == 400
    assert "add the country code" in response.json()["error"]["fields"]["phone"][0]
    assert OutboundMessage.objects.count() == 0


@pytest.mark.parametrize("phone", ["+55 11 987", "+55 11 98765-43210123"])
def test_a_number_too_short_or_too_long_for_its_country_is_refused_as_not_possible(api, sandbox_settings, phone):
    response = post(api, {"phone": phone, "message": "hi"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["phone"] == ["This is not a possible phone number for its country."]
    assert OutboundMessage.objects.count() == 0


def test_with_a_default_region_a_number_without_country_code_is_read_there(api, sandbox_settings):
    sandbox_settings.MESSAGING_DEFAULT_REGION = "BR"
    response = post(api, {"phone": "11 98765-4321", "message": "hi"})
    assert (response.status_code, response.json()["phone"]) == (202, "+5511987654321")


def test_a_task_id_the_console_never_issued_is_a_json_404(api, sandbox_settings):
    response = api.get("/tasks/5f0e9a4c-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json()["success"] is False


@pytest.mark.parametrize(
    "status, state",
    [("queued", "PENDING"), ("sending", "STARTED"), ("retrying", "RETRY"), ("sent", "SUCCESS"),
     ("failed", "FAILURE"), ("cancelled", "REVOKED")],
)
def test_a_task_reads_its_messages_state_in_celerys_words(api, sandbox_settings, status, state):
    message, _ = services.accept_message(phone="+5511987654321", text="hi")
    OutboundMessage.objects.filter(pk=message.pk).update(status=status)
    body = api.get(f"/tasks/{message.task_id}").json()
    assert (body["state"], body["message_id"], body["result"]["status"]) == (state, message.pk, status)


# --- one validation surface: whoever calls the service, nothing reaches a database error ------------------------


@pytest.mark.parametrize(
    "values, field",
    [
        ({"phone": "+5511987654321\x00", "text": "hi"}, "phone"),
        ({"phone": "+5511987654321", "text": "hi\x00"}, "text"),
        ({"phone": "+5511987654321", "text": "hi \ud800"}, "text"),
        ({"phone": "+5511987654321", "text": "hi", "instance": "con\x00sole"}, "instance"),
        ({"phone": "+5511987654321", "text": "hi", "callback_url": "https://example.com/a\x00b"}, "callback_url"),
        ({"phone": "+5511987654321", "text": "hi", "callback_url": "https://example.com/\ud800"}, "callback_url"),
    ],
)
def test_the_service_refuses_what_postgresql_cannot_store_whoever_calls_it(sandbox_settings, values, field):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        services.accept_message(**values)
    assert field in refused.value.message_dict
    assert OutboundMessage.objects.count() == 0


def test_a_send_time_with_an_offset_postgresql_refuses_is_stored_in_utc(sandbox_settings):
    from datetime import datetime, timezone as dt_timezone

    far_east = dt_timezone(timedelta(hours=20))  # Python allows it; PostgreSQL refuses offsets past 15:59
    when = (timezone.now() + timedelta(days=1)).astimezone(far_east).replace(microsecond=0)
    message, _ = services.accept_message(phone="+5511987654321", text="hi", scheduled_at=when)
    assert OutboundMessage.objects.get(pk=message.pk).scheduled_at == when


def test_the_same_key_with_only_another_expiry_is_another_request(api, sandbox_settings):
    first = post(api, {"phone": "+5511987654321", "message": "code 1234", "valid_for_seconds": 60},
                 HTTP_IDEMPOTENCY_KEY="otp-1")
    other = post(api, {"phone": "+5511987654321", "message": "code 1234", "valid_for_seconds": 600},
                 HTTP_IDEMPOTENCY_KEY="otp-1")
    again = post(api, {"phone": "+5511987654321", "message": "code 1234", "valid_for_seconds": 60},
                 HTTP_IDEMPOTENCY_KEY="otp-1")
    assert (first.status_code, other.status_code, again.status_code) == (202, 422, 200)
