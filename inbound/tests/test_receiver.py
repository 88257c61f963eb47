"""The receiver, with the sandbox posting real webhooks to a live console and a real worker doing the work."""
import json

import httpx
import pytest

from inbound.models import InboundMessage, InstanceWebhook, WebhookEvent
from inbound.tests.support import post, upsert
from tests_support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_registration_points_each_instance_at_the_console_with_its_own_secret(console, evolution_sandbox):
    for instance in evolution_sandbox.instances:
        hook = httpx.get(f"{evolution_sandbox.url}/webhook/find/{instance}",
                         headers={"apikey": evolution_sandbox.api_key}).json()
        assert hook["url"] == f"{console.url}/webhooks/evolution/{instance}"
        assert hook["enabled"] is True
        assert set(hook["events"]) == {"MESSAGES_UPSERT", "MESSAGES_UPDATE", "SEND_MESSAGE", "CONNECTION_UPDATE"}
        assert hook["headers"] == {"x-console-webhook-secret": InstanceWebhook.objects.get(instance=instance).secret}
    secrets = set(InstanceWebhook.objects.values_list("secret", flat=True))
    assert len(secrets) == len(evolution_sandbox.instances)


def test_a_contact_writing_through_the_sandbox_becomes_an_inbound_message(console, evolution_sandbox):
    answer = evolution_sandbox.inbound(number="5511987650101", text="Hola, ¿cuándo llega?", push_name="Ana")

    assert answer["webhook_status"] == 200
    message = wait_for(lambda: InboundMessage.objects.filter(phone="+5511987650101").first(), what="reply stored")
    assert (message.text, message.push_name, message.instance) == ("Hola, ¿cuándo llega?", "Ana", "console")
    assert message.whatsapp_id == answer["data"]["key"]["id"]
    assert message.batch_id is not None


def test_the_same_webhook_delivered_three_times_is_one_row(console):
    body = upsert("5511987650102", "only once")

    answers = [post(console.url, body) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [answer.json()["duplicate"] for answer in answers] == [False, True, True]
    wait_for(lambda: WebhookEvent.objects.filter(processed_at__isnull=False).count() == 1, what="event processed")
    assert WebhookEvent.objects.count() == 1
    assert InboundMessage.objects.filter(phone="+5511987650102").count() == 1


def test_the_same_message_in_two_different_events_is_still_one_row(console):
    first, second = upsert("5511987650103", "hi", whatsapp_id="3EB0SAMEID"), upsert("5511987650103", "hi", whatsapp_id="3EB0SAMEID")
    second["date_time"] = "2030-01-01T00:00:00.000Z"  # another delivery Evolution built anew

    post(console.url, first)
    post(console.url, second)

    wait_for(lambda: WebhookEvent.objects.filter(processed_at__isnull=False).count() == 2, what="both processed")
    assert InboundMessage.objects.filter(whatsapp_id="3EB0SAMEID").count() == 1


def test_the_per_event_paths_of_by_events_are_received(console):
    answer = post(console.url, upsert("5511987650104", "by events"), path="/messages-upsert")

    assert answer.status_code == 200
    wait_for(lambda: InboundMessage.objects.filter(phone="+5511987650104").exists(), what="reply stored")


@pytest.mark.parametrize("secret", ["", "wrong-secret"])
def test_a_missing_or_wrong_secret_is_401_and_writes_nothing(console, secret):
    answer = post(console.url, upsert("5511987650105", "let me in"), secret=secret)

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "not_authenticated"
    assert not WebhookEvent.objects.exists()


def test_the_secret_of_one_instance_does_not_open_another(console):
    answer = post(console.url, upsert("5511987650106", "x", instance="sales"),
                  instance="sales", secret=InstanceWebhook.objects.get(instance="console").secret)

    assert answer.status_code == 401
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("body, path", [
    (b"not json", ""),
    (b"[1, 2]", ""),
    (json.dumps({"event": "messages.upsert", "instance": "console"}), ""),  # no data
    (json.dumps(upsert("5511987650107", "x", instance="sales")), ""),  # another instance than the path's
    (json.dumps(upsert("5511987650107", "x")), "/messages-update"),  # another event than the path's
])
def test_a_malformed_body_is_400_and_writes_nothing(console, body, path):
    answer = post(console.url, body, path=path)

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid"
    assert not WebhookEvent.objects.exists()
    assert not InboundMessage.objects.exists()
