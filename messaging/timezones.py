"""Show and read times in each operator's own time zone.

The admin's base template stores the browser's IANA zone name in the ``operator_tz`` cookie, percent-encoded by
``encodeURIComponent`` (``America%2FSao_Paulo``); this middleware decodes it and activates it for the request,
so the changelist, the message page and the compose form's send time all speak the operator's local time. Without the cookie (or with an unknown name) times are in settings.TIME_ZONE.
Stored datetimes are always aware (UTC in the database).
"""
import functools
import zoneinfo
from urllib.parse import unquote

from django.utils import timezone

COOKIE_NAME = "operator_tz"


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def operator_zone(name: str | None) -> zoneinfo.ZoneInfo | None:
    """The zone named by the cookie's value, encoded or not; None for a missing or unknown name."""
    name = unquote(name or "")
    if not name or name not in _known_zones():
        return None
    return zoneinfo.ZoneInfo(name)


class OperatorTimezoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = operator_zone(request.COOKIES.get(COOKIE_NAME))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
