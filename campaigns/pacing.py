"""When each message of a run may go: the campaign's rate, outside its quiet hours.

A run's messages are stored with these send times and released by beat's due-check (``dispatch_due_messages``)
as each time comes: the database holds the schedule, never the broker, and the instance's own pace
(evolution/throttle.py) still applies on top, whatever the number of workers.
"""
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError({"time_zone": [f'Unknown time zone "{name}"; use a name such as America/Sao_Paulo.']})


def in_quiet_hours(moment: datetime, *, start: time | None, end: time | None, tz: ZoneInfo) -> bool:
    if start is None or end is None or start == end:
        return False
    local = moment.astimezone(tz).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end  # the window crosses midnight (22:00 -> 08:00)


def after_quiet_hours(moment: datetime, *, start: time | None, end: time | None, tz: ZoneInfo) -> datetime:
    """``moment``, or the end of the quiet window it falls in."""
    if not in_quiet_hours(moment, start=start, end=end, tz=tz):
        return moment
    local = moment.astimezone(tz)
    opening = datetime.combine(local.date(), end, tzinfo=tz)
    if opening <= local:
        opening = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=tz)
    return opening


def send_times(first: datetime, *, per_minute: int, start: time | None = None, end: time | None = None,
               tz: ZoneInfo = ZoneInfo("UTC")):
    """An endless sequence of send times from ``first``, ``per_minute`` a minute, none in the quiet hours."""
    gap = timedelta(seconds=60 / per_minute)
    moment = first
    while True:
        moment = after_quiet_hours(moment, start=start, end=end, tz=tz)
        yield moment
        moment += gap
