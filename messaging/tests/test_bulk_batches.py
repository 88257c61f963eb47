"""Bulk messages of one instance travel in batches (send_bulk_messages): one Celery task sends several, and each
message still gets its own claim, attempt rows and final state."""
import logging

import pytest

from config.celery import BULK_QUEUE, TRANSACTIONAL_QUEUE, app
from messaging import services, tasks
from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt
from tests_support import take_waiting_tasks, wait_for


def waiting_tasks(queue_name: str) -> list[tuple[str, object]]:
    """Take every task waiting in a queue: (task name, its one argument) each."""
    return [(headers["task"], argument) for headers, argument in take_waiting_tasks(queue_name)]


def bulk_items(count: int, *, instance: str = "console", ending=None) -> list[dict]:
    ending = ending or {}
    return [
        {"phone": f"+551198765{ending.get(i, f'{1000 + i}')}", "text": f"batch item {i}", "instance": instance}
        for i in range(count)
    ]


@pytest.mark.django_db(transaction=True)
def test_bulk_messages_are_published_in_batches_of_one_instance_each_message_once(sandbox_settings):
    sandbox_settings.EVOLUTION_INSTANCES = ["console", "sales"]
    sandbox_settings.MESSAGING_BULK_BATCH_SIZE = 10
    app.control.purge()

    results = services.accept_messages(items=bulk_items(21) + bulk_items(3, instance="sales"))
    assert all(result.message for result in results)
    single, _ = services.accept_message(phone="+5511987654321", text="a code")

    published = waiting_tasks(BULK_QUEUE)
    sizes = sorted(len(arg) if isinstance(arg, list) else 1 for _, arg in published)
    assert sizes == [1, 3, 10, 10]  # 21 of console as 10 + 10 + 1, the 3 of sales together
    assert {name for name, arg in published} == {"send_bulk_messages", "send_transactional_message"}
    for name, arg in published:  # a batch holds messages of one instance
        ids = arg if isinstance(arg, list) else [arg]
        assert len(set(OutboundMessage.objects.filter(pk__in=ids).values_list("instance", flat=True))) == 1
    carried = [pk for _, arg in published for pk in (arg if isinstance(arg, list) else [arg])]
    assert sorted(carried) == sorted(result.message.pk for result in results)
    assert waiting_tasks(TRANSACTIONAL_QUEUE) == [("send_transactional_message", single.pk)]


@pytest.mark.django_db(transaction=True)
def test_a_batch_size_of_one_publishes_a_task_per_message(sandbox_settings):
    sandbox_settings.MESSAGING_BULK_BATCH_SIZE = 1
    app.control.purge()

    results = services.accept_messages(items=bulk_items(4))

    assert sorted(waiting_tasks(BULK_QUEUE)) == sorted(
        ("send_transactional_message", result.message.pk) for result in results
    )


def test_a_batch_sends_each_message_once_with_its_own_attempts_and_outcome(celery_worker, evolution_sandbox):
    # 0502 fails twice then goes (its retries travel as its own tasks), 0000 is not on WhatsApp: neither holds
    # back or repeats the others of its batch.
    items = bulk_items(10, ending={3: "0502", 7: "0000"})
    results = services.accept_messages(items=items)
    ids = [result.message.pk for result in results]

    wait_for(lambda: OutboundMessage.objects.filter(pk__in=ids, status__in=(MessageStatus.SENT, MessageStatus.FAILED)).count() == 10,
             timeout=30, what="the batch's messages to finish")

    status = dict(OutboundMessage.objects.filter(pk__in=ids).values_list("pk", "status"))
    attempts = {pk: list(SendAttempt.objects.filter(message_id=pk).order_by("number").values_list("outcome", flat=True))
                for pk in ids}
    assert status[ids[7]] == MessageStatus.FAILED and attempts[ids[7]] == [AttemptOutcome.PERMANENT_ERROR]
    assert status[ids[3]] == MessageStatus.SENT
    assert attempts[ids[3]] == [AttemptOutcome.TEMPORARY_ERROR] * 2 + [AttemptOutcome.SENT]
    others = [pk for pk in ids if pk not in (ids[3], ids[7])]
    assert all(status[pk] == MessageStatus.SENT and attempts[pk] == [AttemptOutcome.SENT] for pk in others)
    received = [message["number"] for message in evolution_sandbox.sent_messages()]
    assert sorted(received) == sorted(item["phone"].lstrip("+") for i, item in enumerate(items) if i != 7)


