"""Evolution API's webhooks as plain objects: the envelope, and the three kinds of `data` the console reads.

Provider-agnostic parsing only; what the console does with an event is in `inbound/`. See section 6 of the
contract (/work/shared/evolution-api-contract.md): one JSON POST per event, to the webhook's url, or with
`byEvents` to `<url>/<event with "." as "-">` (`/messages-upsert`, `/messages-update`, ...).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# The events the console registers for (POST /webhook/set), as Evolution names them in that call.
CONSOLE_EVENTS = ("MESSAGES_UPSERT", "MESSAGES_UPDATE", "SEND_MESSAGE", "CONNECTION_UPDATE")

MESSAGES_UPSERT = "messages.upsert"
MESSAGES_UPDATE = "messages.update"
SEND_MESSAGE = "send.message"
CONNECTION_UPDATE = "connection.update"

# The header the console asks Evolution to send back on every webhook call (through the webhook's `headers`).
SECRET_HEADER = "x-console-webhook-secret"

# Receipt statuses (utils/renderStatus.ts) that the console records, and what each means for a sent message.
DELIVERED_STATUSES = frozenset({"DELIVERY_ACK"})
READ_STATUSES = frozenset({"READ", "PLAYED"})

_PHONE_JID_SUFFIX = "@s.whatsapp.net"


class MalformedWebhook(ValueError):
    """A body that is not an Evolution envelope: the receiver answers 400 and stores nothing."""


@dataclass(frozen=True)
class Envelope:
    event: str  # "messages.upsert", ...
    instance: str  # the instance NAME
    data: dict
    date_time: str  # as sent; server local time with a "Z" suffix, so only an identity, not a clock
    payload: dict = field(default_factory=dict, repr=False, compare=False)  # the whole body, as stored


@dataclass(frozen=True)
class Receipt:
    """A `messages.update`: how far one message got."""

    key_id: str  # the WhatsApp message id (`data.keyId`), what a send stored as evolution_message_id
    remote_jid: str
    from_me: bool
    status: str  # SERVER_ACK, DELIVERY_ACK, READ, PLAYED, ERROR, DELETED...


@dataclass(frozen=True)
class IncomingMessage:
    """A `messages.upsert`: a message in a chat of the instance (a customer's when `from_me` is False)."""

    whatsapp_id: str  # key.id
    remote_jid: str  # the chat; the phone JID when WhatsApp addressed the contact by @lid
    from_me: bool
    push_name: str
    message_type: str  # conversation, extendedTextMessage, imageMessage, ...
    text: str  # the text, or a media message's caption; "" when there is none
    timestamp: int | None  # messageTimestamp, unix seconds

    @property
    def phone(self) -> str:
        """E.164 of a one-to-one chat ("+5511999999999"), or "" for a group, a broadcast or an unresolved @lid."""
        if not self.remote_jid.endswith(_PHONE_JID_SUFFIX):
            return ""
        digits = self.remote_jid[: -len(_PHONE_JID_SUFFIX)].split(":")[0]
        return f"+{digits}" if digits.isdigit() else ""


@dataclass(frozen=True)
class ConnectionUpdate:
    state: str  # open, close, connecting, refused
    status_reason: int | None


def event_of_path(segment: str) -> str:
    """The event a `byEvents` path names: "messages-upsert" -> "messages.upsert"."""
    return segment.strip("/").lower().replace("-", ".")


def parse_envelope(body: bytes | str, *, path_event: str | None = None) -> Envelope:
    """Parse one webhook body, or raise MalformedWebhook. With `path_event` (the byEvents path's last segment),
    the envelope must name the same event."""
    try:
        payload = json.loads(body)
    except (TypeError, ValueError) as error:
        raise MalformedWebhook(f"the body is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise MalformedWebhook("the body is not a JSON object")
    event, instance, data = payload.get("event"), payload.get("instance"), payload.get("data")
    if not isinstance(event, str) or not event.strip():
        raise MalformedWebhook('"event" is missing or not a string')
    if not isinstance(instance, str) or not instance.strip():
        raise MalformedWebhook('"instance" is missing or not a string')
    if not isinstance(data, dict):
        raise MalformedWebhook('"data" is missing or not an object')
    event = event.strip().lower().replace("_", ".")  # MESSAGES_UPSERT and messages.upsert are one event
    if path_event is not None and event_of_path(path_event) != event:
        raise MalformedWebhook(f"the path says {event_of_path(path_event)!r} but the body says {event!r}")
    date_time = payload.get("date_time")
    return Envelope(
        event=event, instance=instance, data=data, date_time=date_time if isinstance(date_time, str) else "",
        payload=payload,
    )


def parse_receipt(data: dict) -> Receipt | None:
    """The receipt in a `messages.update`'s data, or None when it names no message or status."""
    key_id, status = data.get("keyId"), data.get("status")
    if not isinstance(key_id, str) or not key_id or not isinstance(status, str) or not status:
        return None
    return Receipt(
        key_id=key_id, remote_jid=_str(data.get("remoteJid")), from_me=bool(data.get("fromMe")), status=status.upper()
    )


def parse_incoming_message(data: dict) -> IncomingMessage | None:
    """The message in a `messages.upsert`'s data, or None when it has no key id."""
    key = data.get("key")
    if not isinstance(key, dict) or not isinstance(key.get("id"), str) or not key["id"]:
        return None
    remote_jid = _str(key.get("remoteJid"))
    alternative = _str(key.get("remoteJidAlt"))
    if remote_jid.endswith("@lid") and alternative.endswith(_PHONE_JID_SUFFIX):
        remote_jid = alternative  # WhatsApp's privacy id; the phone JID is beside it (newer Evolution swaps them)
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    message_type = _str(data.get("messageType")) or next(iter(message), "")
    return IncomingMessage(
        whatsapp_id=key["id"],
        remote_jid=remote_jid,
        from_me=bool(key.get("fromMe")),
        push_name=_str(data.get("pushName")),
        message_type=message_type,
        text=_text_of(message),
        timestamp=_int(data.get("messageTimestamp")),
    )


def parse_connection_update(data: dict) -> ConnectionUpdate | None:
    state = data.get("state")
    if not isinstance(state, str) or not state:
        return None
    return ConnectionUpdate(state=state, status_reason=_int(data.get("statusReason")))


def webhook_set_body(*, url: str, headers: dict[str, str], events=CONSOLE_EVENTS, by_events: bool = False) -> dict:
    """The body of POST /webhook/set/{instance} (the nested form of Evolution 2.1 and later)."""
    return {
        "webhook": {
            "enabled": True,
            "url": url.rstrip("/"),  # with byEvents Evolution appends "/<event>" without checking for a slash
            "headers": dict(headers),
            "byEvents": by_events,
            "base64": False,
            "events": list(events),
        }
    }


def _text_of(message: dict) -> str:
    if isinstance(message.get("conversation"), str):
        return message["conversation"]
    extended = message.get("extendedTextMessage")
    if isinstance(extended, dict) and isinstance(extended.get("text"), str):
        return extended["text"]
    for part in message.values():  # imageMessage, videoMessage, documentMessage...: their caption
        if isinstance(part, dict) and isinstance(part.get("caption"), str):
            return part["caption"]
    return ""


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, dict) and isinstance(value.get("low"), int):  # protobuf Long, as some versions send it
        return value["low"]
    return None
