"""The operator roles, as Django groups with permissions, so access is granted in the admin like any other.

- Support: sees messages and their attempts, and can resend one. Cannot cancel, send early or compose. Reads
  replies, each contact's conversation, batches, opt-outs and the status callbacks told to integrators.
- Operators: everything on messages: compose and schedule, send now, cancel, resend, run the stuck-work sweep.
  Replies from a conversation, edits the keyword rules, opts a contact back in, registers the webhook; campaigns.
- API clients: the machines of access/ (one user each): send and schedule, and see only their own messages,
  since they lack view_outboundmessage, and so only the replies of the phones they sent to (GET /inbound) and
  the status callbacks of their own messages (GET /callbacks). Grant a client more by adding it to another role.
The same permissions hold in the admin and the API (messaging/api/permissions.py).
Superusers have every permission. ``ensure_roles`` runs after every ``migrate`` (see MessagingConfig.ready).
"""
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

ROLES = {
    "Support": [
        "view_outboundmessage",
        "view_sendattempt",
        "resend_outboundmessage",
        # Replies (inbound/): what contacts wrote, their batches and opt-outs, and each contact's conversation.
        "inbound.view_inboundmessage",
        "inbound.view_batch",
        "inbound.view_optout",
        # Status callbacks (callbacks/): what was told to each integrator's callback_url, and each POST.
        "callbacks.view_callbackdelivery",
        "callbacks.view_callbackattempt",
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
        # Replies: read them, and answer from a contact's conversation (add_outboundmessage); the keyword rules
        # (STOP, automatic answers); deleting an opt-out opts the contact back in; the raw events, receipts and
        # each instance's webhook, and registering it.
        "inbound.view_inboundmessage",
        "inbound.view_batch",
        "inbound.view_optout",
        "inbound.delete_optout",
        *(f"inbound.{action}_keywordrule" for action in ("view", "add", "change", "delete")),
        "inbound.view_webhookevent",
        "inbound.view_receipt",
        "inbound.view_instancewebhook",
        "inbound.register_instancewebhook",
        "callbacks.view_callbackdelivery",
        "callbacks.view_callbackattempt",
        # Campaigns (campaigns/): contacts, imports, campaigns and their runs; launch, pause, resume, cancel.
        *(f"campaigns.{action}_{model}" for action in ("view", "add", "change", "delete")
          for model in ("contact", "tag", "contactimport")),
        "campaigns.view_campaign",
        "campaigns.add_campaign",
        "campaigns.change_campaign",
        "campaigns.launch_campaign",
        "campaigns.control_campaign",
        "campaigns.view_campaignrun",
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
        wanted = Q(pk__in=[])
        for codename in codenames:  # "codename" is messaging's; another app's is "app_label.codename"
            app_label, _, codename = codename.rpartition(".")
            wanted |= Q(content_type__app_label=app_label or "messaging", codename=codename)
        group.permissions.add(*Permission.objects.filter(wanted))
