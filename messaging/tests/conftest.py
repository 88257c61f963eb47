import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture
def user(db):
    """An operator: the role that may do everything with messages, in the admin and the API."""
    operator = get_user_model().objects.create_user(username="ops", password="secret-pass-123")
    operator.groups.add(Group.objects.get(name="Operators"))
    return operator


@pytest.fixture
def api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client
