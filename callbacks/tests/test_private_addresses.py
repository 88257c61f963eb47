"""A callback_url may not make the console POST into its own network (SSRF) unless CALLBACK_ALLOW_PRIVATE_NETWORKS:
a literal private address is refused when given, and a name is resolved and checked before each POST. The endpoint
is a real HTTP server on 127.0.0.1 and ``localhost`` resolves to it through the system's resolver."""
import hashlib
import hmac

import httpx
import pytest
from django.utils import timezone

from access.models import ApiClient
from callbacks import addresses, services
from callbacks.models import CallbackDelivery, DeliveryState
from callbacks.tests.test_callbacks import Endpoint, client_with_key
from messaging.models import OutboundMessage

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint():
    server = Endpoint(failures=0)
    yield server
    server.stop()


def waiting_callback(url: str) -> CallbackDelivery:
    """A sent message of an API client with its "sent" callback to ``url`` waiting: as if the URL's name resolved
    to a public address when it was given and to a private one now."""
    client = ApiClient.objects.create_client(name="shop")[0]
    message = OutboundMessage.objects.create(phone="+5511987650601", text="hi", instance="console", status="sent",
                                             sent_at=timezone.now(), callback_url=url, created_by=client.user)
    return CallbackDelivery.objects.create(message=message, status="sent", rank=1, at=timezone.now(), url=url,
                                           next_attempt_at=timezone.now())


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/status", "http://10.1.2.3/status", "https://192.168.0.10/status",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]/status", "http://[::ffff:127.0.0.1]/status",
    "http://localhost:8000/status", "http://0.0.0.0/status", "http://224.0.0.1/status",
])
def test_a_callback_url_on_a_private_address_is_refused_with_a_400_naming_it(settings, url):
    settings.CALLBACK_ALLOW_PRIVATE_NETWORKS = False
    client, _ = client_with_key()
    answer = client.post("/messages", {"phone": "+5511987650601", "message": "hi", "callback_url": url}, format="json")
    assert answer.status_code == 400, answer.json()
    assert list(answer.json()["error"]["fields"]) == ["callback_url"]
    assert "public address" in answer.json()["error"]["fields"]["callback_url"][0]
    assert not OutboundMessage.objects.exists()


def test_a_bulk_item_with_a_private_callback_url_is_refused_naming_it(settings):
    settings.CALLBACK_ALLOW_PRIVATE_NETWORKS = False
    client, _ = client_with_key()
    answer = client.post("/messages/bulk", {"messages": [
        {"phone": "+5511987650601", "message": "hi", "callback_url": "http://10.0.0.7/status"}]}, format="json")
    assert answer.status_code == 400, answer.json()
    assert answer.json()["error"]["fields"]["messages"]["0"].keys() == {"callback_url"}


def test_a_name_that_resolves_to_a_private_address_is_refused_at_delivery_and_given_up(settings, endpoint):
    settings.CALLBACK_ALLOW_PRIVATE_NETWORKS = False
    delivery = waiting_callback(endpoint.url.replace("127.0.0.1", "localhost"))

    assert services.deliver_pending(message_id=delivery.message_id) is None  # nothing left to retry

    delivery.refresh_from_db()
    attempt = delivery.attempts.get()
    expected = ("callback_url resolves to a private address (127.0.0.1); "
                "set CALLBACK_ALLOW_PRIVATE_NETWORKS=true to allow it")
    assert (delivery.state, delivery.last_error) == (DeliveryState.GAVE_UP, expected)
    assert (attempt.number, attempt.http_status, attempt.error) == (1, None, expected)
    assert attempt.finished_at is not None
    assert endpoint.calls == []


def test_with_private_networks_allowed_the_same_delivery_succeeds(settings, endpoint):
    settings.CALLBACK_ALLOW_PRIVATE_NETWORKS = True
    delivery = waiting_callback(endpoint.url.replace("127.0.0.1", "localhost"))

    assert services.deliver_pending(message_id=delivery.message_id) is None

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED
    assert delivery.attempts.get().http_status == 200
    [call] = endpoint.calls
    secret = ApiClient.objects.get().callback_secret.encode()
    expected = "sha256=" + hmac.new(secret, call["raw"], hashlib.sha256).hexdigest()
    assert call["headers"]["X-Console-Signature"] == expected


def test_a_post_goes_to_the_address_checked_with_the_urls_name_as_its_host(endpoint):
    # What makes DNS rebinding harmless: the connection is to the address that passed the check, not to a second
    # answer for the name; the endpoint still sees the name it was given.
    url = httpx.URL(endpoint.url.replace("127.0.0.1", "callbacks.example"))
    answer = addresses.post_to_address(url, "127.0.0.1", content=b"{}", headers={"Content-Type": "application/json"},
                                       timeout=5)
    assert answer.status_code == 200
    [call] = endpoint.calls
    assert call["headers"]["Host"] == f"callbacks.example:{url.port}"
    assert call["raw"] == b"{}"


def test_only_public_addresses_pass_the_check():
    assert addresses.is_public("93.184.215.14") and addresses.is_public("2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    for address in ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                    "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
                    "::ffff:127.0.0.1", "::ffff:10.0.0.1"]:
        assert not addresses.is_public(address), address
