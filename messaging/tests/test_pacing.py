"""Pacing per instance, priorities, and instances that pause instead of failing: real worker, Redis, sandbox."""
import json
import time
from datetime import timedelta

import pytest

from config.celery import BULK_QUEUE, TRANSACTIONAL_QUEUE, app
from evolution import instances, throttle
from evolution.client import TemporaryError, get_client
from messaging import services, tasks
from messaging.models import MessageStatus, OutboundMessage, Priority, SendAttempt
from tests_support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def all_final(ids, timeout):
    return wait_for(lambda: not OutboundMessage.objects.filter(pk__in=ids).exclude(
        status__in=(MessageStatus.SENT, MessageStatus.FAILED)).exists(), timeout=timeout, what="every message final")


@pytest.mark.parametrize("text, seconds", [("20/m", 3.0), ("1/s", 1.0), ("5/s", 0.2), ("300/h", 12.0), ("", None)])
def test_it_reads_rates_as_people_write_them(text, seconds):
    assert throttle.parse_rate(text) == seconds


@pytest.mark.parametrize("text", ["fast", "0/s", "20/d", "-1/s"])
def test_a_rate_it_cannot_read_stops_the_console_at_start(settings, text):
    from evolution.apps import check_rates

    settings.EVOLUTION_RATE_LIMIT = text
    assert [problem.id for problem in check_rates()] == ["evolution.E001"]


def test_jitter_spreads_the_paced_slots_by_up_to_its_seconds_on_top_of_the_rate(settings):
    settings.EVOLUTION_RATE_LIMIT = "10/s"  # slots 0.1 s apart
    settings.EVOLUTION_SEND_JITTER_SECONDS = 0.4
    settings.PACING_KEY_PREFIX = f"{settings.PACING_KEY_PREFIX}:jitter:{time.monotonic_ns()}"  # a pace of its own
    slots = []  # when each reserved slot starts, on this process's clock
    while len(slots) < 12:
        asked_at = time.monotonic()
        slot = throttle.reserve("console", bulk=False)
        if not slot.reserved:  # further ahead than a send may be held: let the earlier slots pass
            time.sleep(0.2)
            continue
        slots.append(asked_at + slot.wait)

    gaps = [later - earlier for earlier, later in zip(slots, slots[1:])]
    assert all(0.1 - 0.01 <= gap <= 0.5 + 0.01 for gap in gaps), gaps
    assert max(gaps) - min(gaps) > 0.1  # not one fixed gap: the pace does not look machine-made


def test_a_paced_instance_sends_at_its_rate_without_spending_attempts_and_others_are_not_slowed(
    celery_worker, evolution_sandbox, settings
):
    settings.EVOLUTION_INSTANCES = [evolution_sandbox.instance, evolution_sandbox.other_instance]
    settings.EVOLUTION_RATE_LIMITS = {evolution_sandbox.instance: "5/s", evolution_sandbox.other_instance: ""}
    paced = [services.accept_message(phone=f"+55119876{5000 + i:05d}"[:14], text=f"paced {i}")[0].pk for i in range(50)]
    other = [services.accept_message(phone="+5531987651234", text=f"other {i}", instance=evolution_sandbox.other_instance)[0].pk
             for i in range(10)]

    all_final(other, timeout=10)  # not behind the paced instance
    other_done = max(OutboundMessage.objects.filter(pk__in=other).values_list("sent_at", flat=True))
    all_final(paced, timeout=40)

    # When Evolution received each send: what WhatsApp sees, without the variance of the answer's way back.
    arrived = sorted(m["received_at"] for m in evolution_sandbox.sent_messages(evolution_sandbox.instance))
    last_sent = max(OutboundMessage.objects.filter(pk__in=paced).values_list("sent_at", flat=True))
    assert OutboundMessage.objects.filter(pk__in=paced + other, status=MessageStatus.SENT).count() == 60
    assert len(arrived) == 50
    # 50 sends at 5/s: 49 gaps of 0.2 s, each at least SPACING_SHARE of it (less a little for the way there)
    assert arrived[-1] - arrived[0] >= 49 * 0.2 * throttle.SPACING_SHARE - 0.1
    for i in range(len(arrived) - 6):  # never more than 5 (+1 for a late timer) in any second
        assert arrived[i + 6] - arrived[i] >= 1.0, [round(b - a, 3) for a, b in zip(arrived, arrived[1:])]
    assert other_done < last_sent - timedelta(seconds=5)
    assert set(OutboundMessage.objects.filter(pk__in=paced).values_list("attempt_count", flat=True)) == {1}
    assert SendAttempt.objects.filter(message_id__in=paced).count() == 50


def test_two_sends_whose_slots_came_together_still_reach_evolution_a_pace_apart(evolution_sandbox, sandbox_settings):
    # What a worker that woke one deferred task late meets: its slot and the next one's have both come.
    sandbox_settings.EVOLUTION_RATE_LIMITS = {evolution_sandbox.instance: "2/s"}
    first, _ = services.accept_message(phone="+5511987655001", text="first")
    second, _ = services.accept_message(phone="+5511987655002", text="second")
    now = time.time()

    outcomes = [services.send_message(message_id=m.pk, paced_until=now) for m in (first, second)]

    assert [o.status for o in outcomes] == [MessageStatus.SENT, MessageStatus.SENT]
    arrived = sorted(m["received_at"] for m in evolution_sandbox.sent_messages(evolution_sandbox.instance))
    assert arrived[1] - arrived[0] >= 0.5 * throttle.SPACING_SHARE - 0.01


