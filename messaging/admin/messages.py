"""The messages admin: find a message, see what happened to it, fix it.

Every change goes through the services the API uses (accept, resend, cancel, send now); the admin only turns
their answers into sentences. Messages are never edited here: history is read-only, state changes are actions.
"""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from messaging import idempotency, maintenance, selectors, services
from messaging.admin.filters import (
    CampaignFilter, FailedAttemptsFilter, FailureReasonFilter, InstanceFilter, ReceiptFilter,
)
from messaging.admin.forms import ComposeMessageForm, MessageRecordForm
from messaging.admin.read_only import ReadOnly
from messaging.api.permissions import SCHEDULE
from messaging.dashboard.views import dashboard_page
from messaging.models import CANCELLABLE_STATUSES, MessageStatus, OutboundMessage, SendAttempt
from messaging.paginators import EstimatedCountPaginator

# A "select all" on a million rows must not turn into a million service calls in one request.
MAX_ACTION_BATCH = 1000


def status_badge(status: str, label: str):
    return format_html('<span class="msg-badge msg-badge--{}">{}</span>', status, label)


def short_time(moment):
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    return format_html('<span class="msg-when">{}</span> <span class="msg-when">{}</span>', f"{local:%Y-%m-%d}", f"{local:%H:%M}")


def precise_time(moment) -> str:
    return "—" if moment is None else timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


# --- the attempts, read-only ----------------------------------------------------------------------------------


