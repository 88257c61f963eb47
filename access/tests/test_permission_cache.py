"""Permission sets come from the shared cache, and a grant or a revocation applies to the very next request."""
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from messaging.models import OutboundMessage

pytestmark = pytest.mark.django_db

MESSAGE = {"phone": "+55 11 98765-4321", "message": "Hola"}


def caller():
    user = get_user_model().objects.create_user(username="sender", password="secret-pass-123")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return user, client


def post(client):
    return client.post("/messages", data=json.dumps(MESSAGE), content_type="application/json")


def test_a_role_granted_or_taken_away_applies_to_the_next_request(sandbox_settings):
    user, client = caller()
    assert post(client).status_code == 403  # cached: no permissions

    user.groups.add(Group.objects.get(name="Operators"))
    assert post(client).status_code == 202

    user.groups.clear()
    assert post(client).status_code == 403
    assert OutboundMessage.objects.count() == 1


def test_a_permission_taken_from_a_role_applies_to_its_members_at_once(sandbox_settings):
    user, client = caller()
    operators = Group.objects.get(name="Operators")
    user.groups.add(operators)
    assert post(client).status_code == 202

    operators.permissions.remove(Permission.objects.get(codename="add_outboundmessage"))
    assert post(client).status_code == 403

    user.user_permissions.add(Permission.objects.get(codename="add_outboundmessage"))
    assert post(client).status_code == 202


def test_a_repeat_caller_is_checked_without_the_permission_queries(sandbox_settings):
    user, client = caller()
    user.groups.add(Group.objects.get(name="Operators"))
    post(client)
    with CaptureQueriesContext(connection) as queries:
        assert post(client).status_code == 202
    assert not [q for q in queries.captured_queries if "auth_permission" in q["sql"]]
