"""Reads for campaigns: what a run already made, who is unreachable, and each run's progress."""
from datetime import datetime
from datetime import timezone as dt_timezone

from django.db.models import Count, Exists, Max, Min, OuterRef, Q
from django.db.models.functions import TruncHour, TruncMinute, TruncSecond

from campaigns.models import Campaign, CampaignRun, source_prefix
from messaging.models import CANCELLABLE_STATUSES, MessageStatus, OutboundMessage

WAITING_STATUSES = (*CANCELLABLE_STATUSES, MessageStatus.SENDING)


def contacts_with_messages_in(*, source: str) -> set[int]:
    """The contacts that already have their message in the run of ``source`` (from its idempotency keys,
    ``run-<run id>:<contact id>``)."""
    keys = OutboundMessage.objects.filter(source=source, idempotency_scope="campaign").values_list("idempotency_key", flat=True)
    return {int(key.rsplit(":", 1)[1]) for key in keys}


def not_on_whatsapp() -> Exists:
    """For a query of contacts: whether a send to the contact's phone already failed because WhatsApp said it is not
    on it. One indexed probe per contact (msg_phone_created) inside the query that reads them."""
    return Exists(OutboundMessage.objects.filter(
        phone=OuterRef("phone"), status=MessageStatus.FAILED, last_error_kind="not_on_whatsapp"
    ))


def held_message_ids(*, source: str) -> list[int]:
    """The run's messages held by a pause (scheduled with no send time), in the order they were made."""
    return list(OutboundMessage.objects.filter(source=source, status=MessageStatus.SCHEDULED, scheduled_at__isnull=True)
                .order_by("pk").values_list("pk", flat=True))


def has_waiting_messages(*, source: str) -> bool:
    return OutboundMessage.objects.filter(source=source, status__in=WAITING_STATUSES).exists()


def run_progress(campaign: Campaign) -> list[dict]:
    """Each run of ``campaign`` with its counts, from one GROUP BY over its messages' ``source``:

    total (recipients considered), skipped (and why), then its messages by state: waiting (scheduled for their
    slot), held (by a pause), queued (released, sending or retrying), sent, failed, cancelled, expired; and of
    those sent, how many WhatsApp's receipts say were delivered to the phone and read (a read one was delivered)."""
    rows = (
        OutboundMessage.objects.filter(source__startswith=source_prefix(campaign.pk))
        .order_by().values("source", "status")
        .annotate(count=Count("id"), held=Count("id", filter=Q(status=MessageStatus.SCHEDULED, scheduled_at__isnull=True)),
                  delivered=Count("id", filter=Q(delivered_at__isnull=False)), read=Count("id", filter=Q(read_at__isnull=False)))
    )
    by_source: dict[str, dict] = {}
    receipts: dict[str, dict] = {}
    for row in rows:
        counts = by_source.setdefault(row["source"], {})
        seen = receipts.setdefault(row["source"], {"delivered": 0, "read": 0})
        seen["delivered"] += row["delivered"]
        seen["read"] += row["read"]
        status = row["status"]
        if status == MessageStatus.SCHEDULED:
            counts["held"] = counts.get("held", 0) + row["held"]
            counts["waiting"] = counts.get("waiting", 0) + row["count"] - row["held"]
            continue
        if status in (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.RETRYING):
            status = "queued"
        counts[status] = counts.get(status, 0) + row["count"]
    progress = []
    for run in CampaignRun.objects.filter(campaign=campaign).order_by("number"):
        counts = {name: 0 for name in ("waiting", "held", "queued", "sent", "failed", "cancelled", "expired")}
        counts.update(by_source.get(run.source, {}))
        messages = sum(counts.values())
        progress.append({
            "run": run, "number": run.number, "status": run.status, "source": run.source,
            "started_at": run.started_at, "finished_at": run.finished_at,
            "total": messages + run.skipped_total, "messages": messages, "skipped": run.skipped_total,
            "skipped_reasons": run.skipped, **counts, **receipts.get(run.source, {"delivered": 0, "read": 0}),
        })
    return progress


# A run's send-rate chart: bars of this many seconds, the narrowest giving at most CHART_BARS bars over the run.
BAR_SECONDS = (10, 60, 300, 900, 3600, 4 * 3600, 86400)
CHART_BARS = 60


def send_rate(*, source: str) -> dict:
    """How many of the run's messages were sent in each bar of time, from its first send to its last:
    ``{"bar_seconds", "start", "counts"}`` (counts empty before the first send). Counted by the database per
    second, minute or hour of ``sent_at`` (one GROUP BY over the run's sent messages), then summed into bars."""
    sent = OutboundMessage.objects.filter(source=source, status=MessageStatus.SENT)
    span = sent.aggregate(first=Min("sent_at"), last=Max("sent_at"))
    if span["first"] is None:
        return {"bar_seconds": BAR_SECONDS[0], "start": None, "counts": []}
    seconds = (span["last"] - span["first"]).total_seconds()
    width = next((width for width in BAR_SECONDS if seconds < width * CHART_BARS), BAR_SECONDS[-1])
    trunc = TruncSecond if width < 60 else TruncMinute if width < 3600 else TruncHour
    epoch = span["first"].timestamp()
    start = datetime.fromtimestamp(epoch - epoch % width, tz=dt_timezone.utc)
    counts = [0] * (int((span["last"] - start).total_seconds() // width) + 1)
    rows = sent.order_by().annotate(at=trunc("sent_at", tzinfo=dt_timezone.utc)).values("at").annotate(n=Count("id"))
    for row in rows:
        counts[int((row["at"] - start).total_seconds() // width)] += row["n"]
    return {"bar_seconds": width, "start": start, "counts": counts}
