"""How a run's messages are made: each keyed by a MessageKey (run + contact) that names the message itself, so the
fan-out computes no request fingerprint and looks no key up unless storing it conflicts, and making one again,
whatever its text or send time this time, returns the first."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import services
from messaging import idempotency
from messaging import services as messaging
from messaging.models import OutboundMessage

pytestmark = pytest.mark.django_db(transaction=True)


def item(phone="+5511987654321", text="Hola", key="run-1:7", **extra):
    return {"phone": phone, "text": text, "scheduled_at": timezone.now() + timedelta(minutes=5),
            "idempotency_key": idempotency.MessageKey("campaign", key), **extra}


def test_a_message_key_made_again_returns_the_first_message_whatever_it_says_this_time(sandbox_settings):
    [first] = messaging.accept_messages(items=[item(text="Hola Ana")], source="campaign:1:run:1")
    assert first.created and first.message.request_fingerprint == ""

    # A re-prepared run renders again with another send time (and the template may have been edited).
    [again] = messaging.accept_messages(items=[item(text="Hola otra vez")], source="campaign:1:run:1")

    assert again.errors is None and not again.created and again.message.pk == first.message.pk
    assert list(OutboundMessage.objects.values_list("text", flat=True)) == ["Hola Ana"]
    # A request's key with the same scope and value is the same key: the stored message is found either way.
    assert idempotency.find_all_earlier([idempotency.Key("campaign", "run-1:7")])[idempotency.MessageKey("campaign", "run-1:7")].pk == first.message.pk


def test_message_keys_are_not_looked_up_before_storing_only_when_storing_conflicts(sandbox_settings):
    items = [item(phone=f"+55119876543{i:02d}", key=f"run-1:{i}") for i in range(3)]
    with CaptureQueriesContext(connection) as queries:
        messaging.accept_messages(items=items)
    assert not [q for q in queries.captured_queries if "idempotency_key" in q["sql"] and q["sql"].startswith("SELECT")]

    # Two keys made before and one new: the COPY conflicts, and the retry looks every key up.
    again = messaging.accept_messages(items=items[1:] + [item(phone="+5511987654399", key="run-1:99")])
    assert [result.created for result in again] == [False, False, True]
    assert OutboundMessage.objects.count() == 4


def test_request_keys_still_carry_their_fingerprint(sandbox_settings):
    key = idempotency.Key("user:1", "order-1")
    [first] = messaging.accept_messages(items=[{**item(), "idempotency_key": key}])
    [other] = messaging.accept_messages(items=[{**item(text="something else"), "idempotency_key": key}])
    assert first.message.request_fingerprint
    assert "idempotency_key" in other.errors


def test_a_run_prepared_twice_concurrently_makes_each_message_once(sandbox_settings, monkeypatch):
    people = [{"phone": f"+551198770{i:04d}", "name": f"P{i}"} for i in range(40)]
    campaign = services.create_campaign(name="Twice", text="Hola {name}", recipients=people)
    services.launch_campaign(campaign_id=campaign.pk)
    [run] = services.start_due_runs()
    services.prepare_run(run_id=run.pk)
    OutboundMessage.objects.filter(pk__in=list(OutboundMessage.objects.order_by("pk").values_list("pk", flat=True))[::2]).delete()
    assert OutboundMessage.objects.filter(source=run.source).count() == 20

    # A second preparation that did not see the first's messages (it read "made" before they were committed)
    # conflicts on the keys it shares and still makes only the missing ones.
    monkeypatch.setattr(services.selectors, "contacts_with_messages_in", lambda *, source: set())
    again = services.prepare_run(run_id=run.pk)

    assert again.created == 40 and again.skipped == {}
    assert OutboundMessage.objects.filter(source=run.source).values("phone").distinct().count() == 40
