"""Reads for the API, the admin and the dashboard."""
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet

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
