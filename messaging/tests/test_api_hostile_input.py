"""What a hostile but legal caller sends: every answer is the API's JSON envelope, never a 500, never a row."""
import json

import pytest
from django.conf import settings

from messaging import services
from messaging.models import OutboundMessage

pytestmark = pytest.mark.django_db


def post_raw(api, path, body: bytes | str):
    return api.post(path, data=body, content_type="application/json")


@pytest.mark.parametrize("path", ["/messages", "/messages/bulk"])
def test_json_nested_a_thousand_deep_is_a_400_parse_error(api, sandbox_settings, path):
    deep = "[" * 5000 + "]" * 5000
    response = post_raw(api, path, json.dumps({"phone": "+5511987654321", "message": "x"})[:-1] + f', "x": {deep}}}')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert OutboundMessage.objects.count() == 0


def test_the_largest_valid_bulk_request_is_accepted(api, sandbox_settings):
    # A full bulk is more than API_MESSAGE_RATE's default allows one caller at once (600): this test is about size.
    sandbox_settings.REST_FRAMEWORK = {**sandbox_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **sandbox_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "messages": None}}
    emoji_text = "\U0001F600" * settings.MESSAGING_MAX_TEXT_LENGTH
    body = json.dumps({"messages": [{"phone": "+55 11 98765-4321", "message": emoji_text}] * services.BULK_MAX_MESSAGES})
    assert len(body) > 49_000_000  # escaped as common clients escape it: \ud83d\ude00 per emoji

    response = post_raw(api, "/messages/bulk", body)

    assert response.status_code == 202, response.content[:300]
    assert response.json()["accepted"] == services.BULK_MAX_MESSAGES


def test_a_body_over_the_limit_is_a_413_in_the_envelope(api, sandbox_settings):
    body = b'{"messages": ["' + b"x" * (settings.API_MAX_BODY_BYTES + 1) + b'"]}'
    response = post_raw(api, "/messages/bulk", body)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "too_large"
    assert OutboundMessage.objects.count() == 0


@pytest.mark.parametrize("text", ["\u200b\u200b\u200b", "\u200d\ufeff ", "\x07\x07", " \u2060\n"])
def test_a_text_that_shows_nothing_is_refused_as_blank(api, sandbox_settings, text):
    response = api.post("/messages", {"phone": "+5511987654321", "message": text}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["message"]
    assert OutboundMessage.objects.count() == 0


def test_control_characters_inside_a_text_are_refused_but_line_breaks_and_tabs_are_kept(api, sandbox_settings):
    assert api.post("/messages", {"phone": "+5511987654321", "message": "Hi\x1b[31m"}, format="json").status_code == 400
    kept = api.post("/messages", {"phone": "+5511987654321", "message": "Line 1\n\tLine 2\r\n"}, format="json")
    assert (kept.status_code, kept.json()["message"]) == (202, "Line 1\n\tLine 2\r\n")


@pytest.mark.parametrize("typed", ["+٥٥ ١١ ٩٨٧٦٥-٤٣٢١", "＋５５ １１ ９８７６５-４３２１"])
def test_a_phone_typed_in_other_digits_is_stored_in_ascii_and_found_the_same_way(api, sandbox_settings, typed):
    created = api.post("/messages", {"phone": typed, "message": "hi"}, format="json")
    assert (created.status_code, created.json()["phone"]) == (202, "+5511987654321")

    found = api.get("/messages", {"phone": typed[-9:]}).json()["results"]

    assert [m["id"] for m in found] == [created.json()["id"]]


@pytest.mark.parametrize("method, path", [("get", "/messages/-1"), ("get", "/messages/abc"), ("delete", "/messages"),
                                          ("post", "/tasks/x"), ("get", "/messages/99999999999999999999")])
def test_every_error_is_the_envelope(api, sandbox_settings, method, path):
    response = getattr(api, method)(path)
    assert 400 <= response.status_code < 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["success"] is False


@pytest.mark.parametrize("body, fields", [
    ("null", ["non_field_errors"]), ("[]", ["non_field_errors"]), ('["+5511987654321", "hi"]', ["non_field_errors"]),
    ('"+5511987654321"', ["non_field_errors"]), ("42", ["non_field_errors"]), ("{}", ["phone", "message"]),
])
def test_a_body_that_is_not_a_message_object_is_a_400_naming_what_is_missing(api, sandbox_settings, body, fields):
    response = post_raw(api, "/messages", body)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert list(response.json()["error"]["fields"]) == fields
    assert OutboundMessage.objects.count() == 0
