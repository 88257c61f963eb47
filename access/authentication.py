"""``Authorization: Bearer wac_...`` (or ``Token wac_...``): an API client's key; ``Token ...``: a person's DRF token."""
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from access import lookups
from access.models import KEY_PREFIX, ApiClient


class ApiClientAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() not in self.keywords or not key.startswith(KEY_PREFIX):
            return None  # not a client key: a person's DRF token or session may still authenticate
        client = ApiClient.objects.authenticate(key)
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if client.is_revoked or not client.user.is_active:
            raise exceptions.AuthenticationFailed("This API key was revoked.")
        return client.user, client

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class TokenAuthentication(authentication.TokenAuthentication):
    """A person's DRF token (``Authorization: Token ...``), read with the key's statement made once (lookups.py)."""

    def authenticate_credentials(self, key):
        token = lookups.with_user(Token, "key", key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token


class ApiClientAuthenticationScheme(OpenApiAuthenticationExtension):
    """How /docs and /schema describe an API client's key."""

    target_class = ApiClientAuthentication
    name = "apiClientKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API client's key (wac_...), made in the admin."}
