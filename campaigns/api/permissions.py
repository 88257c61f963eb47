"""Who may do what with campaigns through the API: the Django permissions the admin checks (Operators hold them,
messaging/roles.py)."""
from rest_framework.permissions import SAFE_METHODS, BasePermission

VIEW = "campaigns.view_campaign"
ADD = "campaigns.add_campaign"
LAUNCH = "campaigns.launch_campaign"
CONTROL = "campaigns.control_campaign"  # pause, resume, cancel


class CampaignPermission(BasePermission):
    """GET needs to see campaigns; POST needs to create and launch them."""

    message = "You do not have permission to do this with campaigns."

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return user.has_perm(VIEW)
        return user.has_perm(ADD) and user.has_perm(LAUNCH)


class CampaignControlPermission(BasePermission):
    message = "You do not have permission to pause, resume or cancel campaigns."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(CONTROL) and user.has_perm(VIEW))


class ContactImportPermission(BasePermission):
    """GET needs to see imports; POST needs to import contacts (add and merge them)."""

    message = "You do not have permission to import contacts."

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return user.has_perm("campaigns.view_contactimport")
        return all(user.has_perm(f"campaigns.{perm}") for perm in ("add_contactimport", "add_contact", "change_contact"))
