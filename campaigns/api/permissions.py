"""Who may do what with campaigns through the API: the Django permissions the admin checks (Operators hold them,
messaging/roles.py)."""
from rest_framework.permissions import SAFE_METHODS, BasePermission

VIEW = "campaigns.view_campaign"
ADD = "campaigns.add_campaign"
LAUNCH = "campaigns.launch_campaign"
CONTROL = "campaigns.control_campaign"  # pause, resume, cancel


class ReadWritePermission(BasePermission):
    """Every permission in ``read`` for GET and HEAD, every one in ``write`` for anything else."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        needed = self.read if request.method in SAFE_METHODS else self.write
        return all(user.has_perm(permission) for permission in needed)


class CampaignPermission(ReadWritePermission):
    """GET needs to see campaigns; POST needs to create and launch them."""

    message = "You do not have permission to do this with campaigns."
    read = (VIEW,)
    write = (ADD, LAUNCH)


class CampaignControlPermission(ReadWritePermission):
    message = "You do not have permission to pause, resume or cancel campaigns."
    read = write = (CONTROL, VIEW)


class ContactImportPermission(ReadWritePermission):
    """GET needs to see imports; POST needs to import contacts (add and merge them)."""

    message = "You do not have permission to import contacts."
    read = ("campaigns.view_contactimport",)
    write = ("campaigns.add_contactimport", "campaigns.add_contact", "campaigns.change_contact")
