from django.contrib import admin

from messaging.models import OutboundMessage, SendAttempt


class SendAttemptInline(admin.TabularInline):
    model = SendAttempt
    extra = 0
    can_delete = False
    fields = ["number", "outcome", "started_at", "finished_at", "http_status", "error_kind", "error_text", "evolution_message_id"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "phone", "instance", "attempt_count", "last_error_kind", "created_at", "sent_at"]
    list_filter = ["status", "instance"]
    search_fields = ["phone", "text", "evolution_message_id"]
    show_full_result_count = False
    inlines = [SendAttemptInline]
