"""Reads of inbound for other apps, the API and the admin. Campaigns ask ``is_opted_out`` before each send."""
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, QuerySet

from inbound.models import InboundMessage, OptOut
from messaging.models import OutboundMessage
from messaging.phones import normalize_phone
from messaging.selectors import phone_filter, visible_messages

VIEW_INBOUND = "inbound.view_inboundmessage"


def is_opted_out(phone: str) -> bool:
    """Whether ``phone`` (any format a person types) asked to hear no more."""
    try:
        phone = normalize_phone(phone)
    except ValidationError:
        return False
    return OptOut.objects.filter(phone=phone).exists()


def replied_stop() -> Exists:
    """For a query of rows with a ``phone`` (a campaign run's contacts): whether that phone asked to hear no more.
    One probe of OptOut's unique index inside the query that reads them: a separate query with the chunk's 1,000
    phones as parameters cost more in psycopg's handling of the parameters than the lookup itself."""
    return Exists(OptOut.objects.filter(phone=OuterRef("phone")))


@dataclass(frozen=True)
class ConversationLine:
    """One message of a conversation: ``outbound`` (ours, an OutboundMessage) or a reply (an InboundMessage)."""

    at: datetime
    outbound: bool
    text: str
    detail: str  # ours: its status, delivered/read; a reply: its type when it is not plain text
    message: OutboundMessage | InboundMessage


def conversation(*, phone: str, limit: int = 200) -> list[ConversationLine]:
    """``phone``'s messages both ways, oldest first: the latest ``limit`` of each way, interleaved by time (ours by
    when they were sent, or made when not sent yet; replies by when they arrived)."""
    ours = OutboundMessage.objects.filter(phone=phone).order_by("-created_at", "-id")[:limit]
    theirs = InboundMessage.objects.filter(phone=phone).order_by("-received_at", "-id")[:limit]
    lines = [
        ConversationLine(at=m.sent_at or m.created_at, outbound=True, text=m.text, message=m,
                         detail=m.get_status_display() + (", read" if m.read_at else ", delivered" if m.delivered_at else ""))
        for m in ours
    ] + [
        ConversationLine(at=m.received_at, outbound=False, text=m.text, message=m,
                         detail="" if m.message_type in ("conversation", "extendedTextMessage") else m.message_type)
        for m in theirs
    ]
    return sorted(lines, key=lambda line: line.at)


def visible_inbound(*, user) -> QuerySet:
    """What ``user`` may read: every reply with ``view_inboundmessage``; otherwise (an API client) the replies of
    the phones it sent messages to, as it sees only its own messages."""
    if user.has_perm(VIEW_INBOUND):
        return InboundMessage.objects.all()
    return InboundMessage.objects.filter(phone__in=visible_messages(user=user).values("phone"))


def inbound_list(*, user, phone: str | None = None) -> QuerySet:
    """Replies newest first; of one phone when given, by the rule GET /messages uses (``phone_filter``): nothing
    for fewer than four digits."""
    messages = visible_inbound(user=user)
    if phone:
        same_phone = phone_filter(phone)
        messages = messages.filter(same_phone) if same_phone is not None else messages.none()
    return messages.order_by("-received_at", "-id")
