"""The reads only the sending dashboard makes: a handful of indexed queries, each cheap on millions of rows.

- counts by status for the last hour/day/week: one pass over the last week through (status, created_at);
- sent vs failed per hour for 24 hours: one GROUP BY through (status, finished_at);
- top failure reasons of the day: one GROUP BY through (status, finished_at);
- delivery and read rates of the messages sent in the last hour and day: one pass through (status, finished_at)
  that reads each sent row (its receipts are not in an index): ~30 ms for a day of 15,000 sends, ~300 ms for a
  week of 100,000, which is why there is no week column;
- the failure reasons of the week, for the changelist filter: cached for a few minutes.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from messaging.models import MessageStatus, OutboundMessage

WINDOWS = (("hour", timedelta(hours=1)), ("day", timedelta(days=1)), ("week", timedelta(days=7)))
RECEIPT_WINDOWS = WINDOWS[:2]
FAILURE_KINDS_CACHE_SECONDS = 300


def status_counts(*, now: datetime) -> dict[str, dict[str, int]]:
    """``{status: {"hour": n, "day": n, "week": n}}`` for messages created in each window, every status present."""
    week_start = now - WINDOWS[-1][1]
    rows = (
        # Naming every status lets PostgreSQL read one range of (status, created_at) per status instead of the
        # whole index.
        OutboundMessage.objects.filter(status__in=MessageStatus.values, created_at__gte=week_start)
        .order_by()
        .values("status")
        # Counting created_at, not id: the (status, created_at) index answers alone (an index-only scan).
        .annotate(**{name: Count("created_at", filter=Q(created_at__gte=now - span)) for name, span in WINDOWS})
    )
    counts = {status: {name: 0 for name, _ in WINDOWS} for status in MessageStatus.values}
    for row in rows:
        counts[row["status"]] = {name: row[name] for name, _ in WINDOWS}
    return counts


def receipt_counts(*, now: datetime) -> dict[str, dict[str, int]]:
    """``{window: {"sent": n, "delivered": n, "read": n}}``: of the messages sent in each window, how many
    WhatsApp's receipts say were delivered, and read (a read one counts as delivered)."""
    first = now - RECEIPT_WINDOWS[-1][1]
    counts = {name: {"sent": 0, "delivered": 0, "read": 0} for name, _ in RECEIPT_WINDOWS}
    # A sent message's finished_at is its sent_at: the (status, finished_at) index finds the sends.
    sent = OutboundMessage.objects.filter(status=MessageStatus.SENT, finished_at__gte=first).order_by()
    aggregates = {}
    for name, span in RECEIPT_WINDOWS:
        in_window = Q(finished_at__gte=now - span)
        aggregates[f"{name}_sent"] = Count("pk", filter=in_window)
        aggregates[f"{name}_delivered"] = Count("pk", filter=in_window & Q(delivered_at__isnull=False))
        aggregates[f"{name}_read"] = Count("pk", filter=in_window & Q(read_at__isnull=False))
    row = sent.aggregate(**aggregates)
    for name, _ in RECEIPT_WINDOWS:
        for figure in ("sent", "delivered", "read"):
            counts[name][figure] = row[f"{name}_{figure}"] or 0
    return counts


@dataclass(frozen=True)
class HourBucket:
    start: datetime  # in the current (operator's) time zone
    sent: int
    failed: int


def sent_and_failed_by_hour(*, now: datetime, hours: int = 24) -> list[HourBucket]:
    """Messages that finished sent or failed in each of the last ``hours`` hours, oldest first."""
    zone = timezone.get_current_timezone()
    current_hour = timezone.localtime(now, zone).replace(minute=0, second=0, microsecond=0)
    first_hour = current_hour - timedelta(hours=hours - 1)
    rows = (
        OutboundMessage.objects.filter(
            status__in=(MessageStatus.SENT, MessageStatus.FAILED), finished_at__gte=first_hour, finished_at__lte=now
        )
        .order_by()
        .annotate(hour=TruncHour("finished_at", tzinfo=zone))
        .values("hour", "status")
        .annotate(n=Count("*"))  # from the (status, finished_at) index alone
    )
    by_hour: dict[datetime, dict[str, int]] = {}
    for row in rows:
        by_hour.setdefault(timezone.localtime(row["hour"], zone), {})[row["status"]] = row["n"]
    buckets = []
    for index in range(hours):
        # Step in UTC so a daylight-saving change neither repeats nor skips an hour.
        start = timezone.localtime(first_hour + timedelta(hours=index), zone)
        found = by_hour.get(start, {})
        buckets.append(HourBucket(start, found.get(MessageStatus.SENT, 0), found.get(MessageStatus.FAILED, 0)))
    return buckets


def top_failure_reasons(*, now: datetime, hours: int = 24, limit: int = 8) -> list[dict]:
    """The commonest ``last_error_kind`` of messages that failed in the last ``hours``, with one example text.

    A day, not a week: it answers "what is going wrong now", and reads the error of every failure in the window.
    """
    return list(
        OutboundMessage.objects.filter(status=MessageStatus.FAILED, finished_at__gte=now - timedelta(hours=hours))
        .order_by()
        .values("last_error_kind")
        .annotate(n=Count("*"), example=Max("last_error"))
        .order_by("-n", "last_error_kind")[:limit]
    )


def recent_failure_kinds() -> list[str]:
    """The failure reasons of the last week, for the admin's filter; cached, since it only lists choices."""
    kinds = cache.get("dashboard:recent-failure-kinds")
    if kinds is None:
        kinds = sorted(
            OutboundMessage.objects.filter(
                status=MessageStatus.FAILED, finished_at__gte=timezone.now() - timedelta(days=7)
            ).order_by().values_list("last_error_kind", flat=True).distinct()
        )
        cache.set("dashboard:recent-failure-kinds", kinds, FAILURE_KINDS_CACHE_SECONDS)
    return kinds
