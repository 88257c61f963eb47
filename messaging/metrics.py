"""Prometheus metrics: counters shared by every process in Redis, gauges read when /metrics is scraped.

Why Redis and not prometheus_client's in-process counters: web and worker run as many processes on many
containers or hosts, and a counter kept in one process's memory (or in prometheus_client's multiprocess files,
which only work among processes of one host) would need every one of them scraped on its own port. Events are
added with HINCRBY to one hash, so one scrape of any web process sees the totals of all of them, and the totals
survive restarts. Counting rows at scrape time was the other candidate; it is a sequential scan over millions
of attempts and goes backwards when old attempts are purged, which a Prometheus counter must never do.

Recording never raises: a metrics outage must not fail a send. Reading happens only when /metrics is scraped
(messaging/api/metrics.py serves it); the gauges come from the same selectors as the admin's dashboard.
"""
import logging
import threading
import time
from collections import Counter
from contextlib import contextmanager

from django.conf import settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from messaging import selectors

log = logging.getLogger(__name__)

# Seconds for one attempt (the Evolution call, and the findMessages check when one is needed).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)

# name -> (help, label names). Label values are bounded: instances come from settings, reasons from the
# Evolution client's error kinds, outcomes from a fixed list.
COUNTERS = {
    "console_messages_accepted": ("Messages accepted for sending.", ("instance",)),
    "console_messages_sent": ("Messages that reached the sent state.", ("instance",)),
    "console_messages_failed": ("Messages that failed for good, by the last error's kind.", ("instance", "reason")),
    "console_messages_expired": ("Messages that expired before they could be sent (never sent).", ("instance",)),
    # From WhatsApp's receipts (inbound/): a read message counts as delivered too, once, whichever receipt came first.
    "console_messages_delivered": ("Sent messages WhatsApp confirmed delivered to the phone.", ("instance",)),
    "console_messages_read": ("Sent messages the recipient read (or played).", ("instance",)),
    "console_send_attempts": ("Tries at Evolution API, by outcome.", ("instance", "outcome")),
}
HISTOGRAM = "console_send_duration_seconds"
HISTOGRAM_HELP = "Time one attempt took, from its row being written to its outcome."

_WARN_EVERY_SECONDS = 60.0
_last_warning = 0.0
_redis_lock = threading.Lock()
_redis_clients: dict[str, object] = {}


# --- recording (called from services; one line per event) ----------------------------------------------------


def message_accepted(*, instance: str, count: int = 1) -> None:
    _write({_field("console_messages_accepted", {"instance": instance}): count}, {})


def messages_expired(*, instance: str, count: int = 1) -> None:
    _write({_field("console_messages_expired", {"instance": instance}): count}, {})


def receipt_applied(*, instance: str, delivered: int = 0, read: int = 0) -> None:
    """Receipts moved ``delivered`` messages to delivered and ``read`` to read (each message once per state)."""
    fields = {}
    if delivered:
        fields[_field("console_messages_delivered", {"instance": instance})] = delivered
    if read:
        fields[_field("console_messages_read", {"instance": instance})] = read
    if fields:
        _write(fields, {})


