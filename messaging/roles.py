"""The operator roles, as Django groups with permissions, so access is granted in the admin like any other.

- Support: sees messages and their attempts, and can resend one. Cannot cancel, send early or compose.
- Operators: everything on messages: compose and schedule, send now, cancel, resend, run the stuck-work sweep.
- API clients: the machines of access/ (one user each): send and schedule, and see only their own messages,
  since they lack view_outboundmessage. Grant a client more by adding it to another role.
The same permissions hold in the admin and the API (messaging/api/permissions.py).
Superusers have every permission. ``ensure_roles`` runs after every ``migrate`` (see MessagingConfig.ready).
"""
from django.contrib.auth.models import Group, Permission

ROLES = {
    "Support": [
        "view_outboundmessage",
        "view_sendattempt",
        "resend_outboundmessage",
    ],
    "Operators": [
        "view_outboundmessage",
        "view_sendattempt",
        "add_outboundmessage",
        "resend_outboundmessage",
        "cancel_outboundmessage",
        "send_now_outboundmessage",
        "schedule_outboundmessage",
        "requeue_outboundmessage",
    ],
    "API clients": [
        "add_outboundmessage",
        "schedule_outboundmessage",
    ],
}


def ensure_roles(**kwargs) -> None:
    """Create the groups and grant their permissions; permissions added by hand are left alone."""
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = Permission.objects.filter(content_type__app_label="messaging", codename__in=codenames)
        group.permissions.add(*permissions)
