"""Status callbacks beyond POST /messages: an operator's resend of a client's message, and a campaign's messages.
A real worker sends through the sandbox; the integrator's endpoint is a real HTTP server on 127.0.0.1."""
import hashlib
import hmac
import json

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from access.models import ApiClient
from callbacks.models import CallbackDelivery
from callbacks.tests.test_callbacks import Endpoint, client_with_key
from campaigns import services as campaigns
from campaigns.models import Campaign
from campaigns.tests.test_campaigns import messages_of, people, until
from messaging.models import MessageStatus, OutboundMessage
from messaging.tests.admin_fixtures import button, make_user
from messaging.tests.conftest import api, user  # noqa: F401  (an Operators user and its token client)
from tests_support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def endpoint():
    server = Endpoint(failures=0)
    yield server
    server.stop()


def signed_by(call: dict, client: ApiClient) -> bool:
    secret = ApiClient.objects.get(pk=client.pk).callback_secret.encode()
    expected = "sha256=" + hmac.new(secret, call["raw"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(call["headers"]["X-Console-Signature"], expected)


def told(endpoint) -> list[tuple[int, str]]:
    return [(body["id"], body["status"]) for body in (json.loads(call["raw"]) for call in endpoint.accepted())]


def test_an_operators_resend_keeps_the_callback_url_and_is_signed_with_the_clients_secret(celery_worker, endpoint, client):
    api_client, row = client_with_key()
    answer = api_client.post("/messages", {"phone": "+5511987650611", "message": "your code is 1234",
                                           "callback_url": endpoint.url}, format="json")
    original = answer.json()["id"]
    wait_for(lambda: (original, "sent") in told(endpoint), timeout=30, what="the original's sent callback")

    client.force_login(make_user("ops-person", groups=["Operators"]))
    client.post(button(original, "resend"))

    resend = OutboundMessage.objects.get(resend_of_id=original)
    assert resend.callback_url == endpoint.url
    wait_for(lambda: (resend.pk, "sent") in told(endpoint), timeout=30, what="the resend's sent callback")
    assert all(signed_by(call, row) for call in endpoint.accepted())
    assert CallbackDelivery.objects.get(message=resend, status="sent").last_error == ""


def test_a_campaign_with_a_callback_url_gives_each_of_its_messages_callbacks(celery_worker, endpoint):
    api_client, row = client_with_key("campaign-tool")
    row.user.groups.add(Group.objects.get(name="Operators"))  # granted campaigns, beyond a client's own role
    answer = api_client.post("/campaigns", {"name": "Promo", "text": "Hola {name}", "recipients": people(3, start=4100),
                                            "rate_per_minute": 600, "callback_url": endpoint.url}, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["callback_url"] == endpoint.url
    campaign = Campaign.objects.get(pk=answer.json()["id"])

    until(lambda: messages_of(campaign).filter(status=MessageStatus.SENT).count() == 3, what="three sent")
    ids = set(messages_of(campaign).values_list("pk", flat=True))
    assert set(messages_of(campaign).values_list("callback_url", flat=True)) == {endpoint.url}
    wait_for(lambda: {pk for pk, status in told(endpoint) if status == "sent"} == ids, timeout=30,
             what="a sent callback per campaign message")
    assert all(signed_by(call, row) for call in endpoint.accepted())


def test_a_campaign_callback_url_must_be_http_and_is_for_api_clients_only(db, api):
    api_client, row = client_with_key("campaign-tool")
    row.user.groups.add(Group.objects.get(name="Operators"))
    body = {"name": "Promo", "text": "Hola {name}", "recipients": people(1, start=4200), "draft": True}

    bad = api_client.post("/campaigns", {**body, "callback_url": "ftp://example.com/x"}, format="json")
    person = api.post("/campaigns", {**body, "callback_url": "https://example.com/status"}, format="json")

    assert bad.status_code == 400 and list(bad.json()["error"]["fields"]) == ["callback_url"]
    assert person.status_code == 400 and list(person.json()["error"]["fields"]) == ["callback_url"]
    assert not Campaign.objects.exists()
    plain = api.post("/campaigns", body, format="json")
    assert plain.status_code == 201 and plain.json()["callback_url"] == ""


@pytest.mark.parametrize("url", ["https://example.com/a\x00b", "https://example.com/\ud800"])
def test_a_campaign_callback_url_postgresql_cannot_store_is_refused_naming_it_by_the_api_and_the_service(db, url):
    api_client, row = client_with_key("campaign-tool")
    row.user.groups.add(Group.objects.get(name="Operators"))
    body = {"name": "Promo", "text": "Hola {name}", "recipients": people(1, start=4200), "draft": True}

    # As a client sends it: JSON escapes (\u0000, \ud800), which the test client's own encoder would refuse.
    refused = api_client.post("/campaigns", json.dumps({**body, "callback_url": url}), content_type="application/json")

    assert refused.status_code == 400 and list(refused.json()["error"]["fields"]) == ["callback_url"]
    assert not Campaign.objects.exists()
    with pytest.raises(ValidationError) as refused_in_the_shell:  # the admin and the shell call the service directly
        campaigns.create_campaign(name="Promo", text="Hola {name}", recipients=people(1, start=4200), callback_url=url)
    assert list(refused_in_the_shell.value.message_dict) == ["callback_url"]
    assert not Campaign.objects.exists()


def test_a_campaign_callback_url_at_a_private_address_is_refused_before_its_messages_are_made(db, settings):
    settings.CALLBACK_ALLOW_PRIVATE_NETWORKS = False
    api_client, row = client_with_key("campaign-tool")
    row.user.groups.add(Group.objects.get(name="Operators"))
    body = {"name": "Promo", "text": "Hola {name}", "recipients": people(1, start=4200), "draft": True}

    private = api_client.post("/campaigns", {**body, "callback_url": "http://169.254.169.254/latest"}, format="json")

    assert private.status_code == 400 and list(private.json()["error"]["fields"]) == ["callback_url"]
    assert not Campaign.objects.exists()
    public = api_client.post("/campaigns", {**body, "callback_url": "https://example.com/status"}, format="json")
    assert public.status_code == 201, public.json()
