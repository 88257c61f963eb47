"""Idempotency keys: every key the console stores is made or checked here.

A client's key (the API's ``Idempotency-Key`` header) makes a retried request return the first message instead of
a second one. The same key with a different request is a client bug, refused as Stripe's API refuses it rather than
answered with a message the client did not ask for: each keyed message keeps a fingerprint of its request.
Keys starting with ``console:`` are the console's own (an operator's resend, a compose form) and refused from
clients, so no caller can take the key of a resend before the operator makes it.
"""
import hashlib
import json
from datetime import datetime, timezone

from django.core.exceptions import ValidationError

from messaging.models import OutboundMessage

RESERVED_PREFIX = "console:"
MAX_LENGTH = OutboundMessage._meta.get_field("idempotency_key").max_length


class KeyReused(Exception):
    """The key was first used for a different request."""

    def __init__(self, key: str, message: OutboundMessage):
        super().__init__(f'This key was already used for another request (message {message.pk}); use a new key.')
        self.key = key
        self.message = message


def clean_key(raw: str | None, *, field: str = "idempotency_key") -> str | None:
    """The stored form of a key as a caller sent it (surrounding whitespace dropped), or None for no key.

    Raises ValidationError naming ``field`` for a key that is too long, unprintable, or in the reserved space;
    the reserved prefix is checked after stripping, on the very string that would be stored.
    """
    key = (raw or "").strip() or None
    if key is None:
        return None
    if len(key) > MAX_LENGTH or not key.isprintable():
        raise ValidationError({field: [f"Use up to {MAX_LENGTH} printable characters."]})
    if key.startswith(RESERVED_PREFIX):
        raise ValidationError({field: [f'Keys starting with "{RESERVED_PREFIX}" are reserved.']})
    return key


def resend_key(original_id: int) -> str:
    """The key of the resend of a message. One per original: a double-clicked or repeated resend finds the first
    copy instead of making a second one. To send it yet again, resend the resend."""
    return f"{RESERVED_PREFIX}resend-of:{original_id}"


def compose_key(form_token: str) -> str:
    """The key of a message composed in the admin: a double-submitted form is one message."""
    return f"{RESERVED_PREFIX}compose:{form_token}"[:MAX_LENGTH]


def fingerprint(*, phone, text, instance, scheduled_at) -> str:
    """A digest of a request as the caller sent it, before validation (a retry must find its first message even
    when it would no longer validate, e.g. its send time has passed). Phones compare by their digits, so
    "+55 11 98765-4321" and "5511987654321" are the same request."""
    request = {
        "phone": "".join(ch for ch in str(phone or "") if ch.isdigit()),
        "text": text,
        "instance": instance or "",
        "scheduled_at": _instant(scheduled_at),
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def find_earlier(key: str, request_fingerprint: str) -> OutboundMessage | None:
    """The message first made with ``key``, or None; raises KeyReused when it was made for another request."""
    existing = OutboundMessage.objects.filter(idempotency_key=key).first()
    if existing is not None:
        ensure_same_request(existing, request_fingerprint)
    return existing


def ensure_same_request(message: OutboundMessage, request_fingerprint: str) -> None:
    # Messages keyed before fingerprints existed have none: they are taken to match.
    if message.request_fingerprint and message.request_fingerprint != request_fingerprint:
        raise KeyReused(message.idempotency_key, message)


def _instant(moment):
    """One spelling per instant: 10:00Z and 07:00-03:00 are the same send time."""
    if isinstance(moment, datetime):
        return (moment.astimezone(timezone.utc) if moment.tzinfo else moment).isoformat()
    return moment
