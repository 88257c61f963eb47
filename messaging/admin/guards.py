"""Hostile but legal requests to a changelist, answered with a sentence instead of a database error.

PostgreSQL refuses a NUL character in any text it compares, so a filter value with one (``?status=%00``) would
reach the database and fail there; and an action POSTed with an id that is not an id (``_selected_action=abc``)
fails in Django's ``pk__in`` before any action runs. Both are typed by hand, never by the pages themselves.

One middleware guards the changelist of every ModelAdmin on the site, the console's and those of the apps it
installs (auth, Celery's, axes...), so a newly registered admin cannot forget it.
"""
from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect

NUL = "\x00"


class ChangelistGuardMiddleware:
    """Needs the session, the signed-in user and the messages framework: placed after their middleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        model_admin = getattr(view_func, "model_admin", None)  # set by ModelAdmin.get_urls on each of its views
        if model_admin is None or request.resolver_match.url_name != _changelist_url_name(model_admin):
            return None
        # Only for someone the changelist would serve; everyone else gets Django's own login redirect or 403.
        if not (model_admin.admin_site.has_permission(request) and model_admin.has_view_or_change_permission(request)):
            return None
        return _refuse_nul_in_query(request) or _refuse_selection_of_non_ids(request, model_admin)


def _changelist_url_name(model_admin) -> str:
    return f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_changelist"


def _refuse_nul_in_query(request):
    refused = [key for key, values in request.GET.lists() if NUL in key or any(NUL in value for value in values)]
    if not refused:
        return None
    # The rest of the query still applies: the operator loses only what could never have matched.
    kept = request.GET.copy()
    for key in refused:
        del kept[key]
    names = ", ".join(f'"{key.replace(NUL, "")}"' for key in refused)
    messages.error(request, f"Filters and searches cannot contain a NUL character; ignored {names}.")
    return HttpResponseRedirect(f"{request.path}?{kept.urlencode()}" if kept else request.path)


def _refuse_selection_of_non_ids(request, model_admin):
    if request.method != "POST":
        return None
    pk = model_admin.opts.pk
    not_ids = [value for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME) if not _is_an_id(pk, value)]
    if not not_ids:
        return None
    # The checkboxes only ever send ids: a selection with anything else was edited, so none of it is run.
    shown = ", ".join(repr(value)[:40] for value in not_ids[:5])
    messages.error(request, f"Nothing was done: the selection has values that are not ids ({shown}).")
    return HttpResponseRedirect(request.get_full_path())


def _is_an_id(pk, value: str) -> bool:
    try:
        pk.to_python(value)
    except ValidationError:
        return False
    return NUL not in value  # a text primary key (a task id) takes anything, but PostgreSQL not a NUL
