"""/metrics: the numbers move as messages are accepted, sent and failed, whoever records them."""
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from config.celery import MAINTENANCE_QUEUE, TRANSACTIONAL_QUEUE, app
from messaging import metrics, services, tasks
from messaging.models import MessageStatus

BASE_DIR = Path(__file__).resolve().parents[2]
TOKEN = "scrape-token-for-tests"


@pytest.fixture
def metrics_settings(sandbox_settings):
    settings = sandbox_settings  # the Evolution sandbox, instance "console"
    settings.METRICS_KEY_PREFIX = f"test:metrics:{uuid.uuid4().hex}"
    settings.METRICS_TOKEN = TOKEN
    store, key = settings.METRICS_REDIS_URL, f"{settings.METRICS_KEY_PREFIX}:counters"
    yield settings
    redis.Redis.from_url(store).delete(key)


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_sending_a_message_moves_accepted_sent_attempts_and_latency(client, metrics_settings):
    before = scrape(client)

    message, _ = services.accept_message(phone="+5511987654321", text="Hola")
    after_accept = scrape(client)
    outcome = services.send_message(message_id=message.pk, task_id="task-1")
    after_send = scrape(client)

    assert outcome.status == MessageStatus.SENT
    accepted = "console_messages_accepted_total"
    assert value(after_accept, accepted, instance="console") == value(before, accepted, instance="console") + 1
    assert value(after_send, "console_messages_sent_total", instance="console") == 1
    assert value(after_send, "console_send_attempts_total", instance="console", outcome="sent") == 1
    assert value(after_send, "console_send_duration_seconds_count", instance="console") == 1
    assert value(after_send, "console_send_duration_seconds_bucket", instance="console", le="+Inf") == 1
    assert value(after_send, "console_send_duration_seconds_sum", instance="console") > 0
    assert value(after_send, "console_metrics_store_up") == 1


@pytest.mark.django_db
def test_a_number_not_on_whatsapp_counts_as_failed_with_its_reason(client, metrics_settings):
    # The sandbox answers ...0000 with Evolution's 400 "exists": false.
    message, _ = services.accept_message(phone="+5511987650000", text="Hola")
    services.send_message(message_id=message.pk)

    samples = scrape(client)
    assert value(samples, "console_messages_failed_total", instance="console", reason="not_on_whatsapp") == 1
    assert value(samples, "console_send_attempts_total", instance="console", outcome="permanent_error") == 1
    assert value(samples, "console_messages_sent_total", instance="console") == 0


@pytest.mark.django_db
def test_a_temporary_error_counts_an_attempt_but_no_final_state(client, metrics_settings):
    message, _ = services.accept_message(phone="+5511987650500", text="Hola")  # the sandbox's always-500 number
    services.send_message(message_id=message.pk)

    samples = scrape(client)
    assert value(samples, "console_send_attempts_total", instance="console", outcome="temporary_error") == 1
    assert value(samples, "console_messages_failed_total", instance="console", reason="server_error") == 0
    assert value(samples, "console_messages_in_status", status="retrying") >= 1


@pytest.mark.django_db
def test_messages_accepted_in_bulk_are_counted(client, metrics_settings):
    services.accept_messages(items=[{"phone": "+5511987654321", "text": f"Hola {i}"} for i in range(3)] + [{"phone": "1", "text": "x"}])
    assert value(scrape(client), "console_messages_accepted_total", instance="console") == 3


@pytest.mark.django_db
def test_a_batch_of_sends_is_counted_as_its_sends_are(client, metrics_settings):
    # One send_bulk_messages run, as a worker runs it: 3 sent and one number not on WhatsApp.
    results = services.accept_messages(items=[{"phone": f"+551198765{1000 + i}", "text": f"Hola {i}"} for i in range(3)]
                                       + [{"phone": "+5511987650000", "text": "Hola"}])
    tasks.send_bulk_messages.apply(args=([result.message.pk for result in results],))

    samples = scrape(client)
    assert value(samples, "console_messages_sent_total", instance="console") == 3
    assert value(samples, "console_send_attempts_total", instance="console", outcome="sent") == 3
    assert value(samples, "console_send_attempts_total", instance="console", outcome="permanent_error") == 1
    assert value(samples, "console_messages_failed_total", instance="console", reason="not_on_whatsapp") == 1
    assert value(samples, "console_send_duration_seconds_count", instance="console") == 4
    assert value(samples, "console_send_duration_seconds_sum", instance="console") > 0


@pytest.mark.django_db
def test_counts_held_for_a_batch_are_written_when_it_ends_even_by_an_error(client, metrics_settings):
    with pytest.raises(RuntimeError):
        with metrics.batched():
            metrics.message_accepted(instance="console", count=2)
            metrics.message_accepted(instance="console", count=1)
            assert value(scrape(client), "console_messages_accepted_total", instance="console") == 0  # held
            raise RuntimeError("the database went away mid-batch")
    assert value(scrape(client), "console_messages_accepted_total", instance="console") == 3


def test_counters_from_another_process_add_up_in_one_scrape(client, metrics_settings, db):
    # The point of keeping counters in Redis: a worker on another host records, any web process reports.
    env = {**os.environ, "METRICS_KEY_PREFIX": metrics_settings.METRICS_KEY_PREFIX, "DJANGO_SETTINGS_MODULE": "config.settings"}
    code = "import django; django.setup(); from messaging import metrics; metrics.message_accepted(instance='console')"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, check=True, timeout=60)

    assert value(scrape(client), "console_messages_accepted_total", instance="console") == 2


