"""The retry policy: fixed by default, exponential with jitter as a setting, and a server's Retry-After honoured."""
import json
import pickle
import subprocess
import sys

import httpx
import pytest
import respx

from tests_support import ROOT, wait_for
from evolution.client import EvolutionClient, PermanentError, TemporaryError
from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage
from messaging.services import retry_delay

BASE = "http://evolution.test"
SEND = f"{BASE}/message/sendText/main"


@pytest.fixture
def policy(settings):
    settings.MESSAGING_RETRY_BACKOFF = "fixed"
    settings.MESSAGING_RETRY_DELAY_SECONDS = 5.0
    settings.MESSAGING_RETRY_MAX_DELAY_SECONDS = 300.0
    return settings


def test_the_default_waits_the_same_delay_before_every_retry(policy):
    assert [retry_delay(attempt) for attempt in (1, 2, 3)] == [5.0, 5.0, 5.0]


def test_exponential_backoff_doubles_each_time_within_half_to_one_and_a_half(policy):
    policy.MESSAGING_RETRY_BACKOFF = "exponential"
    for attempt, middle in ((1, 5), (2, 10), (3, 20), (4, 40)):
        delays = [retry_delay(attempt) for _ in range(200)]
        assert all(0.5 * middle <= delay <= 1.5 * middle for delay in delays)
        assert max(delays) - min(delays) > 0.2 * middle  # jittered, so failures together do not retry together


def test_exponential_backoff_is_capped(policy):
    policy.MESSAGING_RETRY_BACKOFF = "exponential"
    policy.MESSAGING_RETRY_MAX_DELAY_SECONDS = 60.0
    assert max(retry_delay(attempt) for attempt in range(1, 200)) == 60.0


def test_a_server_asking_for_a_longer_wait_is_honoured(policy):
    assert retry_delay(1, TemporaryError("slow down", kind="rate_limited", retry_after=42.0)) == 42.0


def test_a_server_asking_for_a_shorter_wait_still_waits_the_policy_delay(policy):
    assert retry_delay(1, TemporaryError("slow down", kind="rate_limited", retry_after=1.0)) == 5.0


def test_a_server_asking_for_a_very_long_wait_is_held_to_the_cap(policy):
    policy.MESSAGING_RETRY_MAX_DELAY_SECONDS = 120.0
    assert retry_delay(1, TemporaryError("slow down", kind="rate_limited", retry_after=3600.0)) == 120.0


# --- the client reads the wait ------------------------------------------------------------------------------------


@pytest.fixture
def client():
    with EvolutionClient(base_url=BASE, api_key="secret") as client:
        yield client


@pytest.mark.parametrize("header, expected", [({"Retry-After": "7"}, 7.0), ({"Retry-After": "2.5"}, 2.5), ({}, None),
                                               ({"Retry-After": "soon"}, None)])
def test_a_429_carries_the_wait_it_asked_for(client, header, expected):
    with respx.mock:
        respx.post(SEND).respond(429, json={"message": "Too Many Requests"}, headers=header)
        with pytest.raises(TemporaryError) as caught:
            client.send_text(instance="main", number="+5511999999999", text="hi")
    assert (caught.value.kind, caught.value.retry_after) == ("rate_limited", expected)
    # Celery pickles errors between processes: the wait survives it.
    assert pickle.loads(pickle.dumps(caught.value)).retry_after == expected


def test_a_429_with_an_http_date_waits_until_then(client):
    when = httpx.Headers({"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    with respx.mock:
        respx.post(SEND).respond(429, headers=when)
        with pytest.raises(TemporaryError) as caught:
            client.send_text(instance="main", number="+5511999999999", text="hi")
    assert caught.value.retry_after > 3600


def test_other_errors_carry_no_wait(client):
    with respx.mock:
        respx.post(SEND).respond(400, json={"status": 400, "error": "Bad Request", "response": {"message": [{"exists": False, "number": "1"}]}})
        with pytest.raises(PermanentError) as caught:
            client.send_text(instance="main", number="+5511999999999", text="hi")
    assert caught.value.retry_after is None


# --- end to end: the sandbox's rate-limited number ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_429_with_retry_after_is_retried_after_that_wait_and_sent(api, celery_worker, evolution_sandbox):
    response = api.post("/messages", data=json.dumps({"phone": "+55 11 98765-0429", "message": "Oi"}),
                        content_type="application/json")
    assert response.status_code == 202
    message = wait_for(lambda: (m := OutboundMessage.objects.get(pk=response.json()["id"])).is_final and m, timeout=15)
    assert message.status == MessageStatus.SENT
    first, second = message.attempts.order_by("number")
    assert (first.outcome, first.http_status, first.error_kind) == (AttemptOutcome.TEMPORARY_ERROR, 429, "rate_limited")
    assert second.outcome == AttemptOutcome.SENT
    # The policy delay in these tests is 0.2 s; the sandbox asked for 1 s.
    assert (second.started_at - first.finished_at).total_seconds() >= 0.95
    assert len(evolution_sandbox.sent_messages()) == 1


# --- settings refuse a policy that outlasts the sweeper ------------------------------------------------------------


@pytest.mark.parametrize("env, loads", [
    ({}, True),
    ({"MESSAGING_RETRY_BACKOFF": "exponential", "MESSAGING_RETRY_MAX_DELAY_SECONDS": "120"}, True),
    ({"MESSAGING_RETRY_BACKOFF": "linear"}, False),
    ({"MESSAGING_RETRY_MAX_DELAY_SECONDS": "301"}, False),
    ({"MESSAGING_STUCK_AFTER_SECONDS": "100", "MESSAGING_RETRY_MAX_DELAY_SECONDS": "200"}, False),
    ({"MESSAGING_RETRY_DELAY_SECONDS": "30", "MESSAGING_RETRY_MAX_DELAY_SECONDS": "10"}, False),
])
def test_settings_refuse_a_retry_policy_longer_than_the_sweepers_cutoff(env, loads):
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGING_")}
    result = subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
                               "from django.conf import settings; settings.MESSAGING_RETRY_BACKOFF"],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )
    assert (result.returncode == 0) == loads, result.stderr[-800:]
    if not loads:
        assert "ImproperlyConfigured" in result.stderr
