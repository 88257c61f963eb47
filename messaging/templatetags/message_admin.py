"""Template tags for the messages admin."""
import copy
from datetime import datetime

from django import template
from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.utils import timezone

register = template.Library()


class _PeriodsBetweenFirstAndLast:
    """Stands in for the changelist's queryset inside Django's ``date_hierarchy``.

    Django lists the years, months or days to drill into with ``SELECT DISTINCT date_trunc(...)`` over every
    matching row: a full scan of a million messages on each page. This answers with the periods between the
    first and last matching dates instead (two index lookups); a period with no messages may be listed.
    """

    def __init__(self, queryset, field_name):
        self._queryset = queryset
        self._field = field_name
        self._range = None

    def aggregate(self, **kwargs):
        """Django asks ``aggregate(first=Min(field), last=Max(field))``. ORDER BY ... LIMIT 1 each way walks the
        date index and stops at the first match; MIN()/MAX() over a filtered set (an EXISTS, a search) may make
        PostgreSQL join every row first."""
        if self._range is None:
            values = self._queryset.values_list(self._field, flat=True)
            self._range = {
                "first": values.order_by(self._field).first(),
                "last": values.order_by(f"-{self._field}").first(),
            }
        return dict(self._range)

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        found = self.aggregate()
        first, last = found["first"], found["last"]
        if first is None:
            return []
        first, last = timezone.localtime(first), timezone.localtime(last)
        periods, current = [], _truncate(first, kind)
        while current <= last:
            periods.append(current)
            current = _next(current, kind)
        return periods

    dates = datetimes


def _truncate(moment: datetime, kind: str) -> datetime:
    moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind in ("month", "year"):
        moment = moment.replace(day=1)
    if kind == "year":
        moment = moment.replace(month=1)
    return moment


def _next(moment: datetime, kind: str) -> datetime:
    if kind == "year":
        return moment.replace(year=moment.year + 1)
    if kind == "month":
        return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
    return datetime.combine(moment.date().fromordinal(moment.date().toordinal() + 1), moment.time(), moment.tzinfo)


def cheap_date_hierarchy(cl):
    stand_in = copy.copy(cl)
    stand_in.queryset = _PeriodsBetweenFirstAndLast(cl.queryset, cl.date_hierarchy)
    return date_hierarchy(stand_in)


@register.tag(name="message_date_hierarchy")
def message_date_hierarchy_tag(parser, token):
    return InclusionAdminNode(
        parser, token, func=cheap_date_hierarchy, template_name="date_hierarchy.html", takes_context=False
    )


@register.filter
def thousands(value) -> str:
    """1234567 -> "1,234,567" (without turning on django.contrib.humanize for one filter)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value


@register.filter
def console_apps(app_list) -> list:
    """The apps the console is made of (marked by messaging.admin.site.console_app_list)."""
    return [app for app in app_list if app.get("console")]


@register.filter
def administration_apps(app_list) -> list:
    """Everything else: who may sign in, and the records of Celery's workers and schedules."""
    return [app for app in app_list if not app.get("console")]
