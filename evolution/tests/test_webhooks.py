"""Evolution's webhook envelopes, parsed into plain objects (no database, no network)."""
import json

import pytest

from evolution import webhooks


def envelope(**changes):
    body = {"event": "messages.upsert", "instance": "console", "data": {"key": {"id": "3EB0A"}},
            "date_time": "2025-01-01T10:00:00.000Z", "apikey": None}
    body.update(changes)
    return json.dumps(body)


def test_it_reads_the_event_instance_and_data():
    parsed = webhooks.parse_envelope(envelope())
    assert (parsed.event, parsed.instance, parsed.data, parsed.date_time) == (
        "messages.upsert", "console", {"key": {"id": "3EB0A"}}, "2025-01-01T10:00:00.000Z")


def test_it_takes_the_upper_case_event_names_and_the_by_events_paths():
    assert webhooks.parse_envelope(envelope(event="MESSAGES_UPSERT")).event == "messages.upsert"
    assert webhooks.parse_envelope(envelope(), path_event="messages-upsert").event == "messages.upsert"
    with pytest.raises(webhooks.MalformedWebhook):
        webhooks.parse_envelope(envelope(), path_event="messages-update")


@pytest.mark.parametrize("body", [b"", b"nope", b"[]", envelope(event=None), envelope(instance=""), envelope(data=[])])
def test_it_refuses_what_is_not_an_envelope(body):
    with pytest.raises(webhooks.MalformedWebhook):
        webhooks.parse_envelope(body)


def test_a_receipt_names_the_message_by_key_id():
    receipt = webhooks.parse_receipt({"keyId": "3EB0B", "remoteJid": "55@s.whatsapp.net", "fromMe": True,
                                      "status": "DELIVERY_ACK", "messageId": "cuid"})
    assert (receipt.key_id, receipt.status, receipt.from_me) == ("3EB0B", "DELIVERY_ACK", True)
    assert webhooks.parse_receipt({"messageId": "cuid", "status": "READ"}) is None


def test_an_incoming_message_has_its_phone_text_and_type():
    message = webhooks.parse_incoming_message({
        "key": {"remoteJid": "5511987654321@s.whatsapp.net", "fromMe": False, "id": "3EB0C"},
        "pushName": "Ana", "message": {"extendedTextMessage": {"text": "hello"}}, "messageType": "extendedTextMessage",
        "messageTimestamp": 1717689097,
    })
    assert (message.phone, message.text, message.message_type, message.timestamp) == (
        "+5511987654321", "hello", "extendedTextMessage", 1717689097)


def test_a_media_message_keeps_its_caption_and_a_lid_chat_its_phone_jid():
    message = webhooks.parse_incoming_message({
        "key": {"remoteJid": "123456789@lid", "remoteJidAlt": "5511987654321@s.whatsapp.net", "id": "3EB0D"},
        "message": {"imageMessage": {"caption": "my receipt", "url": "https://x"}},
    })
    assert (message.phone, message.text, message.message_type) == ("+5511987654321", "my receipt", "imageMessage")


def test_a_group_message_has_no_phone():
    message = webhooks.parse_incoming_message({"key": {"remoteJid": "1203630@g.us", "id": "3EB0E"}, "message": {}})
    assert message.phone == ""


def test_the_webhook_set_body_is_the_nested_form_without_a_trailing_slash():
    body = webhooks.webhook_set_body(url="https://console.example/webhooks/evolution/console/", headers={"x": "s"})
    assert body == {"webhook": {
        "enabled": True, "url": "https://console.example/webhooks/evolution/console", "headers": {"x": "s"},
        "byEvents": False, "base64": False,
        "events": ["MESSAGES_UPSERT", "MESSAGES_UPDATE", "SEND_MESSAGE", "CONNECTION_UPDATE"],
    }}
