"""The operator console: find a message, see what happened to it, fix it, and see how sending is going.

Every change goes through the services the API uses (accept, resend, cancel, send now); the admin only turns
their answers into sentences. Messages are never edited here: history is read-only, state changes are actions.
"""
import uuid
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Exists, OuterRef
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.text import Truncator

from evolution.instances import instance_states
from messaging import dashboard, selectors, services
from messaging.models import CANCELLABLE_STATUSES, AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt
from messaging.paginators import EstimatedCountPaginator

admin.site.site_header = "WhatsApp messaging console"
admin.site.site_title = "WhatsApp console"
admin.site.index_title = "Operator console"

# A "select all" on a million rows must not turn into a million service calls in one request.
MAX_ACTION_BATCH = 1000
FAILED_ATTEMPT_OUTCOMES = (AttemptOutcome.TEMPORARY_ERROR, AttemptOutcome.PERMANENT_ERROR, AttemptOutcome.INTERRUPTED)


def status_badge(status: str, label: str):
    return format_html('<span class="msg-badge msg-badge--{}">{}</span>', status, label)


def precise_time(moment) -> str:
    return "—" if moment is None else timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def changelist_url(**filters) -> str:
    return reverse("admin:messaging_outboundmessage_changelist") + ("?" + urlencode(filters) if filters else "")


# --- filters: each one reads an index, and none runs a DISTINCT over the table to list its choices -----------


class InstanceFilter(admin.SimpleListFilter):
    title = "instance"
    parameter_name = "instance"

    def lookups(self, request, model_admin):
        return [(name, name) for name in settings.EVOLUTION_INSTANCES]

    def queryset(self, request, queryset):
        return queryset.filter(instance=self.value()) if self.value() else queryset


class FailedAttemptsFilter(admin.SimpleListFilter):
    title = "has failed attempts"
    parameter_name = "failed_attempts"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() not in ("yes", "no"):
            return queryset
        failed = SendAttempt.objects.filter(message=OuterRef("pk"), outcome__in=FAILED_ATTEMPT_OUTCOMES)
        return queryset.filter(Exists(failed)) if self.value() == "yes" else queryset.exclude(Exists(failed))


class FailureReasonFilter(admin.SimpleListFilter):
    title = "failure reason"
    parameter_name = "last_error_kind"

    def lookups(self, request, model_admin):
        # The reasons seen this week; any other value still filters when linked to.
        return [(kind, kind or "(none)") for kind in dashboard.recent_failure_kinds()]

    def queryset(self, request, queryset):
        return queryset.filter(last_error_kind=self.value()) if self.value() is not None else queryset


# --- the compose form --------------------------------------------------------------------------------------------


