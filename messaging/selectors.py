"""Reads for the API, the admin and the dashboard."""
import re

from django.core.exceptions import ValidationError
from django.db.models import Prefetch, Q, QuerySet

from messaging.models import OutboundMessage, SendAttempt
from messaging.phones import normalize_phone, phone_digits


def visible_messages(*, user) -> QuerySet:
    """The messages ``user`` may see: all of them with the view permission (operators, support: what the admin
    shows them), otherwise the ones it sent (an API client)."""
    if user.has_perm("messaging.view_outboundmessage"):
        return OutboundMessage.objects.all()
    return OutboundMessage.objects.filter(created_by=user)


def message_list(
    *, user, status: str | None = None, phone: str | None = None, created_after=None, created_before=None,
    campaign: int | None = None, source: str | None = None,
) -> QuerySet:
    messages = visible_messages(user=user)
    # A message knows what made it only by its source string, so messaging imports no campaign code.
    if campaign:
        messages = messages.filter(source__startswith=f"campaign:{campaign}:")
    if source:
        messages = messages.filter(source=source)
    if status:
        messages = messages.filter(status=status)
    if phone:
        same_phone = phone_filter(phone)
        messages = messages.filter(same_phone) if same_phone is not None else messages.none()
    if created_after:
        messages = messages.filter(created_at__gte=created_after)
    if created_before:
        messages = messages.filter(created_at__lt=created_before)
    return messages


def message_of_task(*, user, task_id: str) -> OutboundMessage | None:
    """The message ``user`` may see whose send task has this id, or None (also for ids no Celery task id looks
    like)."""
    if len(task_id) > 255 or not task_id.isprintable():
        return None  # PostgreSQL cannot compare NUL, and no id the console issues is like this
    return visible_messages(user=user).filter(task_id=task_id).first()


def message_with_attempts(*, user, message_id: int) -> OutboundMessage:
    """The message and its attempts in two queries, if ``user`` may see it; raises OutboundMessage.DoesNotExist."""
    return visible_messages(user=user).prefetch_related(
        Prefetch("attempts", queryset=SendAttempt.objects.order_by("number"))
    ).get(pk=message_id)


# --- the admin's search box ----------------------------------------------------------------------------------

_MESSAGE_ID = re.compile(r"^#(\d+)$")
_PHONE_LIKE = re.compile(r"^[\d\s+().\-/]+$")
_EVOLUTION_ID = re.compile(r"^[A-Za-z0-9]{12,128}$")


def phone_filter(term: str) -> Q | None:
    """The one rule for finding messages by phone, for the API's ``?phone=`` and the admin's search box: phones
    containing the digits typed (``98765 4321``, ``98765-4321``, ``987654321``; a trigram index on PostgreSQL),
    or equal to the number once normalised (``11 98765-4321`` with a default region). None when fewer than four
    digits were typed: too few to mean one customer."""
    digits = phone_digits(term)
    if len(digits) < 4:
        return None
    same_phone = Q(phone__contains=digits)
    try:
        same_phone |= Q(phone=normalize_phone(term))
    except ValidationError:
        pass
    return same_phone


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
    if _PHONE_LIKE.match(term) and (same_phone := phone_filter(term)) is not None:
        return messages.filter(same_phone)
    if _EVOLUTION_ID.match(term) and digits and not term.isdigit():
        return messages.filter(Q(evolution_message_id=term) | Q(text__icontains=term))
    for word in term.split():
        messages = messages.filter(text__icontains=word.strip('"'))
    return messages


# --- operations: what is waiting right now, read by the dashboard and by /metrics alike -----------------------

import logging  # noqa: E402  (this section's own imports, kept beside the only code that needs them)

from celery import current_app  # noqa: E402
from django.db.models import Count  # noqa: E402

from config.celery import BULK_QUEUE, MAINTENANCE_QUEUE, TRANSACTIONAL_QUEUE  # noqa: E402
from messaging.models import FINAL_STATUSES, MessageStatus  # noqa: E402

BROKER_QUEUES = (TRANSACTIONAL_QUEUE, BULK_QUEUE, MAINTENANCE_QUEUE)
IN_FLIGHT_STATUSES = tuple(status for status in MessageStatus.values if status not in FINAL_STATUSES)

_log = logging.getLogger("messaging.selectors")


def queue_depths() -> dict[str, int | None]:
    """Tasks waiting in each broker queue (not counting tasks a worker has already reserved).

    A passive ``queue_declare`` reads the count without creating anything, on Redis (LLEN of the queue's lists)
    and RabbitMQ alike. A queue no one has declared yet is empty. None means the broker did not answer.
    """
    depths: dict[str, int | None] = {}
    try:
        with current_app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            for queue in BROKER_QUEUES:
                # A channel per queue: on AMQP a failed passive declare closes the channel it ran on, and every
                # later declare on that channel would fail too.
                with conn.channel() as channel:
                    try:
                        depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                    except conn.channel_errors:  # 404 NOT_FOUND: never declared, so nothing was ever put in it
                        depths[queue] = 0
    except Exception as error:  # callers report a broker outage, they do not fail on one
        _log.warning("queue depth unavailable: %s: %s", type(error).__name__, error)
        return {queue: None for queue in BROKER_QUEUES}
    return depths


def in_flight_counts() -> dict[str, int]:
    """Messages not final yet (scheduled, queued, sending, retrying), by status, whatever their age.

    Only the few unfinished rows are read, through the (status, created_at) index.
    """
    rows = (
        OutboundMessage.objects.filter(status__in=IN_FLIGHT_STATUSES).order_by().values_list("status").annotate(n=Count("*"))
    )
    return {status: 0 for status in IN_FLIGHT_STATUSES} | dict(rows)
