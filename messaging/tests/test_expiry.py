"""Expiry: a message not sent by its expires_at ends `expired` and is never sent, however it waited."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests_support import wait_for
from messaging import maintenance, metrics, services
from messaging.api.views import TASK_STATE_OF_STATUS
from messaging.models import FINAL_STATUSES, MessageStatus, OutboundMessage
from messaging.tests.admin_fixtures import (  # noqa: F401  (fixtures)
    CHANGELIST,
    DASHBOARD,
    admin_client,
    admin_static_files_and_cache,
    make_message,
    page,
    superuser,
)


def post(api, body: dict, path: str = "/messages"):
    return api.post(path, data=json.dumps(body), content_type="application/json")


def in_a(seconds: float) -> str:
    return (timezone.now() + timedelta(seconds=seconds)).isoformat()


# --- with a real worker and the sandbox --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_message_that_cannot_go_out_in_its_validity_ends_expired_never_sent(api, celery_worker, evolution_sandbox, settings):
    # The instance is down: every try fails with a temporary error and is retried, until the validity runs out.
    settings.MESSAGING_MAX_RETRIES = 50
    settings.MESSAGING_RETRY_DELAY_SECONDS = 0.5
    evolution_sandbox.set_state("close")
    response = post(api, {"phone": "+55 11 98765-4321", "message": "Seu código: 481 516", "valid_for_seconds": 2})
    assert response.status_code == 202, response.content
    assert response.json()["expires_at"] is not None
    message_id = response.json()["id"]

    message = wait_for(lambda: (m := OutboundMessage.objects.get(pk=message_id)).is_final and m, timeout=15)
    assert message.status == MessageStatus.EXPIRED
    assert message.finished_at >= message.expires_at
    assert message.sent_at is None and message.evolution_message_id == ""
    evolution_sandbox.set_state("open")
    assert evolution_sandbox.sent_messages() == []
    # A send already started finishes normally; none was started after the expiry.
    assert not message.attempts.filter(started_at__gt=message.expires_at).exists()
    task = api.get(f"/tasks/{message.task_id}").json()
    assert (task["state"], task["result"]["status"]) == ("REVOKED", "expired")


@pytest.mark.django_db(transaction=True)
def test_a_message_sent_within_its_validity_is_sent(api, celery_worker, evolution_sandbox):
    response = post(api, {"phone": "+55 11 98765-4321", "message": "Seu código: 1", "valid_for_seconds": 30})
    message = wait_for(lambda: (m := OutboundMessage.objects.get(pk=response.json()["id"])).is_final and m, timeout=15)
    assert message.status == MessageStatus.SENT
    assert len(evolution_sandbox.sent_messages()) == 1


# --- the transitions -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_scheduled_message_whose_expiry_passes_before_its_send_time_is_never_released():
    # beat was down past both times: the row is due and already expired.
    past = timezone.now() - timedelta(minutes=1)
    overdue = make_message(MessageStatus.SCHEDULED, scheduled_at=past - timedelta(minutes=5), expires_at=past, task_id="")
    assert OutboundMessage.objects.release_due(now=timezone.now(), limit=100) == []
    assert maintenance.dispatch_due_messages() == 0
    overdue.refresh_from_db()
    assert overdue.status == MessageStatus.EXPIRED
    assert overdue.task_id == ""  # never given a task


@pytest.mark.django_db
def test_the_sweep_expires_waiting_messages_and_leaves_sending_and_unexpired_ones(settings):
    past = timezone.now() - timedelta(seconds=1)
    waiting = [
        make_message(MessageStatus.QUEUED, expires_at=past),
        make_message(MessageStatus.RETRYING, expires_at=past, next_attempt_at=timezone.now(), instance="sales"),
    ]
    sending = make_message(MessageStatus.SENDING, expires_at=past, attempt_count=1)
    fresh = make_message(MessageStatus.QUEUED, expires_at=timezone.now() + timedelta(minutes=5))
    forever = make_message(MessageStatus.QUEUED)
    before = _expired_counter()
    assert maintenance.expire_overdue_messages() == 2
    assert maintenance.expire_overdue_messages() == 0  # a second sweep moves and counts nothing again
    statuses = dict(OutboundMessage.objects.values_list("pk", "status"))
    assert [statuses[m.pk] for m in waiting] == [MessageStatus.EXPIRED, MessageStatus.EXPIRED]
    assert statuses[sending.pk] == MessageStatus.SENDING  # its attempt may have reached WhatsApp
    assert statuses[fresh.pk] == statuses[forever.pk] == MessageStatus.QUEUED
    after = _expired_counter()
    assert after.get("console", 0) - before.get("console", 0) == 1
    assert after.get("sales", 0) - before.get("sales", 0) == 1


@pytest.mark.django_db
def test_a_worker_does_not_claim_an_expired_message_and_marks_it_expired():
    message = make_message(MessageStatus.QUEUED, expires_at=timezone.now() - timedelta(seconds=1))
    outcome = services.send_message(message_id=message.pk, task_id="t")
    assert outcome.status == MessageStatus.EXPIRED
    message.refresh_from_db()
    assert (message.status, message.attempt_count) == (MessageStatus.EXPIRED, 0)
    assert not message.attempts.exists()


def test_expired_is_final_and_revoked():
    assert MessageStatus.EXPIRED in FINAL_STATUSES
    assert TASK_STATE_OF_STATUS[MessageStatus.EXPIRED] == "REVOKED"


def _expired_counter() -> dict[str, float]:
    stored, _ = metrics._read_counters()
    return {
        labels["instance"]: value
        for field, value in stored.items()
        for name, labels in [metrics._parse_field(field)]
        if name == "console_messages_expired"
    }


@pytest.mark.django_db
def test_metrics_show_the_expired_counter():
    make_message(MessageStatus.QUEUED, expires_at=timezone.now() - timedelta(seconds=1))
    maintenance.expire_overdue_messages()
    body = metrics.render().decode()
    assert "# TYPE console_messages_expired_total counter" in body
    assert 'console_messages_expired_total{instance="console"}' in body


# --- the API -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_stores_expires_at_and_shows_it(api):
    when = timezone.now() + timedelta(minutes=10)
    response = post(api, {"phone": "+55 11 98765-4321", "message": "Oi", "expires_at": when.isoformat()})
    assert response.status_code == 202, response.content
    message = OutboundMessage.objects.get(pk=response.json()["id"])
    assert abs((message.expires_at - when).total_seconds()) < 0.001
    assert api.get(f"/messages/{message.pk}").json()["expires_at"] is not None


@pytest.mark.django_db
def test_valid_for_seconds_counts_from_the_send_time_of_a_scheduled_message(api):
    send_at = timezone.now() + timedelta(hours=1)
    response = post(api, {"phone": "+55 11 98765-4321", "message": "Oi", "scheduled_at": send_at.isoformat(),
                          "valid_for_seconds": 600})
    assert response.status_code == 202, response.content
    message = OutboundMessage.objects.get(pk=response.json()["id"])
    assert abs((message.expires_at - send_at - timedelta(seconds=600)).total_seconds()) < 0.001


@pytest.mark.django_db
@pytest.mark.parametrize("extra, field", [
    ({"expires_at": in_a(60), "valid_for_seconds": 60}, "valid_for_seconds"),
    ({"valid_for_seconds": 0}, "valid_for_seconds"),
    ({"valid_for_seconds": -5}, "valid_for_seconds"),
    ({"valid_for_seconds": "soon"}, "valid_for_seconds"),
    ({"expires_at": in_a(-60)}, "expires_at"),
    ({"expires_at": "tomorrow"}, "expires_at"),
    ({"expires_at": in_a(600), "scheduled_at": in_a(1200)}, "expires_at"),
])
def test_the_api_refuses_a_bad_expiry_naming_the_field_and_writes_nothing(api, extra, field):
    response = post(api, {"phone": "+55 11 98765-4321", "message": "Oi", **extra})
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not OutboundMessage.objects.exists()


@pytest.mark.django_db
def test_bulk_items_take_an_expiry_and_each_bad_one_is_refused_on_its_own(api):
    response = post(api, {"messages": [
        {"phone": "+55 11 98765-4321", "message": "a", "valid_for_seconds": 30},
        {"phone": "+55 11 98765-4322", "message": "b", "expires_at": in_a(-1)},
        {"phone": "+55 11 98765-4323", "message": "c", "valid_for_seconds": True},
    ]}, path="/messages/bulk")
    assert response.status_code == 202, response.content
    results = response.json()["results"]
    assert OutboundMessage.objects.get(pk=results[0]["id"]).expires_at is not None
    assert "expires_at" in results[1]["errors"]
    assert "valid_for_seconds" in results[2]["errors"]


@pytest.mark.django_db
def test_accept_messages_takes_valid_for_seconds():
    [result] = services.accept_messages(items=[{"phone": "+5511987654321", "text": "a", "valid_for_seconds": 5}])
    assert result.message.expires_at is not None


# --- the admin ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_shows_expired_messages(admin_client):
    expired = make_message(MessageStatus.QUEUED, expires_at=timezone.now() - timedelta(seconds=1))
    maintenance.expire_overdue_messages()
    body = admin_client.get(CHANGELIST + "?status=expired").content.decode()
    assert 'class="msg-badge msg-badge--expired"' in body
    assert f'href="{page(expired.pk)}"' in body or f"{expired.pk}/change/" in body
    assert "status__exact=expired" in admin_client.get(CHANGELIST).content.decode()  # the status filter offers it
    assert "Expires at" in admin_client.get(page(expired.pk)).content.decode()
    dashboard = admin_client.get(DASHBOARD)
    assert [row["cells"][0]["count"] for row in dashboard.context["status_rows"] if row["status"] == "expired"] == [1]
    styles = admin_client.get(CHANGELIST).content.decode()
    assert ".msg-badge--expired" in styles


@pytest.mark.django_db
def test_the_compose_form_takes_a_validity(admin_client):
    response = admin_client.post(CHANGELIST + "add/", {
        "phone": "+55 11 98765-4321", "instance": "console", "text": "Seu código: 7",
        "valid_for_seconds": "120", "compose_token": "abc123",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    message = OutboundMessage.objects.get()
    assert timedelta(seconds=110) < message.expires_at - timezone.now() <= timedelta(seconds=120)


@pytest.mark.django_db
def test_the_compose_form_refuses_both_ways_of_giving_an_expiry(admin_client):
    later = timezone.localtime() + timedelta(hours=1)
    response = admin_client.post(CHANGELIST + "add/", {
        "phone": "+55 11 98765-4321", "instance": "console", "text": "x", "valid_for_seconds": "120",
        "expires_at_0": f"{later:%Y-%m-%d}", "expires_at_1": f"{later:%H:%M:%S}", "compose_token": "abc124",
    })
    assert response.status_code == 200
    assert "not both" in response.content.decode()
    assert not OutboundMessage.objects.exists()
