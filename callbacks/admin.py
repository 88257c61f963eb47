"""Status callbacks in the admin, read-only: what was told to whom, and each POST with its answer."""
from django.contrib import admin

from callbacks.models import CallbackAttempt, CallbackDelivery


class CallbackAttemptInline(admin.TabularInline):
    model = CallbackAttempt
    fields = ["number", "started_at", "duration_ms", "http_status", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "message", "status", "state", "attempt_count", "next_attempt_at", "url", "last_error"]
    list_filter = ["state", "status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["url", "message__phone", "=message__id"]
    list_select_related = ["message"]
    date_hierarchy = "created_at"
    fields = ["message", "status", "at", "url", "state", "attempt_count", "next_attempt_at", "finished_at",
              "last_error", "body"]
    readonly_fields = fields
    inlines = [CallbackAttemptInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
