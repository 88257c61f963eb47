"""The operator's view of replies, batches, keyword rules, opt-outs, raw webhook events and each instance's webhook."""
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from inbound import selectors, services
from inbound.models import Batch, InboundMessage, InstanceWebhook, KeywordRule, OptOut, Receipt, WebhookEvent
from messaging import services as messaging_services

REPLY_PERMISSION = "messaging.add_outboundmessage"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by webhooks only: an operator reads them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReplyForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), strip=False, label="Reply")
    instance = forms.ChoiceField(help_text="The WhatsApp number it is sent from.")

    def __init__(self, *args, instance: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instance"].choices = [(name, name) for name in settings.EVOLUTION_INSTANCES]
        self.fields["instance"].initial = instance or settings.EVOLUTION_INSTANCE_NAME


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "phone", "push_name", "text", "message_type", "instance", "batch", "conversation"]
    list_filter = ["instance", "message_type", ("received_at", admin.DateFieldListFilter)]
    search_fields = ["phone", "text", "push_name", "whatsapp_id"]
    list_select_related = ["batch"]
    date_hierarchy = "received_at"

    @admin.display(description="conversation")
    def conversation(self, message):
        return format_html('<a href="{}">both ways</a>', conversation_url(message.phone))

    def get_urls(self):
        return [
            path("conversation/<str:digits>/", self.admin_site.admin_view(self.conversation_view),
                 name="inbound_conversation"),
            *super().get_urls(),
        ]

    def conversation_view(self, request, digits: str):
        """A phone's messages both ways, interleaved by time, and a reply sent through the one send path."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if not digits.isdigit() or len(digits) > 19:
            raise Http404("Not a phone number.")
        phone = f"+{digits}"
        lines = selectors.conversation(phone=phone)
        last_reply = next((line.message for line in reversed(lines) if not line.outbound), None)
        may_reply = request.user.has_perm(REPLY_PERMISSION)
        form = ReplyForm(instance=last_reply.instance if last_reply else "")
        if request.method == "POST":
            if not may_reply:
                raise PermissionDenied
            form = ReplyForm(request.POST)
            if form.is_valid():
                try:
                    reply, _ = messaging_services.accept_message(
                        phone=phone, text=form.cleaned_data["text"], instance=form.cleaned_data["instance"],
                        created_by=request.user, source="admin:conversation",
                    )
                except ValidationError as error:
                    for field, problems in error.message_dict.items():
                        form.add_error(field if field in form.fields else None, problems)
                else:
                    self.message_user(request, f"Reply to {phone} queued as message #{reply.pk}.", messages.SUCCESS)
                    return HttpResponseRedirect(conversation_url(phone))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Conversation with {phone}",
            "opts": self.model._meta,
            "phone": phone,
            "lines": lines,
            "form": form if may_reply else None,
        }
        return TemplateResponse(request, "admin/inbound/conversation.html", context)


def conversation_url(phone: str) -> str:
    return reverse("admin:inbound_conversation", args=[phone.lstrip("+")])


class BatchMessageInline(admin.TabularInline):
    model = InboundMessage
    fields = ["received_at", "text", "message_type", "whatsapp_id"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["received_at", "id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "phone", "instance", "status", "message_count", "opened_at", "due_at", "processed_at", "outcome"]
    list_filter = ["status", "instance", ("opened_at", admin.DateFieldListFilter)]
    search_fields = ["phone", "outcome"]
    inlines = [BatchMessageInline]


@admin.register(KeywordRule)
class KeywordRuleAdmin(admin.ModelAdmin):
    list_display = ["keyword", "action", "enabled", "reply_text"]
    list_filter = ["action", "enabled"]
    list_editable = ["enabled"]
    search_fields = ["keyword", "reply_text"]


@admin.register(OptOut)
class OptOutAdmin(admin.ModelAdmin):
    """Deleting a row opts the phone back in."""

    list_display = ["phone", "keyword", "instance", "opted_out_at"]
    search_fields = ["phone"]
    list_filter = ["keyword", "instance"]
    readonly_fields = ["message"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "event", "instance", "processed_at", "error"]
    list_filter = ["event", "instance", ("received_at", admin.DateFieldListFilter)]
    readonly_fields = ["instance", "event", "dedupe_key", "body", "received_at", "processed_at", "error"]


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdmin):
    list_display = ["at", "status", "evolution_message_id", "instance"]
    list_filter = ["status", "instance"]
    search_fields = ["evolution_message_id"]


@admin.register(InstanceWebhook)
class InstanceWebhookAdmin(ReadOnlyAdmin):
    list_display = ["instance", "state", "state_changed_at", "url", "registered_at", "last_error"]
    exclude = ["secret"]  # Evolution holds it; nobody needs to read it
    actions = ["register"]

    @admin.action(description="Register the console's webhook on these instances", permissions=["register"])
    def register(self, request, queryset):
        for result in services.register_webhooks(instances_to_register=list(queryset.values_list("instance", flat=True))):
            if result.ok:
                self.message_user(request, f"{result.instance}: webhook registered at {result.detail}.")
            else:
                self.message_user(request, f"{result.instance}: not registered: {result.detail}", messages.ERROR)

    def has_register_permission(self, request):
        return request.user.has_perm("inbound.register_instancewebhook")
