"""Who may do what through the API: the same Django permissions the admin checks, per operation.

- reading messages: ``view_outboundmessage`` sees every message, as in the admin; a caller that may send but
  not view (an API client) sees only the messages it sent (``selectors.visible_messages``);
- sending: ``add_outboundmessage``; a send time in the future needs ``schedule_outboundmessage`` as well;
- cancel, resend, send now: their own permissions, on messages the caller can see.
Roles grant them (messaging/roles.py), for people and machines alike.
"""
from rest_framework.permissions import SAFE_METHODS, BasePermission

VIEW = "messaging.view_outboundmessage"
SEND = "messaging.add_outboundmessage"
SCHEDULE = "messaging.schedule_outboundmessage"
REQUEUE = "messaging.requeue_outboundmessage"
ACTIONS = {
    "cancel": "messaging.cancel_outboundmessage",
    "resend": "messaging.resend_outboundmessage",
    "send-now": "messaging.send_now_outboundmessage",
}


def may_read(user) -> bool:
    """Seeing messages: all of them with the view permission, one's own with the send permission."""
    return user.has_perm(VIEW) or user.has_perm(SEND)


class MessagePermission(BasePermission):
    """GET needs to see messages; POST needs to send them (scheduling is checked on the body, in the view)."""

    message = "You do not have permission to do this with messages."

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return may_read(user)
        return user.has_perm(SEND)


class MessageActionPermission(BasePermission):
    """POST /messages/{id}/{action}: the action's own permission."""

    message = "You do not have permission to do this with messages."

    def has_permission(self, request, view):
        permission = ACTIONS.get(view.kwargs.get("action"))
        return bool(request.user and request.user.is_authenticated and permission and request.user.has_perm(permission))


class StaffWithRequeuePermission(BasePermission):
    """POST /maintenance/requeue-stuck: staff who hold ``requeue_outboundmessage`` (Operators, superusers)."""

    message = "Only staff with the requeue permission may run the stuck-work sweep."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff and user.has_perm(REQUEUE))
