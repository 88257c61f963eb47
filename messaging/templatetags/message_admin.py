"""Template tags for the messages admin."""
import copy
from datetime import datetime

from django import template
from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.db.models import Max, Min
from django.utils import timezone

register = template.Library()


class _PeriodsBetweenFirstAndLast:
    """Stands in for the changelist's queryset inside Django's ``date_hierarchy``.

    Django lists the years, months or days to drill into with ``SELECT DISTINCT date_trunc(...)`` over every
    matching row: a full scan of a million messages on each page. This answers with the periods between the
    first and last matching dates instead (two index lookups); a period with no messages may be listed.
    """

    def __init__(self, queryset):
        self._queryset = queryset
        self._range = None

    def aggregate(self, **kwargs):
        return self._queryset.aggregate(**kwargs)

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        if self._range is None:
            self._range = self._queryset.aggregate(first=Min(field_name), last=Max(field_name))
        first, last = self._range["first"], self._range["last"]
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
    stand_in.queryset = _PeriodsBetweenFirstAndLast(cl.queryset)
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
