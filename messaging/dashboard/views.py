"""The dashboard page of the messages admin (admin:messaging_outboundmessage_dashboard)."""
from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from evolution.instances import instance_states, paused_reason
from messaging import selectors
from messaging.dashboard import queries
from messaging.dashboard.chart import hourly_chart
from messaging.models import MessageStatus


def changelist_url(**filters) -> str:
    """The messages changelist, filtered: where each figure of the dashboard leads."""
    return reverse("admin:messaging_outboundmessage_changelist") + ("?" + urlencode(filters) if filters else "")


def rate(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage for the page ("97.5%"); "—" when nothing was sent."""
    return f"{100 * part / whole:.1f}%" if whole else "—"


def dashboard_page(request, model_admin) -> TemplateResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Sending dashboard",
        "opts": model_admin.model._meta,
        **dashboard_context(timezone.now()),
    }
    return TemplateResponse(request, "admin/messaging/dashboard.html", context)


def dashboard_context(now) -> dict:
    """The dashboard's figures, each with the link to the changelist rows behind it."""
    since = {name: (now - span) for name, span in queries.WINDOWS}
    counts = queries.status_counts(now=now)
    status_rows = [
        {
            "status": status,
            "label": label,
            "cells": [
                {"count": counts[status][name],
                 "url": changelist_url(status=status, created_at__gte=since[name].isoformat())}
                for name, _ in queries.WINDOWS
            ],
        }
        for status, label in MessageStatus.choices
    ]
    totals = [
        {"count": sum(counts[status][name] for status in counts),
         "url": changelist_url(created_at__gte=since[name].isoformat())}
        for name, _ in queries.WINDOWS
    ]
    receipts = queries.receipt_counts(now=now)
    receipt_rows = [
        {
            "label": label,
            "cells": [
                {"count": receipts[name][figure],
                 "rate": rate(receipts[name][figure], receipts[name]["sent"]) if figure != "sent" else None,
                 "url": changelist_url(status="sent", finished_at__gte=since[name].isoformat(),
                                       **({"receipt": figure} if figure != "sent" else {}))}
                for name, _ in queries.RECEIPT_WINDOWS
            ],
        }
        for figure, label in (("sent", "Sent"), ("delivered", "Delivered"), ("read", "Read"))
    ]
    day_ago = (now - timedelta(days=1)).isoformat()
    reasons = [
        {**row, "url": changelist_url(status="failed", last_error_kind=row["last_error_kind"], finished_at__gte=day_ago)}
        for row in queries.top_failure_reasons(now=now)
    ]
    return {
        "now": timezone.localtime(now),
        "windows": [name for name, _ in queries.WINDOWS],
        "status_rows": status_rows,
        "totals": totals,
        "receipt_windows": [name for name, _ in queries.RECEIPT_WINDOWS],
        "receipt_rows": receipt_rows,
        "waiting": [
            {"status": status, "count": count, "url": changelist_url(status=status)}
            for status, count in selectors.in_flight_counts().items()
        ],
        "chart": hourly_chart(
            queries.sent_and_failed_by_hour(now=now),
            link=lambda status, start, end: changelist_url(
                status=status, finished_at__gte=start.isoformat(), finished_at__lt=end.isoformat()
            ),
        ),
        "reasons": reasons,
        "instances": [
            {**state, "paused": paused_reason(state["name"]), "url": changelist_url(instance=state["name"])}
            for state in instance_states()
        ],
        "queues": [{"name": name, "depth": depth} for name, depth in selectors.queue_depths().items()],
        "changelist_url": changelist_url(),
    }
