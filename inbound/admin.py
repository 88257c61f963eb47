"""The operator's view of replies, batches, keyword rules, opt-outs, raw webhook events and each instance's webhook."""
from django.contrib import admin, messages

from inbound import services
from inbound.models import Batch, InboundMessage, InstanceWebhook, KeywordRule, OptOut, Receipt, WebhookEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by webhooks only: an operator reads them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "phone", "push_name", "text", "message_type", "instance", "batch"]
    list_filter = ["instance", "message_type", ("received_at", admin.DateFieldListFilter)]
    search_fields = ["phone", "text", "push_name", "whatsapp_id"]
    list_select_related = ["batch"]
    date_hierarchy = "received_at"


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