class ComposeMessageForm(forms.ModelForm):
    """Phone, instance, text and an optional send time, validated by the same service as POST /messages."""

    instance = forms.ChoiceField()
    scheduled_at = forms.SplitDateTimeField(
        required=False, widget=AdminSplitDateTime, label="Send at",
    )
    # Makes a double-submitted form one message: it becomes the message's idempotency key.
    compose_token = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = OutboundMessage
        fields = ["phone", "instance", "text", "scheduled_at"]
        widgets = {"phone": forms.TextInput(attrs={"placeholder": "+55 11 98765-4321", "autocomplete": "off"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instance"].choices = [(name, name) for name in settings.EVOLUTION_INSTANCES]
        self.fields["instance"].initial = settings.EVOLUTION_INSTANCE_NAME
        self.fields["phone"].help_text = "With the country code, in any format: +55 11 98765-4321, 5511987654321."
        self.fields["text"].strip = False  # sent exactly as typed, like the API
        self.fields["text"].help_text = f"Up to {settings.MESSAGING_MAX_TEXT_LENGTH} characters."
        zone = timezone.get_current_timezone()
        now = timezone.localtime()
        self.fields["scheduled_at"].help_text = (
            f"Leave empty to send now. Times are in your time zone, {zone.key if hasattr(zone, 'key') else zone} "
            f"(UTC{now.strftime('%z')[:3]}:{now.strftime('%z')[3:]}); it is {now:%Y-%m-%d %H:%M} there now."
        )
        self.fields["compose_token"].initial = uuid.uuid4().hex

    def clean(self):
        cleaned = super().clean()
        try:
            valid = services.validate_message(
                phone=cleaned.get("phone") or "",
                text=cleaned.get("text") or "",
                instance=cleaned.get("instance"),
                scheduled_at=cleaned.get("scheduled_at"),
            )
        except ValidationError as error:
            for field, field_errors in error.message_dict.items():
                if field not in self.errors:  # "required" already said it
                    self.add_error(field if field in self.fields else None, field_errors)
            return cleaned
        cleaned.update(valid)
        return cleaned

    def _post_clean(self):
        # The model's own checks would judge the phone as typed; the service above already judged it normalised.
        pass


# --- the attempts, read-only ----------------------------------------------------------------------------------


class SendAttemptInline(admin.TabularInline):
    model = SendAttempt
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = "Attempts"
    fields = [
        "number", "outcome_badge", "started", "finished", "duration", "http_status", "error_kind",
        "error_text", "maybe_sent", "reconciled", "evolution_message_id", "task_id",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("number")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="outcome")
    def outcome_badge(self, attempt):
        return status_badge(attempt.outcome, attempt.get_outcome_display())

    # Attempts are seconds apart: show the seconds (in the operator's time zone).
    @admin.display(description="started")
    def started(self, attempt):
        return precise_time(attempt.started_at)

    @admin.display(description="finished")
    def finished(self, attempt):
        return precise_time(attempt.finished_at)

    @admin.display(description="duration")
    def duration(self, attempt):
        return "—" if attempt.duration_ms is None else f"{attempt.duration_ms} ms"


# --- messages ----------------------------------------------------------------------------------------------------


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    form = ComposeMessageForm
    inlines = [SendAttemptInline]

    list_display = [
        "id", "status_badge", "phone", "text_preview", "instance", "attempts", "last_error_summary",
        "created_at", "sent_at",
    ]
    list_display_links = ["id", "phone"]
    # Campaigns slot in here when they exist: a "campaign" column, a filter, and "campaign" in list_select_related.
    list_filter = ["status", InstanceFilter, ("created_at", admin.DateFieldListFilter), FailedAttemptsFilter,
                   FailureReasonFilter]
    list_select_related = []  # every column reads the message row itself: nothing to join yet
    search_fields = ["phone", "text", "evolution_message_id"]  # how is decided in selectors.search_messages
    search_help_text = (
        "A phone in any format (+55 11 98765-4321, 98765 4321), words of the text, an Evolution message id, "
        "or #id."
    )
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False  # no second COUNT(*) of the whole table on each page
    actions = ["resend_selected", "retry_failed_selected", "send_now_selected", "cancel_selected"]
    change_form_template = "admin/messaging/outboundmessage/change_form.html"

    fieldsets = [
        (None, {"fields": ["status_badge", "phone", "instance", "text", "scheduled_at", "created_at", "created_by"]}),
        ("Sending", {"fields": ["attempt_count", "next_attempt_at", "task_link", "last_error_kind", "last_error"]}),
        ("Delivery", {"fields": ["evolution_message_id", "remote_jid", "sent_at", "finished_at", "delivery_receipts"]}),
        ("History", {"fields": ["resend_of_link", "resends_links", "idempotency_key", "updated_at"]}),
    ]
    compose_fieldsets = [(None, {"fields": ["phone", "instance", "text", "scheduled_at", "compose_token"]})]

    # --- columns ---

    @admin.display(description="status", ordering="status")
    def status_badge(self, message):
        return status_badge(message.status, message.get_status_display())

    @admin.display(description="text")
    def text_preview(self, message):
        return Truncator(message.text).chars(60)

    @admin.display(description="attempts", ordering="attempt_count")
    def attempts(self, message):
        return message.attempt_count

    @admin.display(description="last error")
    def last_error_summary(self, message):
        if not message.last_error_kind:
            return ""
        return format_html(
            '<span title="{}"><code>{}</code> {}</span>',
            message.last_error, message.last_error_kind, Truncator(message.last_error).chars(50),
        )

    # --- the message page ---

    @admin.display(description="Celery task")
    def task_link(self, message):
        if not message.task_id:
            return "—"
        from django_celery_results.models import TaskResult

        result_pk = TaskResult.objects.filter(task_id=message.task_id).values_list("pk", flat=True).first()
        if result_pk is None:
            return format_html("<code>{}</code> (no result recorded yet)", message.task_id)
        url = reverse("admin:django_celery_results_taskresult_change", args=[result_pk])
        return format_html('<a href="{}"><code>{}</code></a>', url, message.task_id)

    @admin.display(description="Delivery receipts")
    def delivery_receipts(self, message):
        # Webhook receipts (delivered, read) are shown here once the console receives Evolution's webhooks.
        return "None received yet." if message.status == MessageStatus.SENT else "—"

    @admin.display(description="Resend of")
    def resend_of_link(self, message):
        if message.resend_of_id is None:
            return "—"
        url = reverse("admin:messaging_outboundmessage_change", args=[message.resend_of_id])
        return format_html('<a href="{}">#{}</a>', url, message.resend_of_id)

    @admin.display(description="Resent as")
    def resends_links(self, message):
        resends = message.resends.order_by("created_at").values_list("pk", "status")
        if not resends:
            return "—"
        return format_html_join(
            ", ", '<a href="{}">#{}</a> ({})',
            ((reverse("admin:messaging_outboundmessage_change", args=[pk]), pk, status) for pk, status in resends),
        )

    def get_form(self, request, obj=None, **kwargs):
        # The compose form on "add"; an existing message's page is all read-only fields.
        kwargs["form"] = ComposeMessageForm if obj is None else forms.ModelForm
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request, obj=None):
        return self.compose_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [field for _, options in self.fieldsets for field in options["fields"]]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_search_results(self, request, queryset, search_term):
        return selectors.search_messages(queryset, search_term), False

    # --- permissions: Django's, so roles are groups (messaging/roles.py) ---

    def has_change_permission(self, request, obj=None):
        # A message is never edited: its history is the record. It changes state only through the actions.
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_resend_permission(self, request):
        return request.user.has_perm("messaging.resend_outboundmessage")

    def has_cancel_permission(self, request):
        return request.user.has_perm("messaging.cancel_outboundmessage")

    def has_send_now_permission(self, request):
        return request.user.has_perm("messaging.send_now_outboundmessage")

    # --- compose: saving the form is accepting a message, through the API's service ---

    def save_form(self, request, form, change):
        if change:  # unreachable: existing messages are read-only
            raise PermissionDenied
        data = form.cleaned_data
        message, created = services.accept_message(
            phone=data["phone"],
            text=data["text"],
            instance=data["instance"],
            scheduled_at=data["scheduled_at"],
            idempotency_key=f"console:compose:{data['compose_token']}" if data.get("compose_token") else None,
            created_by=request.user,
        )
        form.instance = message
        return message

    def save_model(self, request, obj, form, change):
        pass  # accept_message saved it (and enqueued it after commit)

    def save_related(self, request, form, formsets, change):
        pass

    def response_add(self, request, obj, post_url_continue=None):
        when = (
            f"scheduled for {timezone.localtime(obj.scheduled_at):%Y-%m-%d %H:%M %Z}"
            if obj.status == MessageStatus.SCHEDULED else "queued for sending"
        )
        self.message_user(request, f"Message #{obj.pk} to {obj.phone} {when}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:messaging_outboundmessage_change", args=[obj.pk]))

    # --- actions: the same services as the API, reported as sentences ---

    def _selected_ids(self, request, queryset) -> list[int]:
        ids = list(queryset.order_by("-created_at", "-id").values_list("pk", flat=True)[: MAX_ACTION_BATCH + 1])
        if len(ids) > MAX_ACTION_BATCH:
            self.message_user(
                request,
                f"Only the newest {MAX_ACTION_BATCH} selected messages were handled; run the action again for the rest.",
                messages.WARNING,
            )
        return ids[:MAX_ACTION_BATCH]

    def _report(self, request, report: services.ActionReport, done_phrase: str) -> None:
        parts = [f"{plural(len(report.done))} {done_phrase}"]
        if report.created:
            parts[0] += " as " + ", ".join(f"#{pk}" for pk in report.created[:20]) + ("…" if len(report.created) > 20 else "")
        parts += [f"{len(ids)} skipped: {reason}" for reason, ids in sorted(report.skipped.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
        level = messages.SUCCESS if report.done else messages.WARNING
        self.message_user(request, ", ".join(parts) + ".", level)

    @admin.action(description="Resend selected sent or failed messages", permissions=["resend"])
    def resend_selected(self, request, queryset):
        report = services.resend_messages(message_ids=self._selected_ids(request, queryset), created_by=request.user)
        self._report(request, report, "resent")

    @admin.action(description="Retry failed messages (resend the failed ones, skip the rest)", permissions=["resend"])
    def retry_failed_selected(self, request, queryset):
        report = services.retry_failed(message_ids=self._selected_ids(request, queryset), created_by=request.user)
        self._report(request, report, "re-queued")

    @admin.action(description="Send selected scheduled messages now", permissions=["send_now"])
    def send_now_selected(self, request, queryset):
        report = services.send_messages_now(message_ids=self._selected_ids(request, queryset))
        self._report(request, report, "released for sending")

    @admin.action(description="Cancel selected messages not yet sending", permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        report = services.cancel_messages(message_ids=self._selected_ids(request, queryset))
        self._report(request, report, "cancelled")

    # --- the buttons on a message page, and the dashboard ---

    BUTTONS = {
        # action name: (permission, statuses it applies to, label)
        "resend": ("resend", services.RESENDABLE_STATUSES, "Resend"),
        "send-now": ("send_now", (MessageStatus.SCHEDULED,), "Send now"),
        "cancel": ("cancel", CANCELLABLE_STATUSES, "Cancel"),
    }

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("dashboard/", view(self.dashboard_view), name="messaging_outboundmessage_dashboard"),
            path("<int:object_id>/actions/<str:action>/", view(self.message_button_view), name="messaging_outboundmessage_button"),
            *super().get_urls(),
        ]

    def buttons_for(self, request, message) -> list[dict]:
        buttons = []
        for action, (permission, statuses, label) in self.BUTTONS.items():
            if message.status in statuses and getattr(self, f"has_{permission}_permission")(request):
                url = reverse("admin:messaging_outboundmessage_button", args=[message.pk, action])
                buttons.append({"action": action, "label": label, "url": url})
        return buttons

    def change_view(self, request, object_id, form_url="", extra_context=None):
        message = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if message is not None:
            extra_context["message_buttons"] = self.buttons_for(request, message)
            extra_context["message_status"] = message.status
        return super().change_view(request, object_id, form_url, extra_context)

    def message_button_view(self, request, object_id: int, action: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if action not in self.BUTTONS:
            raise PermissionDenied
        message = get_object_or_404(OutboundMessage, pk=object_id)
        if not getattr(self, f"has_{self.BUTTONS[action][0]}_permission")(request):
            raise PermissionDenied
        page = reverse("admin:messaging_outboundmessage_change", args=[message.pk])
        if action == "resend":
            outcome = services.resend_message(message_id=message.pk, created_by=request.user)
            if outcome.resend is not None:
                verb = "Resent" if outcome.created else "Already resent"
                self.message_user(request, f"{verb} as #{outcome.resend.pk}.", messages.SUCCESS if outcome.created else messages.WARNING)
                return HttpResponseRedirect(reverse("admin:messaging_outboundmessage_change", args=[outcome.resend.pk]))
            self.message_user(request, f"Not resent: {outcome.reason}.", messages.WARNING)
        elif action == "send-now":
            self._report(request, services.send_messages_now(message_ids=[message.pk]), "released for sending")
        else:
            self._report(request, services.cancel_messages(message_ids=[message.pk]), "cancelled")
        return HttpResponseRedirect(page)

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        context = {
            **self.admin_site.each_context(request),
            "title": "Sending dashboard",
            "opts": self.model._meta,
            **dashboard_context(now),
        }
        return TemplateResponse(request, "admin/messaging/dashboard.html", context)


def plural(count: int) -> str:
    return f"{count} message" if count == 1 else f"{count} messages"


def dashboard_context(now) -> dict:
    """The dashboard's figures, each with the link to the changelist rows behind it."""
    local_now = timezone.localtime(now)
    since = {name: (now - span) for name, span in dashboard.WINDOWS}
    counts = dashboard.status_counts(now=now)
    status_rows = [
        {
            "status": status,
            "label": label,
            "cells": [
                {"count": counts[status][name],
                 "url": changelist_url(status=status, created_at__gte=since[name].isoformat())}
                for name, _ in dashboard.WINDOWS
            ],
        }
        for status, label in MessageStatus.choices
    ]
    totals = [
        {"count": sum(counts[status][name] for status in counts),
         "url": changelist_url(created_at__gte=since[name].isoformat())}
        for name, _ in dashboard.WINDOWS
    ]
    waiting = selectors.in_flight_counts()
    day_ago = (now - timedelta(days=1)).isoformat()
    reasons = [
        {**row, "url": changelist_url(status="failed", last_error_kind=row["last_error_kind"], finished_at__gte=day_ago)}
        for row in dashboard.top_failure_reasons(now=now)
    ]
    instances = [
        {**state, "url": changelist_url(instance=state["name"])} for state in instance_states()
    ]
    return {
        "now": local_now,
        "windows": [name for name, _ in dashboard.WINDOWS],
        "status_rows": status_rows,
        "totals": totals,
        "waiting": [
            {"status": status, "count": count, "url": changelist_url(status=status)} for status, count in waiting.items()
        ],
        "chart": hourly_chart(dashboard.sent_and_failed_by_hour(now=now)),
        "reasons": reasons,
        "instances": instances,
        "queues": [{"name": name, "depth": depth} for name, depth in selectors.queue_depths().items()],
        "changelist_url": changelist_url(),
    }


CHART_WIDTH, CHART_HEIGHT, CHART_LEFT, CHART_BOTTOM = 720, 200, 40, 24


def hourly_chart(buckets: list[dashboard.HourBucket]) -> dict:
    """Geometry for the sent-vs-failed bar chart, drawn as inline SVG by the template (no JavaScript, no CDN)."""
    plot_height = CHART_HEIGHT - CHART_BOTTOM - 8
    peak = max([max(b.sent, b.failed) for b in buckets] + [1])
    slot = (CHART_WIDTH - CHART_LEFT) / max(len(buckets), 1)
    bar = max(slot / 2 - 2, 1)
    bars, labels = [], []
    for index, bucket in enumerate(buckets):
        x = CHART_LEFT + index * slot
        end = bucket.start + timedelta(hours=1)
        for offset, status, count in ((1, "sent", bucket.sent), (1 + bar, "failed", bucket.failed)):
            height = round(plot_height * count / peak, 1)
            bars.append({
                "x": round(x + offset, 1), "y": round(8 + plot_height - height, 1), "width": round(bar, 1),
                "height": height, "status": status, "count": count,
                "title": f"{bucket.start:%H:00}–{end:%H:00}: {count} {status}",
                "url": changelist_url(status=status, finished_at__gte=bucket.start.isoformat(), finished_at__lt=end.isoformat()),
            })
        if index % 3 == 0:
            labels.append({"x": round(x + slot / 2, 1), "text": f"{bucket.start:%H}h"})
    return {
        "width": CHART_WIDTH, "height": CHART_HEIGHT, "left": CHART_LEFT, "baseline": CHART_HEIGHT - CHART_BOTTOM,
        "label_y": CHART_HEIGHT - 8, "peak": peak, "bars": bars, "labels": labels,
        "total_sent": sum(b.sent for b in buckets), "total_failed": sum(b.failed for b in buckets),
    }
