"""API clients: the machines that call the console, each with a name, its own key and its own messages.

A client is backed by a Django user in the "API clients" role (messaging/roles.py), so the API checks the same
permissions for a machine as for a person, and what a client may do is granted in the admin like any other
role. Its key is shown once, when it is made; only a SHA-256 digest of it is stored. Its callback secret, shown
with the key, signs the status callbacks of its messages (callbacks/), so it is stored as it is.
"""
import hashlib
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import models, transaction
from django.utils import timezone
from django.utils.text import slugify

from access import lookups

KEY_PREFIX = "wac_"  # "WhatsApp console": tells a client key from a person's DRF token at a glance
CLIENT_ROLE = "API clients"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_callback_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


class ApiClientQuerySet(models.QuerySet):
    def create_client(self, *, name: str, created_by=None) -> tuple["ApiClient", str]:
        """Make a client and its user; return it with its key, which is never shown again."""
        lookup = secrets.token_hex(4)  # the key's public part: finds the row without scanning digests
        key = f"{KEY_PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=f"api-client:{slugify(name)[:100]}:{lookup}")
            user.groups.add(Group.objects.get_or_create(name=CLIENT_ROLE)[0])
            client = self.create(name=name, user=user, lookup=lookup, key_digest=digest(key), created_by=created_by)
        return client, key

    def authenticate(self, key: str) -> "ApiClient | None":
        """The active client this key belongs to, or None."""
        if not key.startswith(KEY_PREFIX) or key.count("_") < 2:
            return None
        lookup = key[len(KEY_PREFIX):].split("_", 1)[0]
        client = lookups.with_user(self.model, "lookup", lookup)
        if client is None or not secrets.compare_digest(client.key_digest, digest(key)):
            return None
        return client


class ApiClient(models.Model):
    name = models.CharField(max_length=100, unique=True, help_text="Who this is, e.g. \"shop checkout\".")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_client")
    lookup = models.CharField(max_length=16, unique=True, editable=False)
    key_digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The HMAC-SHA256 key of X-Console-Signature on this client's status callbacks (callbacks/delivery.py).
    callback_secret = models.CharField(max_length=64, default=new_callback_secret, editable=False)

    objects = ApiClientQuerySet.as_manager()

    class Meta:
        verbose_name = "API client"
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self) -> bool:
        """Stop this client's key from working, for good; its messages stay. False if it already was."""
        with transaction.atomic():
            revoked = ApiClient.objects.filter(pk=self.pk, revoked_at=None).update(revoked_at=timezone.now())
            # Inactive, so no other door (a DRF token, a session) lets the machine in either.
            get_user_model().objects.filter(pk=self.user_id).update(is_active=False)
        self.refresh_from_db(fields=["revoked_at"])
        return bool(revoked)