def attempt_finished(
    *, instance: str, outcome: str, seconds: float | None, final_status: str | None = None, reason: str = ""
) -> None:
    """One attempt ended with `outcome`; `final_status` is "sent" or "failed" when it settled the message."""
    fields = {_field("console_send_attempts", {"instance": instance, "outcome": outcome}): 1}
    if final_status == "sent":
        fields[_field("console_messages_sent", {"instance": instance})] = 1
    elif final_status == "failed":
        fields[_field("console_messages_failed", {"instance": instance, "reason": reason or "unknown"})] = 1
    observations = {}
    if seconds is not None:
        bucket = next((str(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
        fields[_field(HISTOGRAM + "_bucket", {"instance": instance, "le": bucket})] = 1
        observations[_field(HISTOGRAM + "_sum", {"instance": instance})] = max(seconds, 0.0)
    _write(fields, observations)


def _field(name: str, labels: dict) -> str:
    # "name|k=v|k=v": label values are instance names, error kinds and outcomes, which never hold "|" or "=".
    return "|".join([name, *(f"{key}={labels[key]}" for key in sorted(labels))])


def _parse_field(field: str) -> tuple[str, dict]:
    name, *pairs = field.split("|")
    return name, dict(pair.split("=", 1) for pair in pairs)


_batch = threading.local()


@contextmanager
def batched():
    """Within it, this thread's increments are summed and written once, on the way out (also when it raises): a
    batch of sends (``send_bulk_messages``) pays one Redis round trip for its metrics instead of one per send, a
    fourteenth of a drain worker's CPU. A worker killed mid-batch loses that batch's counts, never a message."""
    if getattr(_batch, "pending", None) is not None:  # already inside one: the outer one writes
        yield
        return
    _batch.pending = pending = (Counter(), Counter())
    try:
        yield
    finally:
        _batch.pending = None
        if pending[0] or pending[1]:
            _write(*pending)


def _write(increments: dict[str, int], float_increments: dict[str, float]) -> None:
    pending = getattr(_batch, "pending", None)
    if pending is not None:
        pending[0].update(increments)
        pending[1].update(float_increments)
        return
    client = _redis()
    if client is None:
        return
    try:
        pipe = client.pipeline(transaction=False)
        for field, amount in increments.items():
            pipe.hincrby(_key(), field, amount)
        for field, amount in float_increments.items():
            pipe.hincrbyfloat(_key(), field, amount)
        pipe.execute()
    except Exception as error:  # never let metrics fail a send
        _warn(f"metrics not recorded: {type(error).__name__}: {error}")


def _key() -> str:
    return f"{settings.METRICS_KEY_PREFIX}:counters"


def _redis():
    url = settings.METRICS_REDIS_URL
    if not url:
        return None
    client = _redis_clients.get(url)
    if client is None:
        import redis

        with _redis_lock:
            client = _redis_clients.get(url)
            if client is None:
                # Short timeouts: a send waits at most half a second on a sick Redis before giving up the count.
                client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
                _redis_clients[url] = client
    return client


def _warn(text: str) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning > _WARN_EVERY_SECONDS:
        _last_warning = now
        log.warning(text)


# --- reading (at scrape time) --------------------------------------------------------------------------------


class ConsoleCollector:
    """Builds every metric family from Redis, the broker and the database when /metrics is scraped."""

    def collect(self):
        stored, store_up = _read_counters()
        yield from _counter_families(stored)
        yield _histogram_family(stored)
        up = GaugeMetricFamily("console_metrics_store_up", "1 when the Redis that holds the counters answered.")
        up.add_metric([], 1 if store_up else 0)
        yield up
        yield _queue_depth_family()
        yield _in_flight_family()


def _read_counters() -> tuple[dict[str, float], bool]:
    client = _redis()
    if client is None:
        return {}, False
    try:
        raw = client.hgetall(_key())
    except Exception as error:
        _warn(f"metrics not read: {type(error).__name__}: {error}")
        return {}, False
    return {field.decode(): float(value) for field, value in raw.items()}, True


def _counter_families(stored: dict[str, float]):
    families = {
        name: CounterMetricFamily(name, help_text, labels=labels) for name, (help_text, labels) in COUNTERS.items()
    }
    for field, value in sorted(stored.items()):
        name, labels = _parse_field(field)
        family = families.get(name)
        if family is not None:
            family.add_metric([labels.get(label, "") for label in COUNTERS[name][1]], value)
    return families.values()


def _histogram_family(stored: dict[str, float]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(HISTOGRAM, HISTOGRAM_HELP, labels=["instance"])
    per_instance: dict[str, dict] = {}
    for field, value in stored.items():
        name, labels = _parse_field(field)
        if not name.startswith(HISTOGRAM + "_"):
            continue
        entry = per_instance.setdefault(labels.get("instance", ""), {"buckets": {}, "sum": 0.0})
        if name.endswith("_bucket"):
            entry["buckets"][labels.get("le", "+Inf")] = value
        elif name.endswith("_sum"):
            entry["sum"] = value
    for instance, entry in sorted(per_instance.items()):
        # Stored per bucket; Prometheus wants each bucket to count everything at or below its bound.
        running, buckets = 0.0, []
        for bound in [*map(str, LATENCY_BUCKETS), "+Inf"]:
            running += entry["buckets"].get(bound, 0.0)
            buckets.append((bound, running))
        family.add_metric([instance], buckets, entry["sum"])
    return family


def _queue_depth_family() -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "console_queue_messages",
        "Tasks waiting in the broker, per queue (tasks already reserved by a worker are not counted; a "
        "bulk_messages task may carry up to MESSAGING_BULK_BATCH_SIZE messages).",
        labels=["queue"],
    )
    for queue, depth in selectors.queue_depths().items():
        if depth is not None:  # the broker did not answer: no sample, rather than a false zero
            family.add_metric([queue], depth)
    return family


def _in_flight_family() -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "console_messages_in_status", "Messages not yet final, by status (from the database).", labels=["status"]
    )
    for status, count in selectors.in_flight_counts().items():
        family.add_metric([status], count)
    return family


_registry = CollectorRegistry(auto_describe=False)
_registry.register(ConsoleCollector())


def render() -> bytes:
    return generate_latest(_registry)
