"""Idempotency keys: every key the console stores is made or checked here.

A client's key (the API's ``Idempotency-Key`` header) makes a retried request return the first message instead of
a second one. Keys are scoped to who sent them: two clients using "order-1" make two messages, and no client can
find, or block, another's. The same key with a different request is a client bug, refused as Stripe's API refuses it rather than
answered with a message the client did not ask for: each keyed message keeps a fingerprint of its request.
Keys starting with ``console:`` are the console's own (an operator's resend, a compose form) and refused from
clients, so no caller can take the key of a resend before the operator makes it.
"""
import hashlib
import json
from datetime import datetime, timezone
from typing import NamedTuple

from django.core.exceptions import ValidationError

from messaging.models import OutboundMessage
from messaging.phones import phone_digits

RESERVED_PREFIX = "console:"
MAX_LENGTH = OutboundMessage._meta.get_field("idempotency_key").max_length
BULK_REQUEST_KEY_MAX_LENGTH = MAX_LENGTH - 5  # room for each item's "#999" (bulk_item_key)


class Key(NamedTuple):
    scope: str  # "user:<id>" for a caller's keys, "" for the console's own
    value: str

    # A request's key: the message made with it keeps its request's fingerprint, and another request is refused.
    fingerprinted = True

    def __str__(self):
        return self.value


class MessageKey(Key):
    """A key that names the message itself, not a request for one: a campaign run's message to one contact
    (``MessageKey("campaign", "run-7:42")``), the resend of a message. Making it again is the same message by construction, whatever its
    text or send time this time, so it has no fingerprint: a second making returns the first, never KeyReused.
    Equal to the ``Key`` of the same scope and value (the stored message is found either way)."""

    __slots__ = ()
    fingerprinted = False


class KeyReused(Exception):
    """The key was first used for a different request."""

    def __init__(self, key: Key, message: OutboundMessage):
        super().__init__(f'This key was already used for another request (message {message.pk}); use a new key.')
        self.key = key
        self.message = message


def clean_key(raw: str | None, *, owner, field: str = "idempotency_key", max_length: int = MAX_LENGTH) -> Key | None:
    """The key a caller sent (surrounding whitespace dropped), in ``owner``'s scope, or None for no key.

    Raises ValidationError naming ``field`` for a key that is too long, unprintable, or in the reserved space;
    the reserved prefix is checked after stripping, on the very string that would be stored.
    """
    value = (raw or "").strip() or None
    if value is None:
        return None
    if len(value) > max_length or not value.isprintable():
        raise ValidationError({field: [f"Use up to {max_length} printable characters."]})
    if value.startswith(RESERVED_PREFIX):
        raise ValidationError({field: [f'Keys starting with "{RESERVED_PREFIX}" are reserved.']})
    return Key(f"user:{owner.pk}", value)


def resend_key(original_id: int) -> Key:
    """The key of the resend of a message. One per original, whoever resends it: a double-clicked or repeated
    resend finds the first copy instead of making a second one. To send it yet again, resend the resend."""
    return MessageKey("", f"{RESERVED_PREFIX}resend-of:{original_id}")  # names the copy: no fingerprint to differ


def compose_key(form_token: str) -> Key:
    """The key of a message composed in the admin: a double-submitted form is one message. The token comes
    from the form, so it is hashed to a fixed length rather than trusted to fit."""
    return Key("", f"{RESERVED_PREFIX}compose:{hashlib.sha256(form_token.encode()).hexdigest()}")


def bulk_item_key(request_key: Key, index: int) -> Key:
    """The key of item ``index`` (from 0) of a keyed bulk request, "<key>#<index>": a repeat finds each item."""
    return Key(request_key.scope, f"{request_key.value}#{index}")


def campaign_message_key(*, run_id: int, contact_id: int) -> MessageKey:
    """The key of a campaign run's message to one contact: a run prepared twice makes each message once."""
    return MessageKey("campaign", f"run-{run_id}:{contact_id}")


def keyword_reply_key(*, batch_id: int, rule_id: int) -> Key:
    """The key of a keyword rule's answer to one batch of inbound messages: a batch handled twice answers once."""
    return Key("", f"{RESERVED_PREFIX}inbound-batch:{batch_id}:rule:{rule_id}")


def fingerprint(*, phone, text, instance, scheduled_at, expires_at=None, valid_for_seconds=None, callback_url=None) -> str:
    """A digest of a request as the caller sent it, before validation (a retry must find its first message even
    when it would no longer validate, e.g. its send time has passed). Phones compare by their digits, so
    "+55 11 98765-4321" and "5511987654321" are the same request."""
    request = {
        "phone": phone_digits(str(phone or "")),
        "text": text,
        "instance": instance or "",
        "scheduled_at": _instant(scheduled_at),
    }
    # Only when given, so the digests of requests without an expiry stay what they were before expiry existed.
    if expires_at is not None:
        request["expires_at"] = _instant(expires_at)
    if valid_for_seconds is not None:
        request["valid_for_seconds"] = valid_for_seconds
    if callback_url:
        request["callback_url"] = callback_url
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def find_earlier(key: Key, request_fingerprint: str) -> OutboundMessage | None:
    """The message first made with ``key``, or None; raises KeyReused when it was made for another request."""
    existing = OutboundMessage.objects.filter(idempotency_scope=key.scope, idempotency_key=key.value).first()
    if existing is not None:
        ensure_same_request(existing, request_fingerprint)
    return existing


def find_all_earlier(keys) -> dict[Key, OutboundMessage]:
    """The messages first made with any of ``keys``, by key, in one query per scope."""
    found: dict[Key, OutboundMessage] = {}
    for scope in {key.scope for key in keys}:
        values = [key.value for key in keys if key.scope == scope]
        for message in OutboundMessage.objects.filter(idempotency_scope=scope, idempotency_key__in=values):
            found[Key(scope, message.idempotency_key)] = message
    return found


def ensure_same_request(message: OutboundMessage, request_fingerprint: str) -> None:
    # Messages keyed before fingerprints existed have none, and a MessageKey gives none: they are taken to match.
    if message.request_fingerprint and request_fingerprint and message.request_fingerprint != request_fingerprint:
        raise KeyReused(Key(message.idempotency_scope, message.idempotency_key), message)


def _instant(moment):
    """One spelling per instant: 10:00Z and 07:00-03:00 are the same send time."""
    if isinstance(moment, datetime):
        return (moment.astimezone(timezone.utc) if moment.tzinfo else moment).isoformat()
    return moment