def test_a_transactional_message_goes_ahead_of_a_bulk_backlog(api, celery_worker, evolution_sandbox, settings):
    # 2,000 messages from one caller at once are more than API_MESSAGE_RATE's default (600/min): this test is about
    # the queues, so the limit is off.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "messages": None}}
    evolution_sandbox.set_latency(20)  # a gateway that takes a moment, so the bulk backlog lasts
    try:
        for start in range(0, 2000, 1000):
            batch = [{"phone": f"+55 11 9{(i // 9000):04d}-{1000 + i % 9000:04d}", "message": f"bulk {i}"}
                     for i in range(start, start + 1000)]
            response = api.post("/messages/bulk", data=json.dumps({"messages": batch}), content_type="application/json")
            assert response.status_code == 202
        wait_for(lambda: OutboundMessage.objects.filter(status=MessageStatus.SENT).exists(), timeout=20)

        urgent, _ = services.accept_message(phone="+5531987651234", text="your code is 1234")
        sent = wait_for(lambda: (m := OutboundMessage.objects.get(pk=urgent.pk)).status == MessageStatus.SENT and m,
                        timeout=10)

        assert (sent.sent_at - sent.created_at).total_seconds() < 2
        assert OutboundMessage.objects.filter(priority=Priority.BULK).exclude(status=MessageStatus.SENT).count() > 500
    finally:
        evolution_sandbox.set_latency(0)
        app.control.purge()


def test_each_priority_is_published_to_its_own_queue(sandbox_settings):
    app.control.purge()
    single, _ = services.accept_message(phone="+5511987654321", text="single")
    (bulk,) = services.accept_messages(items=[{"phone": "+5511987654321", "text": "bulk"}])
    with app.connection_for_read() as conn:
        depth = {name: conn.default_channel.queue_declare(queue=name, passive=True).message_count
                 for name in (TRANSACTIONAL_QUEUE, BULK_QUEUE)}
    app.control.purge()
    assert (single.priority, bulk.message.priority) == (Priority.TRANSACTIONAL, Priority.BULK)
    assert depth == {TRANSACTIONAL_QUEUE: 1, BULK_QUEUE: 1}


def test_a_disconnected_instance_pauses_instead_of_failing_and_resumes_when_it_is_back(celery_worker, evolution_sandbox):
    evolution_sandbox.set_state("close")
    ids = [services.accept_message(phone="+5511987654321", text=f"while down {i}")[0].pk for i in range(5)]
    try:
        wait_for(lambda: instances.paused_reason(evolution_sandbox.instance), timeout=10, what="the pause")
        wait_for(lambda: not OutboundMessage.objects.filter(pk__in=ids, status=MessageStatus.SENDING).exists(), timeout=10)
        attempts_while_down = SendAttempt.objects.filter(message_id__in=ids).count()
        assert attempts_while_down <= 4  # the sends in flight when it went down; then nothing more
        # ...and none of those counted: the instance failed, not the message.
        assert not SendAttempt.objects.filter(message_id__in=ids, counted=True).exists()
        assert not OutboundMessage.objects.filter(pk__in=ids, status=MessageStatus.FAILED).exists()

        evolution_sandbox.set_state("open")
        assert tasks.check_paused_instances.apply().get() == [evolution_sandbox.instance]  # beat's periodic check
        all_final(ids, timeout=40)
    finally:
        instances.resume(evolution_sandbox.instance)

    assert set(OutboundMessage.objects.filter(pk__in=ids).values_list("status", flat=True)) == {MessageStatus.SENT}
    assert SendAttempt.objects.filter(message_id__in=ids).count() == 5 + attempts_while_down
    assert [m.counted_attempts for m in OutboundMessage.objects.filter(pk__in=ids)] == [1] * 5  # no retry spent
    assert len(evolution_sandbox.sent_messages()) == 5


def test_an_attempt_that_meets_a_disconnected_instance_does_not_count_and_the_message_waits(
    evolution_sandbox, sandbox_settings
):
    sandbox_settings.MESSAGING_MAX_RETRIES = 0  # any counted failure would end it failed
    message, _ = services.accept_message(phone="+5511987654321", text="while down")
    evolution_sandbox.set_state("close")
    try:
        outcome = services.send_message(message_id=message.pk)
        paused = instances.paused_reason(evolution_sandbox.instance)
    finally:
        instances.resume(evolution_sandbox.instance)
        evolution_sandbox.set_state("open")

    assert paused == "connectionState is close"
    assert (outcome.status, outcome.retry_in) == ("deferred", instances.PAUSE_RECHECK_SECONDS)
    message.refresh_from_db()
    assert (message.status, message.attempt_count, message.uncounted_attempts) == (MessageStatus.RETRYING, 1, 1)
    attempt = SendAttempt.objects.get(message=message)
    assert (attempt.outcome, attempt.counted) == ("temporary_error", False)  # the trace stays

    OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=message.updated_at)  # the re-check's time
    assert services.send_message(message_id=message.pk).status == MessageStatus.SENT  # its one counted try
    message.refresh_from_db()
    assert (message.attempt_count, message.counted_attempts) == (2, 1)
    assert len(evolution_sandbox.sent_messages()) == 1


