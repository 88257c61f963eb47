"""How often one caller may call the API: ``API_THROTTLE_RATE`` requests per signed-in caller (an API client, a
person's token or session), counted in the cache every web process shares (Redis in production).

DRF's own throttles keep each caller's request times as a list they read, change and write back: across
processes two requests can both read the old list and one is never counted, and at thousands a minute the list
is a large value moved on every request. Here each caller has one counter per window, raised by an atomic
increment. Anonymous requests are not counted: they reach only /health, the docs and the schema.

When the cache cannot be reached (Redis down), requests are let through uncounted rather than refused: a
throttle must not turn a Redis outage into 500s on POST /messages, which is still accepted (the row is the
record; README "What happens when things fail").
"""
import logging
import time

from django.core.cache import cache
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
