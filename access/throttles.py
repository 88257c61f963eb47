"""How often one caller may call the API: ``API_THROTTLE_RATE`` requests per signed-in caller (an API client, a
person's token or session), counted in the cache every web process shares (Redis in production).

DRF's own throttles keep each caller's request times as a list they read, change and write back: across
processes two requests can both read the old list and one is never counted, and at thousands a minute the list
is a large value moved on every request. Here each caller has one counter per window, raised by an atomic
increment. Anonymous requests are not counted: the API refuses them (401) before a throttle runs, and what an
anonymous caller may reach (/health, /, the docs) holds no data to harvest (README, Security).

``API_MESSAGE_RATE`` caps, on top, the messages a caller may submit: a bulk request counts its items, so one token
cannot send 1,000 messages in one request, or in a few seconds. See MessageRateThrottle.

When the cache cannot be reached (Redis down), requests are let through uncounted rather than refused: a
throttle must not turn a Redis outage into 500s on POST /messages, which is still accepted (the row is the
record; README "What happens when things fail").
"""
import logging
import threading
import time

from django.core.cache import cache
from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


log = logging.getLogger("access")

_WARN_EVERY_SECONDS = 60.0
_last_warning = 0.0


class CallerRateThrottle(SimpleRateThrottle):
    scope = "caller"

    def get_rate(self):
        # Read on each request rather than once at import, so a changed setting (and a test's override) applies.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        if not self.rate or not (request.user and request.user.is_authenticated):
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        now = time.time()
        window = int(now // self.duration)
        key = f"throttle:{self.scope}:{request.user.pk}:{window}"
        try:
            count = _count(key, ttl=self.duration + 1)
        except Exception as error:  # the cache is unreachable: let the request through, uncounted
            _warn(f"API throttle not counted, cache unavailable: {type(error).__name__}: {error}")
            return True
        self.retry_after = (window + 1) * self.duration - now
        return count <= self.num_requests

    def wait(self):
        return self.retry_after


class MessageRateThrottle(SimpleRateThrottle):
    """At most N messages per period per caller (``API_MESSAGE_RATE``, e.g. ``600/min``) on the POSTs of views whose
    ``throttle_scope`` is "messages", counted by item: a single send is one, a bulk request the length of its list,
    whether its items are then accepted or not.

    A token bucket (GCRA) rather than a counter per window: with windows a caller could send N just before a
    window ends and N again just after. Here N is the largest burst, and after it messages come back at the rate,
    so in any t seconds a caller submits at most N + t x rate. A request over the allowance is refused whole
    (nothing of it is stored) and does not use any of it.
    """
    scope = "messages"

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        if (not self.rate or getattr(view, "throttle_scope", None) != self.scope or request.method != "POST"
                or not (request.user and request.user.is_authenticated)):
            return True
        burst, period = self.parse_rate(self.rate)
        cost = _messages_in(request)
        if cost > burst:  # could never pass: a client that waited for Retry-After would be refused again
            raise ValidationError({"messages": [
                f"At most {burst} messages per request: this API accepts {self.rate} per caller."
            ]})
        try:
            self.retry_after = _take(f"throttle:{self.scope}:{request.user.pk}", cost=cost,
                                     interval=period / burst, burst=burst)
        except Exception as error:  # the cache is unreachable: as for the request throttle, let it through
            _warn(f"API message throttle not counted, cache unavailable: {type(error).__name__}: {error}")
            return True
        return self.retry_after == 0

    def wait(self):
        return self.retry_after


def _messages_in(request) -> int:
    items = request.data.get("messages") if isinstance(request.data, dict) else None
    return max(len(items), 1) if isinstance(items, list) else 1  # any other body is one (refused) message


# Theoretical arrival time (TAT) of the caller's bucket, in Redis's own clock so every web host agrees. Returns
# the seconds to wait, "0" when the messages were taken (as text: Lua numbers reach Python as truncated integers).
_TAKE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local cost, interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local wait = tat + cost * interval - burst * interval - now
if wait > 0 then return tostring(wait) end
redis.call('SET', KEYS[1], tostring(tat + cost * interval), 'PX', math.ceil((tat + cost * interval - now) * 1000) + 1000)
return '0'
"""
_scripts = {}
_local_lock = threading.Lock()


def _take(key: str, *, cost: int, interval: float, burst: int) -> float:
    """Take ``cost`` messages from the caller's bucket if it holds them: 0, else the seconds until it will."""
    redis_cache = getattr(cache, "_cache", None)
    if hasattr(redis_cache, "get_client"):
        client = redis_cache.get_client(write=True)
        script = _scripts.get(id(client))
        if script is None:
            script = _scripts[id(client)] = client.register_script(_TAKE_SCRIPT)
        return float(script(keys=[cache.make_and_validate_key(key)], args=[cost, interval, burst]))
    with _local_lock:  # the local-memory cache of the embedded mode: one process, so a lock is enough
        now = time.time()
        tat = max(cache.get(key, 0.0), now)
        wait = tat + cost * interval - burst * interval - now
        if wait > 0:
            return wait
        cache.set(key, tat + cost * interval, timeout=int(tat + cost * interval - now) + 1)
        return 0.0


def _count(key: str, *, ttl: int) -> int:
    """Raise and return the window's counter. On Redis one round trip (INCR and EXPIRE in one pipeline, through
    the cache's own pool); Django's cache API takes two commands and builds a Redis client object for each."""
    redis_cache = getattr(cache, "_cache", None)
    if hasattr(redis_cache, "get_client"):
        client = redis_cache.get_client(write=True)
        pipe = client.pipeline(transaction=False)
        full_key = cache.make_and_validate_key(key)
        pipe.incr(full_key)
        pipe.expire(full_key, ttl, nx=True)
        return pipe.execute()[0]
    cache.add(key, 0, timeout=ttl)  # the local-memory cache of the embedded mode: one process, no races
    try:
        return cache.incr(key)
    except ValueError:  # the window's key expired between the two calls
        cache.set(key, 1, timeout=ttl)
        return 1


def _warn(text: str) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning > _WARN_EVERY_SECONDS:
        _last_warning = now
        log.warning(text)
