"""A contact's burst of messages becomes one batch once the contact is quiet; STOP opts the contact out."""
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from inbound import selectors, signals
from inbound.models import Batch, BatchStatus, InboundMessage, KeywordAction, KeywordRule, OptOut
from inbound.tests.conftest import DEBOUNCE_SECONDS
from inbound.tests.support import post, upsert
from messaging.models import MessageStatus, OutboundMessage
from tests_support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def done_batches(phone=None):
    batches = Batch.objects.filter(status=BatchStatus.DONE)
    return list(batches.filter(phone=phone) if phone else batches)


def test_a_burst_within_the_window_is_one_batch_and_a_message_after_it_a_second(console, evolution_sandbox):
    for n in range(5):
        evolution_sandbox.inbound(number="5511987650301", text=f"part {n}")

    first = wait_for(lambda: done_batches("+5511987650301"), timeout=20, what="first batch processed")
    evolution_sandbox.inbound(number="5511987650301", text="one more thing")
    wait_for(lambda: len(done_batches("+5511987650301")) == 2, timeout=20, what="second batch processed")

    first, second = sorted(done_batches("+5511987650301"), key=lambda batch: batch.pk)
    assert [m.text for m in first.messages.order_by("received_at", "id")] == [f"part {n}" for n in range(5)]
    assert first.message_count == 5
    assert [m.text for m in second.messages.all()] == ["one more thing"]
    assert (first.processed_at - first.last_message_at).total_seconds() >= DEBOUNCE_SECONDS


def test_each_new_message_restarts_the_wait(console, evolution_sandbox):
    for n in range(4):  # 4 messages 0.9 s apart: 2.7 s in all, longer than the 1.5 s window, never quiet for it
        evolution_sandbox.inbound(number="5511987650302", text=f"typing {n}")
        time.sleep(0.9)

    batch = wait_for(lambda: done_batches("+5511987650302"), timeout=20, what="batch processed")[0]
    assert batch.messages.count() == 4
    assert Batch.objects.filter(phone="+5511987650302").count() == 1


def test_200_concurrent_webhooks_from_20_contacts_make_exactly_20_batches_holding_all_200(console, settings):
    settings.INBOUND_DEBOUNCE_SECONDS = 5.0  # all 200 arrive inside one window per contact
    bodies = [upsert(f"55119876504{contact:02d}", f"message {n}") for n in range(10) for contact in range(20)]
    with httpx.Client(limits=httpx.Limits(max_connections=16)) as client, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda body: post(console.url, body, client=client, secret=secret), bodies)) \
            if (secret := _secret()) else []
    assert [answer.status_code for answer in answers] == [200] * 200

    wait_for(lambda: len(done_batches()) >= 20 and not Batch.objects.exclude(status=BatchStatus.DONE).exists(),
             timeout=60, what="every batch processed")
    batches = done_batches()
    assert len(batches) == 20
    assert sorted(batch.message_count for batch in batches) == [10] * 20
    assert InboundMessage.objects.count() == 200
    assert not InboundMessage.objects.filter(batch__isnull=True).exists()
    for batch in batches:
        texts = [m.text for m in batch.messages.order_by("received_at", "id")]
        assert sorted(texts) == sorted(f"message {n}" for n in range(10))
        assert {m.phone for m in batch.messages.all()} == {batch.phone}


def _secret():
    from inbound.models import InstanceWebhook

    return InstanceWebhook.objects.get(instance="console").secret


def test_stop_opts_the_contact_out_tells_the_listeners_and_confirms(console, evolution_sandbox):
    heard = []

    def listener(sender, **kwargs):
        heard.append(kwargs)

    signals.contact_opted_out.connect(listener)
    try:
        assert not selectors.is_opted_out("+55 11 98765-0303")
        evolution_sandbox.inbound(number="5511987650303", text="Stop!")

        wait_for(lambda: done_batches("+5511987650303"), timeout=20, what="batch processed")
        assert selectors.is_opted_out("+55 11 98765-0303")
        opt_out = OptOut.objects.get(phone="+5511987650303")
        assert (opt_out.keyword, opt_out.instance) == ("STOP", "console")
        wait_for(lambda: heard, what="signal")
        assert heard == [{"signal": signals.contact_opted_out, "phone": "+5511987650303", "instance": "console",
                          "keyword": "STOP"}]
        confirmation = OutboundMessage.objects.get(phone="+5511987650303")
        assert confirmation.source.startswith("inbound:batch:")
        wait_for(lambda: OutboundMessage.objects.get(pk=confirmation.pk).status == MessageStatus.SENT, what="sent")
        assert any(sent["text"] == confirmation.text for sent in evolution_sandbox.sent_messages())
    finally:
        signals.contact_opted_out.disconnect(listener)


def test_a_keyword_can_answer_with_a_text_and_a_sentence_is_not_a_keyword(console, evolution_sandbox):
    KeywordRule.objects.create(keyword="horario", action=KeywordAction.REPLY, reply_text="Abrimos de 9 a 18.")
    evolution_sandbox.inbound(number="5511987650304", text="Horário?")  # accents and punctuation do not matter
    evolution_sandbox.inbound(number="5511987650305", text="please stop calling me at night")

    wait_for(lambda: len(done_batches()) == 2, timeout=20, what="both batches processed")
    assert OutboundMessage.objects.get(phone="+5511987650304").text == "Abrimos de 9 a 18."
    assert not OutboundMessage.objects.filter(phone="+5511987650305").exists()
    assert not OptOut.objects.exists()