@pytest.mark.django_db(transaction=True)
def test_queue_depth_counts_tasks_waiting_in_the_broker(client, metrics_settings):
    app.control.purge()
    try:
        before = value(scrape(client), "console_queue_messages", queue=TRANSACTIONAL_QUEUE)
        for _ in range(3):
            services.accept_message(phone="+5511987654321", text="Hola")  # enqueued on commit; no worker runs
        after = value(scrape(client), "console_queue_messages", queue=TRANSACTIONAL_QUEUE)
    finally:
        app.control.purge()
    assert after == before + 3


@pytest.fixture
def channels_close_on_a_failed_declare(monkeypatch):
    """The Redis broker made to behave like RabbitMQ: a passive declare of a queue that does not exist closes the
    channel it ran on, so every later call on that channel fails too."""
    from kombu.exceptions import ChannelError
    from kombu.transport.redis import Channel

    declare = Channel.queue_declare

    def declare_like_amqp(channel, *args, **kwargs):
        if getattr(channel, "closed_by_404", False):
            raise ChannelError("channel closed by an earlier NOT_FOUND")
        try:
            return declare(channel, *args, **kwargs)
        except ChannelError:
            channel.closed_by_404 = True
            raise

    monkeypatch.setattr(Channel, "queue_declare", declare_like_amqp)


@pytest.mark.django_db(transaction=True)
def test_a_missing_queue_does_not_hide_the_depth_of_the_next_one(client, metrics_settings, channels_close_on_a_failed_declare):
    app.control.purge()  # the transactional queue is now empty, which the broker reports as "no such queue"
    try:
        with app.connection_for_write() as conn:
            waiting = conn.SimpleQueue(MAINTENANCE_QUEUE)
            waiting.put({"probe": 1})
            waiting.close()
        samples = scrape(client)
    finally:
        app.control.purge()
    assert value(samples, "console_queue_messages", queue=TRANSACTIONAL_QUEUE) == 0
    assert value(samples, "console_queue_messages", queue=MAINTENANCE_QUEUE) == 1


@pytest.mark.django_db
def test_scheduled_messages_show_in_the_in_flight_gauge(client, metrics_settings):
    from datetime import timedelta

    from django.utils import timezone

    services.accept_message(phone="+5511987654321", text="Later", scheduled_at=timezone.now() + timedelta(hours=1))
    assert value(scrape(client), "console_messages_in_status", status="scheduled") == 1


@pytest.mark.django_db
def test_a_redis_outage_loses_counts_but_never_a_message(client, metrics_settings):
    metrics_settings.METRICS_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    message, created = services.accept_message(phone="+5511987654321", text="Hola")

    assert created and message.pk
    samples = scrape(client)
    assert value(samples, "console_metrics_store_up") == 0
    assert value(samples, "console_messages_accepted_total", instance="console") == 0


@pytest.mark.django_db
def test_with_a_token_set_metrics_need_it(client, metrics_settings):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.django_db
def test_without_a_token_only_direct_loopback_requests_may_scrape(client, metrics_settings):
    metrics_settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="172.18.0.5").status_code == 403
    # Through a proxy on the same host the address is the proxy's: refuse rather than trust it.
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403


def test_metrics_survive_ssl_redirect(client, metrics_settings, db):
    metrics_settings.SECURE_SSL_REDIRECT = True
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert client.get("/messages").status_code == 301



def post_receipt(client, key_id: str, status: str) -> None:
    """A messages.update as Evolution posts it, through the receiver, and the work its task does."""
    from evolution.webhooks import SECRET_HEADER
    from inbound import services as inbound_services
    from inbound.models import WebhookEvent
    from inbound.tests.support import receipt

    answer = client.post("/webhooks/evolution/console", receipt(key_id, status), content_type="application/json",
                         headers={SECRET_HEADER: inbound_services.secret_for("console")})
    assert answer.status_code == 200, answer.content
    inbound_services.process_event(event_id=WebhookEvent.objects.get(pk=answer.json()["id"]).pk)


@pytest.mark.django_db
def test_receipts_count_each_message_delivered_once_and_read_once(client, metrics_settings):
    from django.utils import timezone

    from messaging.models import OutboundMessage

    def sent(key_id: str) -> OutboundMessage:
        return OutboundMessage.objects.create(phone="+5511987654321", text="hi", instance="console", status="sent",
                                              evolution_message_id=key_id, sent_at=timezone.now())

    sent("3EB0METRICS000000001"), sent("3EB0METRICS000000002")
    post_receipt(client, "3EB0METRICS000000001", "DELIVERY_ACK")
    post_receipt(client, "3EB0METRICS000000001", "READ")
    post_receipt(client, "3EB0METRICS000000001", "DELIVERY_ACK")  # late: changes nothing
    post_receipt(client, "3EB0METRICS000000002", "PLAYED")  # read with no delivery receipt: delivered too
    post_receipt(client, "3EB0NOTOURS000000000", "READ")  # not a message of ours

    samples = scrape(client)
    assert value(samples, "console_messages_delivered_total", instance="console") == 2
    assert value(samples, "console_messages_read_total", instance="console") == 2


def test_receipt_counts_from_another_process_add_up_in_one_scrape(client, metrics_settings, db):
    env = {**os.environ, "METRICS_KEY_PREFIX": metrics_settings.METRICS_KEY_PREFIX, "DJANGO_SETTINGS_MODULE": "config.settings"}
    code = ("import django; django.setup(); from messaging import metrics; "
            "metrics.receipt_applied(instance='console', delivered=1, read=1)")
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, check=True, timeout=60)
    metrics.receipt_applied(instance="console", delivered=1)

    samples = scrape(client)
    assert value(samples, "console_messages_delivered_total", instance="console") == 3
    assert value(samples, "console_messages_read_total", instance="console") == 2
