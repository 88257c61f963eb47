"""How often one caller may call the API: ``API_THROTTLE_RATE`` requests per signed-in caller (an API client, a
person's token or session), counted in the cache every web process shares (Redis in production).

DRF's own throttles keep each caller's request times as a list they read, change and write back: across
processes two requests can both read the old list and one is never counted, and at thousands a minute the list
is a large value moved on every request. Here each caller has one counter per window, raised by an atomic
increment. Anonymous requests are not counted: they reach only /health, the docs and the schema.
"""
import time

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


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
        cache.add(key, 0, timeout=self.duration + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # the window's key expired between the two calls
            cache.set(key, 1, timeout=self.duration + 1)
            count = 1
        self.retry_after = (window + 1) * self.duration - now
        return count <= self.num_requests

    def wait(self):
        return self.retry_after