def test_the_attempt_after_an_uncounted_one_that_may_have_gone_out_asks_evolution_first(
    evolution_sandbox, sandbox_settings
):
    # The instance dropped while a send was in flight and WhatsApp got it: exactly once still holds.
    message, _ = services.accept_message(phone="+5511987654321", text="in flight when it dropped")
    claimed = OutboundMessage.objects.claim_for_sending(message.pk)
    attempt = SendAttempt.objects.start(message=claimed, task_id="t1")
    get_client().send_text(instance=claimed.instance, number=claimed.phone, text=claimed.text)  # WhatsApp got it
    evolution_sandbox.set_state("close")
    try:
        error = TemporaryError("connection broke", kind="connection_error", maybe_sent=True)
        assert instances.pause_if_disconnected(claimed.instance)
        services._record_paused(claimed, attempt, error, still_unknown=False)
    finally:
        instances.resume(evolution_sandbox.instance)
        evolution_sandbox.set_state("open")
    OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=message.created_at)

    outcome = services.send_message(message_id=message.pk)

    assert outcome.status == MessageStatus.SENT
    assert SendAttempt.objects.get(message=message, number=2).reconciled  # found, not sent again
    assert len(evolution_sandbox.sent_messages()) == 1


def test_an_attempt_a_pause_excused_leaves_the_message_all_its_retries(evolution_sandbox, sandbox_settings):
    sandbox_settings.MESSAGING_MAX_RETRIES = 1
    message, _ = services.accept_message(phone="+5511987650500", text="down, then a 500")  # the sandbox's 500s
    evolution_sandbox.set_state("close")
    try:
        assert services.send_message(message_id=message.pk).status == "deferred"  # attempt 1, not counted
    finally:
        instances.resume(evolution_sandbox.instance)
        evolution_sandbox.set_state("open")
    OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=message.created_at)

    # Attempt 2 is the first that counts: a temporary error there is retried (1 retry allowed), not final.
    assert services.send_message(message_id=message.pk).status == MessageStatus.RETRYING
    OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=message.created_at)
    assert services.send_message(message_id=message.pk).status == MessageStatus.FAILED  # attempt 3: the retry, spent
    assert OutboundMessage.objects.get(pk=message.pk).counted_attempts == 2


def test_beats_check_renews_the_pause_while_the_instance_is_still_down(evolution_sandbox, sandbox_settings):
    from evolution.shared_state import redis_client

    key = instances._pause_key(evolution_sandbox.instance)
    evolution_sandbox.set_state("close")
    try:
        instances.pause(evolution_sandbox.instance, "connectionState is close")
        redis_client().pexpire(key, 1500)  # as if all but 1.5 s of the TTL had passed mid-outage
        assert instances.check_paused_instances() == []
        renewed = redis_client().ttl(key)
    finally:
        instances.resume(evolution_sandbox.instance)
        evolution_sandbox.set_state("open")
    assert renewed > instances.PAUSE_TTL_SECONDS - 5


def test_beats_check_renews_the_pause_while_evolution_does_not_answer(evolution_sandbox, sandbox_settings):
    from evolution.shared_state import redis_client

    key = instances._pause_key(evolution_sandbox.instance)
    instances.pause(evolution_sandbox.instance, "connectionState is unreachable (connection_error)")
    try:
        redis_client().pexpire(key, 1500)
        sandbox_settings.EVOLUTION_API_URL = "http://127.0.0.1:9"  # nothing listens there
        assert instances.check_paused_instances() == []
        renewed = redis_client().ttl(key)
    finally:
        instances.resume(evolution_sandbox.instance)
    assert renewed > instances.PAUSE_TTL_SECONDS - 5


def test_beats_check_does_not_bring_back_a_pause_that_was_lifted(evolution_sandbox, sandbox_settings):
    evolution_sandbox.set_state("close")
    try:
        assert instances.check_paused_instances() == []
        assert instances.paused_reason(evolution_sandbox.instance) is None
    finally:
        evolution_sandbox.set_state("open")


def test_health_and_the_dashboard_show_a_paused_instance(client, admin_client, sandbox_settings, evolution_sandbox):
    instances.pause(evolution_sandbox.instance, "connectionState is close")
    try:
        public = client.get("/health").json()
        dashboard = admin_client.get("/admin/messaging/outboundmessage/dashboard/").content.decode()
        staff = admin_client.get("/health").json()
    finally:
        instances.resume(evolution_sandbox.instance)

    assert public["paused_instances"] == 1
    assert staff["paused_instances"] == [evolution_sandbox.instance]
    assert "sends paused" in dashboard and "connectionState is close" in dashboard
    assert client.get("/health").json()["paused_instances"] == 0
