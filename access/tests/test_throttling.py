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
from messaging.models import OutboundMessage

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


# --- messages per minute, a bulk request counting its items -------------------------------------------------------


@pytest.fixture
def ten_messages_a_minute(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"caller": "6000/min", "messages": "10/min"}}


def bulk(count: int) -> dict:
    return {"messages": [{"phone": f"+55 11 98765-{4000 + index}", "message": "Oferta"} for index in range(count)]}


def test_a_client_that_sends_quickly_is_refused_once_over_its_messages_a_minute(sandbox_settings, ten_messages_a_minute):
    # The reported abuse, at a tenth of the scale: one token sending as fast as it can, in bulk and one by one.
    shop, crm = machine("shop", []), machine("crm", [])
    assert post(shop, "/messages/bulk", bulk(6)).status_code == 202
    assert [post(shop, "/messages", MESSAGE).status_code for _ in range(4)] == [202] * 4

    one_more, two_more = post(shop, "/messages", MESSAGE), post(shop, "/messages/bulk", bulk(2))

    for refused in (one_more, two_more):
        assert refused.status_code == 429
        assert refused.json()["success"] is False and refused.json()["error"]["code"] == "throttled"
        assert 1 <= int(refused["Retry-After"]) <= 12  # the allowance comes back at one message per 6 s
    assert OutboundMessage.objects.count() == 10  # nothing over the limit was stored
    assert post(crm, "/messages", MESSAGE).status_code == 202  # each client has its own allowance


def test_a_bulk_request_larger_than_the_allowance_is_refused_whole_and_uses_none_of_it(
    sandbox_settings, ten_messages_a_minute
):
    shop = machine("shop", [])

    too_many = post(shop, "/messages/bulk", bulk(11))

    assert too_many.status_code == 400  # waiting would not help: a 429 would invite a retry that fails again
    assert "At most 10 messages per request" in too_many.json()["error"]["message"]
    assert OutboundMessage.objects.count() == 0
    assert post(shop, "/messages/bulk", bulk(10)).status_code == 202


def test_the_default_message_rate_stops_a_thousand_messages_in_26_seconds():
    from django.conf import settings
    from access.throttles import MessageRateThrottle

    burst, period = MessageRateThrottle().parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["messages"])
    assert burst + 26 * burst / period < 1000  # the most a token bucket lets through in any 26 s


@pytest.mark.parametrize("value,rate", [(None, "600/min"), ("", "600/min"), ("100/min", "100/min"), ("off", None)])
def test_api_message_rate_is_600_a_minute_unless_set_and_off_switches_it_off(value, rate):
    # Empty is the default (compose passes every variable, set or not); only "off" removes the limit.
    import os
    import subprocess
    import sys

    env = {key: val for key, val in os.environ.items() if key != "API_MESSAGE_RATE"}
    if value is not None:
        env["API_MESSAGE_RATE"] = value
    code = "from config import settings; print(settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['messages'])"
    read = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert read.stdout.strip() == str(rate), read.stderr[-2000:]


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
