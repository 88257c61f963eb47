"""Hostile but legal requests to a changelist, answered with a sentence instead of a database error.

PostgreSQL refuses a NUL character in any text it compares, so a filter value with one (``?status=%00``) would
reach the database and fail there; and an action POSTed with an id that is not an id (``_selected_action=abc``)
fails in Django's ``pk__in`` before any action runs. Both are typed by hand, never by the pages themselves.
"""
from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect

NUL = "\x00"


class ChangelistGuards:
    """Mixed into a ModelAdmin before ``admin.ModelAdmin``."""

    def changelist_view(self, request, extra_context=None):
        refused = [key for key, values in request.GET.lists() if NUL in key or any(NUL in value for value in values)]
        if refused:
            # The rest of the query still applies: the operator loses only what could never have matched.
            kept = request.GET.copy()
            for key in refused:
                del kept[key]
            names = ", ".join(f'"{key.replace(NUL, "")}"' for key in refused)
            self.message_user(
                request, f"Filters and searches cannot contain a NUL character; ignored {names}.", messages.ERROR
            )
            return HttpResponseRedirect(f"{request.path}?{kept.urlencode()}" if kept else request.path)
        return super().changelist_view(request, extra_context)

    def response_action(self, request, queryset):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        not_ids = [value for value in selected if not self._is_an_id(value)]
        if not_ids:
            # The checkboxes only ever send ids: a selection with anything else was edited, so none of it is run.
            shown = ", ".join(repr(value)[:40] for value in not_ids[:5])
            self.message_user(
                request, f"Nothing was done: the selection has values that are not ids ({shown}).", messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)

    def _is_an_id(self, value: str) -> bool:
        try:
            self.model._meta.pk.to_python(value)
        except ValidationError:
            return False
        return True