class SendAttemptInline(ReadOnly, admin.TabularInline):
    model = SendAttempt
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = "Attempts"
    # Eight columns, so the table fits a 1366-pixel screen beside the navigation sidebar: the error's status,
    # kind and text share one column, and "finished" is "started" plus the duration.
    fields = ["attempt", "outcome_badge", "started", "duration", "error", "send_check", "evolution_id", "task"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("number")

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

    @admin.display(description="#")
    def attempt(self, attempt):
        return attempt.number

    @admin.display(description="error")
    def error(self, attempt):
        if not (attempt.http_status or attempt.error_kind or attempt.error_text):
            return "—"
        # An attempt its instance's disconnection excused: the operator sees why it did not use up a retry.
        return format_html(
            "{} <code>{}</code> {}{}", attempt.http_status or "", attempt.error_kind, attempt.error_text,
            "" if attempt.counted else " (did not count: instance paused)",
        )

    @admin.display(description="sent?")
    def send_check(self, attempt):
        # maybe_sent: the next try asks findMessages first; reconciled: this try found it sent and did not resend.
        if attempt.reconciled:
            return "found already sent"
        return "maybe sent" if attempt.maybe_sent else ""

    @admin.display(description="Evolution id")
    def evolution_id(self, attempt):
        return format_html("<code>{}</code>", attempt.evolution_message_id) if attempt.evolution_message_id else "—"

    @admin.display(description="task")
    def task(self, attempt):
        # The first characters tell a retry's task from the first one's; the whole id is in the tooltip.
        if not attempt.task_id:
            return "—"
        return format_html('<code title="{}">{}…</code>', attempt.task_id, attempt.task_id[:8])


# --- messages ----------------------------------------------------------------------------------------------------


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    form = ComposeMessageForm
    inlines = [SendAttemptInline]

    list_display = [
        "id", "status_badge", "phone", "text_preview", "instance", "campaign", "attempts", "last_error_summary",
        "created", "sent",
    ]
    list_display_links = ["id", "phone"]
    # The campaign column and filter read the message's own ``source``: nothing to join, no import of campaigns.
    list_filter = ["status", ReceiptFilter, InstanceFilter, CampaignFilter, ("created_at", admin.DateFieldListFilter),
                   FailedAttemptsFilter, FailureReasonFilter]
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
    actions = ["resend_selected", "retry_failed_selected", "send_now_selected", "cancel_selected", "run_stuck_sweep"]
    change_form_template = "admin/messaging/outboundmessage/change_form.html"

    fieldsets = [
        (None, {"fields": ["status_badge", "phone", "instance", "text", "scheduled_at", "expires_at", "created_at",
                           "created_by"]}),
        ("Sending", {"fields": ["attempt_count", "uncounted_attempts", "next_attempt_at", "celery_task", "last_error_kind", "last_error"]}),
        ("Delivery", {"fields": ["evolution_message_id", "remote_jid", "sent_at", "finished_at", "delivered_at", "read_at",
                                 "callback_url"]}),
        ("History", {"fields": ["resend_of_link", "resends_links", "idempotency_key", "updated_at"]}),
    ]
    compose_fieldsets = [(None, {"fields": ["phone", "instance", "text", "scheduled_at", "expires_at",
                                            "valid_for_seconds", "compose_token"]})]

    # --- columns ---

    @admin.display(description="status", ordering="status")
    def status_badge(self, message):
        badge = status_badge(message.status, message.get_status_display())
        # What WhatsApp's receipts said since (inbound/): the message stays "sent", its phone got it, then read it.
        receipt, at = ("read", message.read_at) if message.read_at else ("delivered", message.delivered_at)
        if at is None:
            return badge
        return format_html('{}<br><span class="msg-receipt" title="{} {}">{}</span>', badge, receipt, precise_time(at), receipt)

    @admin.display(description="text")
    def text_preview(self, message):
        return Truncator(message.text).chars(60)

    @admin.display(description="campaign")
    def campaign(self, message):
        """ "campaign:12:run:3" as "12 · run 3", a link to the campaign's messages; "—" for any other source."""
        parts = message.source.split(":")
        if len(parts) != 4 or parts[0] != "campaign":
            return "—"
        return format_html('<a href="?campaign={}">{} · run {}</a>', parts[1], parts[1], parts[3])

    @admin.display(description="tries", ordering="attempt_count")
    def attempts(self, message):
        return message.attempt_count

    # Minutes are enough to find a row. Date and time may wrap onto two lines (each stays whole), which keeps
    # both columns in view on a 1366-pixel screen.
    @admin.display(description="created", ordering="created_at")
    def created(self, message):
        return short_time(message.created_at)

    @admin.display(description="sent", ordering="sent_at")
    def sent(self, message):
        return short_time(message.sent_at)

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
    def celery_task(self, message):
        # No link to Celery's result row: a send that ended "failed" is a task that returned normally, which
        # Celery records as SUCCESS. How the send went is the message's own status.
        if not message.task_id:
            return "—"
        return format_html(
            "<code>{}</code> · the message is {}", message.task_id,
            status_badge(message.status, message.get_status_display()),
        )

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

    def changelist_view(self, request, extra_context=None):
        # Not Django's "Select outbound message to change": it lists messages, and none of them is edited.
        context = {
            "title": "Messages", "module_name": "messages", "may_sweep": self.has_requeue_permission(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def add_view(self, request, form_url="", extra_context=None):
        return super().add_view(request, form_url, {"title": "Compose message", **(extra_context or {})})

    def get_form(self, request, obj=None, **kwargs):
        # The compose form on "add"; an existing message's page is all read-only fields.
        kwargs["form"] = ComposeMessageForm if obj is None else MessageRecordForm
        form = super().get_form(request, obj, **kwargs)
        if obj is None:  # a class made for this request by modelform_factory, so the user's right stays here
            form.may_schedule = request.user.has_perm(SCHEDULE)
        return form

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

    def has_requeue_permission(self, request):
        return request.user.has_perm("messaging.requeue_outboundmessage")

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
            expires_at=data.get("expires_at"),
            idempotency_key=idempotency.compose_key(data["compose_token"]) if data.get("compose_token") else None,
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

    @admin.action(description="Run the stuck-work sweep now (all stuck messages, whatever is selected)",
                  permissions=["requeue"])
    def run_stuck_sweep(self, request, queryset=None):
        # The sweep beat runs every MESSAGING_SWEEP_INTERVAL_SECONDS, now: it takes every stuck row, not a selection
        # (a stuck row is one nobody is working on, wherever it is in the list). Also a button above the list, which
        # needs no selection.
        counts = maintenance.requeue_stuck_messages()
        self.message_user(request, sweep_sentence(counts), messages.SUCCESS if any(counts.values()) else messages.INFO)

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
            path("sweep/", view(self.sweep_view), name="messaging_outboundmessage_sweep"),
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
            extra_context["title"] = f"Message #{message.pk} to {message.phone}"
            extra_context["message_buttons"] = self.buttons_for(request, message)
            extra_context["message_status"] = message.status
            extra_context["message_links"] = self.links_for(request, message)
        return super().change_view(request, object_id, form_url, extra_context)

    def links_for(self, request, message) -> list[dict]:
        """Where else this message shows: its contact's conversation (inbound/) and its status callbacks
        (callbacks/), for those who may read them. By URL name: messaging imports neither app."""
        links = []
        if request.user.has_perm("inbound.view_inboundmessage"):
            url = reverse("admin:inbound_conversation", args=[message.phone.lstrip("+")])
            links.append({"id": "msg-conversation", "label": "Conversation", "url": url})
        if message.callback_url and request.user.has_perm("callbacks.view_callbackdelivery"):
            url = reverse("admin:callbacks_callbackdelivery_changelist") + f"?message__id__exact={message.pk}"
            links.append({"id": "msg-callbacks", "label": "Status callbacks", "url": url})
        return links

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
        return dashboard_page(request, self)

    def sweep_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_requeue_permission(request):
            raise PermissionDenied
        self.run_stuck_sweep(request)
        return HttpResponseRedirect(reverse("admin:messaging_outboundmessage_changelist"))


def plural(count: int) -> str:
    return f"{count} message" if count == 1 else f"{count} messages"


def sweep_sentence(counts: dict[str, int]) -> str:
    """What ``maintenance.requeue_stuck_messages`` did, as the operator reads it."""
    if not any(counts.values()):
        return f"Stuck-work sweep: nothing was stuck ({maintenance.what_the_sweep_takes()})."
    parts = []
    if counts.get("queued"):
        parts.append(f"{plural(counts['queued'])} queued but never picked up")
    if counts.get("retrying"):
        parts.append(f"{plural(counts['retrying'])} whose retry was lost")
    if counts.get("interrupted"):
        parts.append(f"{plural(counts['interrupted'])} interrupted mid-send (checked with Evolution before resending)")
    sentence = "Stuck-work sweep: re-queued " + (", ".join(parts) if parts else "nothing")
    if counts.get("failed"):
        sentence += f"; {plural(counts['failed'])} failed: interrupted on the last allowed attempt"
    return sentence + "."
