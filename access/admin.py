"""API clients in the admin: make one (its key is shown once, on the page that follows), see when each was
made, and revoke one. What a client may do is its user's role, granted like any other."""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from access.models import ApiClient


class NewClientForm(forms.ModelForm):
    class Meta:
        model = ApiClient
        fields = ["name"]


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = NewClientForm
    list_display = ["name", "state", "created_at", "created_by", "role_link"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name"]
    readonly_fields = ["name", "state", "created_at", "created_by", "revoked_at", "role_link"]
    actions = ["revoke_selected"]

    @admin.display(description="state")
    def state(self, client):
        return "revoked" if client.is_revoked else "active"

    @admin.display(description="user and role")
    def role_link(self, client):
        url = reverse("admin:auth_user_change", args=[client.user_id])
        return format_html('<a href="{}">{}</a>', url, client.user.username)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return ["name"] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        # Nothing of a client is edited; revoking is the one change, made by the action.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: its messages keep their sender

    def save_model(self, request, obj, form, change):
        if change:
            raise PermissionDenied  # a client's name and key do not change; make a new one
        client, key = ApiClient.objects.create_client(name=form.cleaned_data["name"], created_by=request.user)
        obj.pk = client.pk
        self.message_user(
            request,
            format_html(
                "API client “{}” made. Its key, shown this once: <code>{}</code> (send it as "
                "<code>Authorization: Bearer &lt;key&gt;</code>). Its callback secret, which signs the status "
                "callbacks of its messages (X-Console-Signature), also shown this once: <code>{}</code>.",
                client.name, key, client.callback_secret,
            ),
            messages.SUCCESS,
        )

    def response_add(self, request, obj, post_url_continue=None):
        return HttpResponseRedirect(reverse("admin:access_apiclient_change", args=[obj.pk]))

    @admin.action(description="Revoke the selected clients' keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = [client.name for client in queryset if client.revoke()]
        self.message_user(request, f"Revoked: {', '.join(revoked) or 'none (already revoked)'}.", messages.SUCCESS)
