"""The admin site as an operator meets it: its titles, the console's own pages first, and Celery's records
shown as the read-only history they are."""
from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django_celery_results import admin as celery_results_admin  # registers them first, so we can replace them
from django_celery_results.models import GroupResult, TaskResult

from messaging.admin.read_only import ReadOnly

admin.site.site_header = "WhatsApp messaging console"
admin.site.site_title = "WhatsApp console"
admin.site.index_title = "Operator console"

# The product, every app of this project; the rest (accounts, tokens, Celery, lockouts) is administration below it.
CONSOLE_APPS = ("messaging", "campaigns", "inbound", "callbacks", "access")
# After the console: who may sign in, then the machinery's records.
ADMINISTRATION_ORDER = ("auth", "authtoken", "django_celery_results", "django_celery_beat")


def console_app_list(request, app_label=None) -> list[dict]:
    """Django's app list with the console's apps first (the dashboard as their first page) and the rest below,
    each app marked ``console`` True or False so the templates can set the two groups apart."""
    apps = _django_app_list(request, app_label)
    for app in apps:
        app["console"] = app["app_label"] in CONSOLE_APPS
        if app["app_label"] == "messaging":
            _put_the_dashboard_first(app)

    def position(app):
        if app["console"]:
            return (0, CONSOLE_APPS.index(app["app_label"]))
        label = app["app_label"]
        return (1, ADMINISTRATION_ORDER.index(label) if label in ADMINISTRATION_ORDER else len(ADMINISTRATION_ORDER))

    return sorted(apps, key=position)  # stable: apps of equal rank keep Django's alphabetical order


def _put_the_dashboard_first(app: dict) -> None:
    for model in app["models"]:
        if model["object_name"] == "OutboundMessage":
            model["name"] = "Messages"
            if model.get("perms", {}).get("view"):
                try:
                    url = reverse("admin:messaging_outboundmessage_dashboard")
                except NoReverseMatch:
                    return
                app["models"].insert(0, {
                    "name": "Sending dashboard", "object_name": "Dashboard", "admin_url": url, "add_url": None,
                    "view_only": True, "perms": {"view": True},
                })
            return


_django_app_list = admin.site.get_app_list
# The project uses Django's default site (every app registers with admin.site), so its list is replaced on that
# instance rather than by a second AdminSite that the other apps would not know about.
admin.site.get_app_list = console_app_list


class ReadOnlyResultAdmin(ReadOnly):
    """Celery's result rows record what a worker did; the console never edits or deletes them by hand.

    A send that ends "failed" is still a task that returned normally, so Celery records SUCCESS: the message's
    own status, not this row, says how the send went.
    """


class TaskResultAdmin(ReadOnlyResultAdmin, celery_results_admin.TaskResultAdmin):
    pass


class GroupResultAdmin(ReadOnlyResultAdmin, celery_results_admin.GroupResultAdmin):
    pass


for model, model_admin in ((TaskResult, TaskResultAdmin), (GroupResult, GroupResultAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