def test_a_batch_that_runs_past_its_time_budget_hands_the_rest_back_to_the_queue(
    celery_worker, evolution_sandbox, monkeypatch, caplog
):
    monkeypatch.setattr(tasks, "BATCH_TIME_BUDGET_SECONDS", 0.2)
    evolution_sandbox.set_latency(100)  # ten sends take about a second: the batch yields twice or more
    results = services.accept_messages(items=bulk_items(10))
    ids = [result.message.pk for result in results]

    with caplog.at_level(logging.INFO, logger="messaging"):
        wait_for(lambda: OutboundMessage.objects.filter(pk__in=ids, status=MessageStatus.SENT).count() == 10,
                 timeout=30, what="every message of the batch sent")

    assert any("handed back to the queue" in record.getMessage() for record in caplog.records)
    assert SendAttempt.objects.filter(message_id__in=ids).count() == 10
    assert len(evolution_sandbox.sent_messages()) == 10


def test_a_batch_whose_hand_back_cannot_reach_the_broker_leaves_the_rest_to_the_sweep_at_once(
    celery_worker, evolution_sandbox, monkeypatch
):
    from messaging import maintenance

    monkeypatch.setattr(tasks, "BATCH_TIME_BUDGET_SECONDS", 0.2)
    evolution_sandbox.set_latency(100)
    publish, failed = tasks._publish, []

    def broker_gone_for_the_hand_back(sends):
        handing_back = len(sends) == 1 and sends[0][0] is tasks.send_bulk_messages and len(sends[0][1]) < 10
        if handing_back and not failed:  # the first hand-back only, not the batch's own publish
            failed.append(sends[0][1])
            raise ConnectionError("broker unreachable")
        return publish(sends)

    monkeypatch.setattr(tasks, "_publish", broker_gone_for_the_hand_back)
    ids = [result.message.pk for result in services.accept_messages(items=bulk_items(10))]
    wait_for(lambda: failed, timeout=20, what="the hand-back")
    rest = failed[0]
    wait_for(lambda: OutboundMessage.objects.filter(pk__in=rest, publish_failed_at__isnull=False).count() == len(rest),
             timeout=10, what="the rest marked unpublished")

    assert maintenance.requeue_stuck_messages()["queued"] == len(rest)  # at once, not after the stuck cutoff
    wait_for(lambda: OutboundMessage.objects.filter(pk__in=ids, status=MessageStatus.SENT).count() == 10,
             timeout=30, what="every message of the batch sent")
    assert SendAttempt.objects.filter(message_id__in=ids).count() == 10
    assert len(evolution_sandbox.sent_messages()) == 10


def test_a_message_cancelled_while_its_batch_runs_is_skipped_and_the_rest_go(celery_worker, evolution_sandbox):
    evolution_sandbox.set_latency(300)  # the batch reaches its fifth message about a second after it starts
    results = services.accept_messages(items=bulk_items(5))
    ids = [result.message.pk for result in results]
    assert services.cancel_message(message_id=ids[4])

    wait_for(lambda: OutboundMessage.objects.filter(pk__in=ids, status=MessageStatus.SENT).count() == 4,
             timeout=30, what="the four others sent")

    assert OutboundMessage.objects.get(pk=ids[4]).status == MessageStatus.CANCELLED
    assert not SendAttempt.objects.filter(message_id=ids[4]).exists()
    assert len(evolution_sandbox.sent_messages()) == 4
