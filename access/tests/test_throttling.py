"""Throttles: an API caller over its rate is told to wait (429, the API's envelope, Retry-After), and an admin
login is locked out after repeated wrong passwords for that username from that address."""
import json
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from rest_framework.test import APIClient

from access.models import ApiClient

pytestmark = pytest.mark.django_db

MESSAGE = {"phone": "+55 11 98765-4321", "message": "Hola"}


@pytest.fixture
def three_a_minute(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"caller": "3/min"}}
    made = []
    yield made
    for client_row in made:  # the counters outlive the test database: leave none for the next run's same ids
        forget_counts(client_row.user)


def forget_counts(user) -> None:
    window = int(time.time() // 60)
    cache.delete_many([f"throttle:caller:{user.pk}:{w}" for w in (window - 1, window, window + 1)])


def machine(name, made) -> APIClient:
    client_row, key = ApiClient.objects.create_client(name=name)
    forget_counts(client_row.user)
    made.append(client_row)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def post(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_a_client_over_its_rate_gets_429_in_the_api_envelope_with_retry_after(sandbox_settings, three_a_minute):
    shop = machine("shop", three_a_minute)
    assert [post(shop, "/messages", MESSAGE).status_code for _ in range(3)] == [202, 202, 202]

    refused = post(shop, "/messages", MESSAGE)

    assert refused.status_code == 429
    assert refused["Content-Type"].startswith("application/json")
    body = refused.json()
    assert body["success"] is False and body["error"]["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 61


def test_reads_count_too_and_each_client_has_its_own_count(sandbox_settings, three_a_minute):
    shop, crm = machine("shop", three_a_minute), machine("crm", three_a_minute)
    for _ in range(3):
        shop.get("/messages")

    assert shop.get("/messages").status_code == 429
    assert post(crm, "/messages", MESSAGE).status_code == 202


def test_the_default_rate_lets_the_benchmarks_through():
    from django.conf import settings

    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["caller"]
    assert rate and int(rate.split("/")[0]) >= 1000


# --- admin logins (django-axes) ----------------------------------------------------------------------------------


@pytest.fixture
def staff(db):
    user = get_user_model().objects.create_user(username="olga", password="right-pass-123", is_staff=True)
    user.groups.add(Group.objects.get(name="Operators"))
    return user


def sign_in(client, password, *, username="olga", address="203.0.113.7"):
    return client.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_the_sixth_login_after_five_wrong_passwords_is_locked_out_even_when_right(client, staff):
    for _ in range(4):
        assert sign_in(client, "wrong").status_code == 200  # the form again, with its error
    assert sign_in(client, "wrong").status_code == 429  # the fifth failure starts the lockout

    locked = sign_in(client, "right-pass-123")

    assert locked.status_code == 429
    assert not signed_in(client)


def test_a_lockout_is_for_that_username_from_that_address(client, staff):
    for _ in range(5):
        sign_in(client, "wrong")

    assert sign_in(client, "right-pass-123", address="198.51.100.9").status_code == 302
    assert signed_in(client)


def test_a_successful_login_clears_the_failures(client, staff):
    for _ in range(4):
        sign_in(client, "wrong")
    assert sign_in(client, "right-pass-123").status_code == 302
    client.logout()
    for _ in range(4):
        sign_in(client, "wrong")

    assert sign_in(client, "right-pass-123").status_code == 302
    assert signed_in(client)
