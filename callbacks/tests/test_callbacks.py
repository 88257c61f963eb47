"""Status callbacks end to end: a real console (live_server) registered as the sandbox's webhook, a real worker,
and the integrator's endpoint a real HTTP server on 127.0.0.1."""
import hashlib
import hmac
import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from access.models import ApiClient
from callbacks import services
from callbacks.models import CallbackAttempt, CallbackDelivery, DeliveryState
from inbound.tests.conftest import console  # noqa: F401  (the live console registered as the sandbox's webhook)
from inbound.tests.support import post, receipt
from messaging.models import OutboundMessage
from messaging.tests.conftest import api, user  # noqa: F401  (an Operators user and its token client)
from tests_support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Endpoint:
    """The integrator's server: answers ``failure_code`` to its first ``failures`` calls, then 200; keeps every
    call."""

    def __init__(self, failures: int, failure_code: int = 500):
        self.failures, self.failure_code = failures, failure_code
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with endpoint.lock:
                    code = endpoint.failure_code if len(endpoint.calls) < endpoint.failures else 200
                    endpoint.calls.append({"code": code, "raw": raw, "headers": dict(self.headers)})
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/whatsapp-status"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[dict]:
        with self.lock:
            return [call for call in self.calls if call["code"] == 200]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    server = Endpoint(failures=2)
    yield server
    server.stop()


def client_with_key(name="shop"):
    row, key = ApiClient.objects.create_client(name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, row


def test_an_endpoint_that_fails_twice_then_succeeds_gets_each_status_once_in_order_signed(console, endpoint, settings):
    settings.CALLBACK_RETRY_DELAY_SECONDS = 0.3
    client, row = client_with_key()
    answer = client.post("/messages", {"phone": "+5511987650601", "message": "your order shipped",
                                       "callback_url": endpoint.url}, format="json")
    assert answer.status_code == 202, answer.json()
    message_id = answer.json()["id"]
    assert answer.json()["callback_url"] == endpoint.url

    # The sandbox sends it and posts its delivery receipt; the customer then reads it.
    sent = wait_for(lambda: OutboundMessage.objects.filter(pk=message_id, delivered_at__isnull=False).first(),
                    timeout=30, what="sent and delivered")
    post(console.url, receipt(sent.evolution_message_id, "READ"))
    wait_for(lambda: len(endpoint.accepted()) == 3, timeout=30, what="three statuses accepted")

    bodies = [json.loads(call["raw"]) for call in endpoint.calls]
    assert [(call["code"], body["status"]) for call, body in zip(endpoint.calls, bodies)] == [
        (500, "sent"), (500, "sent"), (200, "sent"), (200, "delivered"), (200, "read")]
    assert {body["id"] for body in bodies} == {message_id}
    sent.refresh_from_db()
    assert [datetime.fromisoformat(body["at"]) for body in bodies[2:]] == [sent.sent_at, sent.delivered_at, sent.read_at]
    assert bodies[2]["phone"] == "+5511987650601" and bodies[2]["instance"] == "console"
    assert endpoint.calls[0]["raw"] == endpoint.calls[2]["raw"]  # a retry sends the same bytes
    secret = ApiClient.objects.get(pk=row.pk).callback_secret.encode()
    for call in endpoint.calls:
        expected = "sha256=" + hmac.new(secret, call["raw"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(call["headers"]["X-Console-Signature"], expected)

    wait_for(lambda: not CallbackDelivery.objects.exclude(state=DeliveryState.DELIVERED).exists(), what="all done")
    first = CallbackDelivery.objects.get(message_id=message_id, status="sent")
    attempts = list(first.attempts.order_by("number"))
    assert [(a.number, a.http_status) for a in attempts] == [(1, 500), (2, 500), (3, 200)]
    gaps = [(later.started_at - earlier.started_at).total_seconds() for earlier, later in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6  # exponential backoff: 0.3 s, then 0.6 s
    assert CallbackAttempt.objects.filter(delivery__message_id=message_id).count() == 5


def test_a_failed_send_is_told_with_its_error_and_a_4xx_answer_gives_the_callback_up_at_once(celery_worker, settings):
    settings.CALLBACK_RETRY_DELAY_SECONDS = 0.3
    gone = Endpoint(failures=10**6, failure_code=410)
    try:
        client, _ = client_with_key()
        answer = client.post("/messages", {"phone": "+5511987650000", "message": "hello",  # the sandbox: not on WhatsApp
                                           "callback_url": gone.url}, format="json")
        message_id = answer.json()["id"]
        delivery = wait_for(lambda: CallbackDelivery.objects.filter(
            message_id=message_id, state=DeliveryState.GAVE_UP).first(), timeout=30, what="given up")
        time.sleep(1.0)  # longer than the retry delay: nothing more comes
        assert len(gone.calls) == 1
    finally:
        gone.stop()
    body = json.loads(gone.calls[0]["raw"])
    assert body["status"] == "failed"
    assert body["error"] == OutboundMessage.objects.get(pk=message_id).last_error != ""
    assert (delivery.status, delivery.attempt_count) == ("failed", 1)
    assert delivery.last_error.startswith("HTTP 410")
    assert services.retry_delay(1) == 0.3 and services.retry_delay(3) == pytest.approx(1.2)


def test_callback_url_must_be_http_and_is_for_api_clients_only(db, api):
    client, _ = client_with_key()
    refused = client.post("/messages", {"phone": "+5511987650602", "message": "x", "callback_url": "ftp://example.com/x"},
                          format="json")
    assert refused.status_code == 400
    assert list(refused.json()["error"]["fields"]) == ["callback_url"]

    person = api.post("/messages", {"phone": "+5511987650602", "message": "x",
                                    "callback_url": "https://example.com/status"}, format="json")
    assert person.status_code == 400
    assert list(person.json()["error"]["fields"]) == ["callback_url"]
    assert not OutboundMessage.objects.exists()

    bulk = client.post("/messages/bulk", {"messages": [
        {"phone": "+5511987650603", "message": "a", "callback_url": "https://example.com/status"},
        {"phone": "+5511987650604", "message": "b", "callback_url": "javascript:alert(1)"},
    ]}, format="json")
    assert bulk.status_code == 202
    assert [result.get("errors") for result in bulk.json()["results"]] == [
        None, {"callback_url": ["Enter an http or https URL, e.g. https://example.com/whatsapp-status."]}]
    assert OutboundMessage.objects.get().callback_url == "https://example.com/status"
