"""Per-instance pacing, shared by every worker on every host through Redis.

WhatsApp bans numbers that burst, and Evolution API does not pace on its own (field notes), so each instance
has a rate: EVOLUTION_RATE_LIMIT for all ("20/m", "1/s"), EVOLUTION_RATE_LIMITS to override some
("sales=1/s,support=30/m"). Unset means no pacing.

The limiter is a GCRA ("generic cell rate algorithm") kept in one Redis key per instance: the time at which the
instance may next send. A send *reserves* the next free slot atomically (a Lua script on Redis's own clock, so
hosts with skewed clocks agree), and the caller waits until then without holding a worker: the send task is
re-published with that countdown, no attempt spent. Reservations look at most HOLD_SECONDS ahead (a task with a
countdown waits in a worker's memory, see field notes): beyond that the caller just comes back later. Bulk sends
reserve only a short way ahead, so a transactional message finds a slot soon even behind a long bulk backlog.
EVOLUTION_SEND_JITTER_SECONDS adds a random extra gap after each send, so the pace does not look machine-made.

Slots are exact, but a deferred task can wake late (a busy worker's timer); a late send followed by an on-time one
would reach Evolution closer together than the pace. So a send also passes a spacing check as it starts
(``spacing_wait``): any two sends of an instance, on any host, start at least SPACING_SHARE of the interval apart.
"""
from __future__ import annotations

import functools
import logging
import random
import re
from dataclasses import dataclass

from django.conf import settings

from evolution.shared_state import redis_client

log = logging.getLogger(__name__)

# Not the whole interval: slots are exactly one interval apart, so a full-interval check would carry one late
# send's delay over to every send after it; at 90% each later send wins back a tenth of an interval.
SPACING_SHARE = 0.9
HOLD_SECONDS = 30.0  # the furthest a transactional send reserves ahead
BULK_HOLD_INTERVALS = 2  # bulk reserves at most this many sends ahead of now

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}

# KEYS[1]: the instance's next free time (ms). ARGV: gap after this send (ms), furthest ahead to reserve (ms).
# Returns {reserved (1/0), wait in ms}.
_RESERVE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, free)
if slot - now > tonumber(ARGV[2]) then
  return {0, slot - now}
end
local gap = tonumber(ARGV[1])
redis.call('SET', KEYS[1], slot + gap, 'PX', slot + gap - now + 60000)
return {1, slot - now}
"""

# KEYS[1]: when the instance's last send started (ms). ARGV[1]: the least gap between two sends (ms).
# Returns how long to wait (ms) before this send may start; 0: it may, and it is now the last send.
_SPACE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local gap = tonumber(ARGV[1])
if now - last < gap then
  return gap - (now - last)
end
redis.call('SET', KEYS[1], now, 'PX', gap + 1000)
return 0
"""


@functools.lru_cache(maxsize=64)  # settings strings: parsed once per process, not once per send
def parse_rate(text: str) -> float | None:
    """Seconds between two sends for a rate like "20/m" or "1/s"; None for "" (no pacing)."""
    if not (text or "").strip():
        return None
    match = _RATE.match(text)
    if not match or float(match[1]) <= 0:
        raise ValueError(f'"{text}" is not a rate like 20/m, 1/s or 300/h')
    return _UNIT_SECONDS[match[2].lower()] / float(match[1])


def interval_for(instance: str) -> float | None:
    """Seconds between two sends of ``instance``, or None when it is not paced."""
    override = settings.EVOLUTION_RATE_LIMITS.get(instance)
    return parse_rate(override if override is not None else settings.EVOLUTION_RATE_LIMIT)


@dataclass(frozen=True)
class Slot:
    wait: float  # seconds from now
    reserved: bool  # False: nothing reserved, come back after ``wait``


def reserve(instance: str, *, bulk: bool) -> Slot:
    """Reserve ``instance``'s next send slot. ``wait`` 0 means "send now"."""
    interval = interval_for(instance)
    if interval is None:
        return Slot(0.0, True)
    client = redis_client()
    if client is None:
        _warn_once("EVOLUTION_RATE_LIMIT is set but no REDIS_URL: sends are not paced (pacing is shared in Redis)")
        return Slot(0.0, True)
    gap = interval + random.uniform(0, settings.EVOLUTION_SEND_JITTER_SECONDS)
    ahead = max(interval * BULK_HOLD_INTERVALS, 1.0) if bulk else HOLD_SECONDS
    try:
        reserved, wait_ms = client.eval(
            _RESERVE, 1, f"{settings.PACING_KEY_PREFIX}:{instance}", int(gap * 1000), int(ahead * 1000)
        )
    except Exception as error:  # no pace can be kept without Redis: wait rather than burst
        log.warning("instance=%s pacing unavailable (%s); sends wait", instance, error)
        return Slot(interval, False)
    return Slot(wait_ms / 1000, bool(reserved))


def spacing_wait(instance: str) -> float:
    """Seconds before a send of ``instance`` may start; 0.0 means start now (and it is recorded as the last)."""
    interval = interval_for(instance)
    client = redis_client() if interval is not None else None
    if client is None:
        return 0.0
    try:
        wait_ms = client.eval(_SPACE, 1, f"{settings.PACING_KEY_PREFIX}:{instance}:last", int(interval * SPACING_SHARE * 1000))
    except Exception as error:  # the slot was reserved; without Redis, keeping it is the best left to do
        log.warning("instance=%s spacing check unavailable (%s); sending in its slot", instance, error)
        return 0.0
    return wait_ms / 1000


_warned: set[str] = set()


def _warn_once(text: str) -> None:
    if text not in _warned:
        _warned.add(text)
        log.warning(text)
