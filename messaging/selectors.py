"""Reads for the API, the admin and the dashboard."""
import re

from django.core.exceptions import ValidationError
from django.db.models import Prefetch, Q, QuerySet

from messaging.models import OutboundMessage, SendAttempt
from messaging.phones import normalize_phone


def message_list(*, status: str | None = None, phone: str | None = None, created_after=None, created_before=None) -> QuerySet:
    messages = OutboundMessage.objects.all()
    if status:
        messages = messages.filter(status=status)
    if phone:
        try:
            messages = messages.filter(phone=normalize_phone(phone))
        except ValidationError:
            # Not a whole number: match the digits given anywhere in the stored phone.
            digits = "".join(ch for ch in phone if ch.isdigit())
            messages = messages.filter(phone__contains=digits) if digits else messages.none()
    if created_after:
        messages = messages.filter(created_at__gte=created_after)
    if created_before:
        messages = messages.filter(created_at__lt=created_before)
    return messages


def message_with_attempts(*, message_id: int) -> OutboundMessage:
    """The message and its attempts in two queries; raises OutboundMessage.DoesNotExist."""
    return OutboundMessage.objects.prefetch_related(
        Prefetch("attempts", queryset=SendAttempt.objects.order_by("number"))
    ).get(pk=message_id)


# --- the admin's search box ----------------------------------------------------------------------------------

_MESSAGE_ID = re.compile(r"^#(\d+)$")
_PHONE_LIKE = re.compile(r"^[\d\s+().\-/]+$")
_EVOLUTION_ID = re.compile(r"^[A-Za-z0-9]{12,128}$")


def search_messages(messages: QuerySet, term: str) -> QuerySet:
    """Filter ``messages`` by what an operator typed, picking one indexed way to look per kind of input.

    - ``#123``: the message with that id.
    - a phone in any format (``+55 11 98765-4321``, ``5511987654321``, ``98765 4321``): phones containing those
      digits (a trigram index on PostgreSQL), or equal to the number once normalised.
    - a long letters-and-digits token (``3EB0C767D26A1D9F7A``): that Evolution message id, or text containing it.
    - anything else: messages whose text contains every word, in any case.
    """
    term = (term or "").strip()
    if not term:
        return messages
    if match := _MESSAGE_ID.match(term):
        return messages.filter(pk=int(match[1]))
    digits = "".join(ch for ch in term if ch.isdigit())
    if _PHONE_LIKE.match(term) and len(digits) >= 4:
        same_phone = Q(phone__contains=digits)
        try:
            same_phone |= Q(phone=normalize_phone(term))
        except ValidationError:
            pass
        return messages.filter(same_phone)
    if _EVOLUTION_ID.match(term) and digits and not term.isdigit():
        return messages.filter(Q(evolution_message_id=term) | Q(text__icontains=term))
    for word in term.split():
        messages = messages.filter(text__icontains=word.strip('"'))
    return messages
