"""Django's permission checks, answered from the shared cache instead of two joins in PostgreSQL per request.

Every API request checks its caller's permissions (messaging/api/permissions.py), and Django loads them afresh
for each request's user object: two queries joining users, groups and permissions. Here a user's permission set
is kept in the cache (Redis in production, shared by every web process) under a version number that any change
to who holds what raises (a user's groups or permissions, a group's permissions, a permission or group deleted),
so a grant or a revocation applies to the very next request: the cache is never stale, only skipped.
"""
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete

VERSION_KEY = "permissions:version"
TTL_SECONDS = 3600


class CachedPermissionsBackend(ModelBackend):
    """ModelBackend (authentication and every rule unchanged) whose ``get_all_permissions`` reads the cache."""

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            permissions, version = _cached(user_obj)
            if permissions is None:
                # Stored under the version read before the query: a change made meanwhile raised the version,
                # so this set is never taken for the newer one.
                permissions = super().get_all_permissions(user_obj)
                _store(user_obj, permissions, version)
            user_obj._perm_cache = permissions
        return user_obj._perm_cache


def _user_key(user) -> str:
    return f"permissions:user:{user.pk}"


def _cached(user) -> tuple[set[str] | None, int | None]:
    """The user's cached set if it is of the current version (None otherwise), and the current version."""
    try:
        found = cache.get_many([VERSION_KEY, _user_key(user)])  # one round trip
    except Exception:  # a cache outage costs the two queries, never a refusal
        return None, None
    version, entry = found.get(VERSION_KEY, 0), found.get(_user_key(user))
    if entry is None or entry[0] != version:
        return None, version
    return entry[1], version


def _store(user, permissions: set[str], version: int | None) -> None:
    if version is None:
        return
    try:
        cache.set(_user_key(user), (version, permissions), TTL_SECONDS)
    except Exception:
        pass


def forget_all(**kwargs) -> None:
    """Who holds what changed: every cached set is out of date from now on."""
    try:
        if not cache.add(VERSION_KEY, 1, timeout=None):
            cache.incr(VERSION_KEY)
    except Exception:  # the cache is down: it holds nothing to forget, and the sets above read around it
        pass


def connect_signals() -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model()
    for relation in (user.groups.through, user.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(forget_all, sender=relation, dispatch_uid=f"permission_cache.{relation.__name__}")
    for model in (Group, Permission):
        post_delete.connect(forget_all, sender=model, dispatch_uid=f"permission_cache.delete.{model.__name__}")
