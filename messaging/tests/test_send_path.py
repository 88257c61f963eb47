"""The send path end to end: API -> PostgreSQL -> Redis -> a real Celery worker -> the Evolution sandbox."""
import json
import logging
import os
import subprocess
import sys
import threading
from datetime import timedelta

import httpx
import pytest
from django.db import connection
from django.utils import timezone
from django_celery_results.models import TaskResult

from tests_support import ROOT, database_url_of_the_test_database, wait_for
from messaging import maintenance, services, tasks
from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt

pytestmark = pytest.mark.django_db(transaction=True)


def send_via_api(api, phone: str, text: str = "Hola Carlos") -> int:
    response = api.post("/messages", data=json.dumps({"phone": phone, "message": text}), content_type="application/json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def final(message_id: int, timeout: float = 20) -> OutboundMessage:
    return wait_for(
        lambda: (m := OutboundMessage.objects.get(pk=message_id)).is_final and m,
        timeout=timeout,
    )


def sandbox_copies(sandbox, phone_digits: str) -> list[dict]:
    sent = httpx.get(f"{sandbox.url}/_sandbox/messages").json()
    return [m for m in sent if m["number"].lstrip("+") == phone_digits]


def test_a_good_number_ends_sent_with_one_attempt(api, celery_worker, evolution_sandbox):
    message = final(send_via_api(api, "+55 11 98765-4321"))
    assert message.status == MessageStatus.SENT
    attempts = list(message.attempts.all())
    assert [(a.number, a.outcome, a.http_status) for a in attempts] == [(1, AttemptOutcome.SENT, 201)]
    assert attempts[0].evolution_message_id == message.evolution_message_id != ""
    assert message.remote_jid == "5511987654321@s.whatsapp.net"
    assert len(sandbox_copies(evolution_sandbox, "5511987654321")) == 1
    # The row is the task's result (GET /tasks/{id} reads it): Celery stores none of its own for a send.
    assert not TaskResult.objects.filter(task_id=message.task_id).exists()


def test_fail_twice_then_succeed_ends_sent_with_three_attempts(api, celery_worker, evolution_sandbox):
    message = final(send_via_api(api, "+55 11 98765-0502"))
    assert message.status == MessageStatus.SENT
    outcomes = list(message.attempts.values_list("outcome", "http_status", "error_kind"))
    assert outcomes == [
        (AttemptOutcome.TEMPORARY_ERROR, 500, "server_error"),
        (AttemptOutcome.TEMPORARY_ERROR, 500, "server_error"),
        (AttemptOutcome.SENT, 201, ""),
    ]


def test_an_always_failing_gateway_ends_failed_after_four_attempts(api, celery_worker):
    message = final(send_via_api(api, "+55 11 98765-0500"))
    assert message.status == MessageStatus.FAILED
    assert message.attempt_count == 4
    assert message.attempts.filter(outcome=AttemptOutcome.TEMPORARY_ERROR).count() == 4
    assert message.last_error_kind == "server_error"
    assert "Connection Closed" in message.last_error


def test_a_number_not_on_whatsapp_fails_at_once_with_the_reason(api, celery_worker):
    message = final(send_via_api(api, "+55 11 98765-0000"))
    assert message.status == MessageStatus.FAILED
    assert message.attempt_count == 1
    attempt = message.attempts.get()
    assert (attempt.outcome, attempt.http_status, attempt.error_kind) == (AttemptOutcome.PERMANENT_ERROR, 400, "not_on_whatsapp")
    assert message.last_error_kind == "not_on_whatsapp"
    assert "5511987650000" in message.last_error


def test_the_retry_limit_is_configurable(api, celery_worker, settings):
    settings.MESSAGING_MAX_RETRIES = 1
    message = final(send_via_api(api, "+55 11 98765-0500"))
    assert (message.status, message.attempt_count) == (MessageStatus.FAILED, 2)


def test_a_send_that_timed_out_but_went_out_is_not_sent_twice(api, celery_worker, evolution_sandbox, settings):
    settings.EVOLUTION_TIMEOUT_SECONDS = 0.5  # the sandbox holds ...0408 answers longer than this
    message = final(send_via_api(api, "+55 11 98765-0408"), timeout=30)
    assert message.status == MessageStatus.SENT
    first, second = message.attempts.all()
    assert (first.outcome, first.error_kind, first.maybe_sent) == (AttemptOutcome.TEMPORARY_ERROR, "timeout", True)
    assert (second.outcome, second.reconciled) == (AttemptOutcome.SENT, True)
    assert len(sandbox_copies(evolution_sandbox, "5511987650408")) == 1


def test_the_task_state_is_visible_over_the_api(api, celery_worker):
    message = final(send_via_api(api, "+5511987654321"))
    body = wait_for(lambda: (b := api.get(f"/tasks/{message.task_id}").json())["state"] == "SUCCESS" and b)
    assert body["result"]["status"] == "sent"
    assert body["message_id"] == message.pk


def test_a_scheduled_message_is_not_sent_before_its_time(celery_worker, evolution_sandbox):
    due = timezone.now() + timedelta(seconds=2)
    message, _ = services.accept_message(phone="+5511987654321", text="later", scheduled_at=due)
    assert maintenance.dispatch_due_messages() == 0  # a beat tick before its time
    assert OutboundMessage.objects.get(pk=message.pk).status == MessageStatus.SCHEDULED
    wait_for(lambda: timezone.now() >= due, timeout=5)
    assert maintenance.dispatch_due_messages() == 1
    assert maintenance.dispatch_due_messages() == 0  # a second tick does not enqueue it again
    sent = final(message.pk)
    assert sent.status == MessageStatus.SENT
    assert sent.sent_at >= due
    assert sent.attempt_count == 1


def test_two_workers_racing_for_one_message_send_it_once(sandbox_settings, evolution_sandbox):
    message, _ = services.accept_message(phone="+5511987654321", text="only once")
    outcomes = []

    def worker():
        outcomes.append(services.send_message(message_id=message.pk).status)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(outcomes) == ["sent", "skipped", "skipped", "skipped"]
    assert SendAttempt.objects.filter(message=message).count() == 1
    assert len(sandbox_copies(evolution_sandbox, "5511987654321")) == 1


def test_a_duplicated_task_does_not_send_twice(celery_worker, evolution_sandbox, caplog):
    caplog.set_level(logging.INFO, logger="messaging")
    message, _ = services.accept_message(phone="+5511987654321", text="dup")
    final(message.pk)
    message.task_id = "duplicate-delivery"
    tasks.publish_send(message)  # the broker redelivers it, or the sweeper re-queued it
    # Send tasks store no Celery result (the row is the result): the worker's log says the duplicate ran.
    wait_for(lambda: any(f"message={message.pk} task=duplicate-delivery skipped" in r.getMessage() for r in caplog.records),
             what="the duplicate task ran and was skipped")
    assert OutboundMessage.objects.get(pk=message.pk).attempt_count == 1
    assert len(sandbox_copies(evolution_sandbox, "5511987654321")) == 1


def test_a_worker_logs_each_send_once_in_its_own_line_and_not_celerys_per_task_lines(celery_worker, caplog):
    caplog.set_level(logging.INFO)
    message, _ = services.accept_message(phone="+5511987654321", text="one line")
    final(message.pk)

    ours = [r for r in caplog.records if r.name == "messaging" and f"message={message.pk} attempt=1" in r.getMessage()]
    celerys = [r for r in caplog.records if r.name.startswith("celery.") and message.task_id in r.getMessage()]
    assert len(ours) == 1 and "sent evolution_id=" in ours[0].getMessage()
    assert celerys == []  # "Task ...[id] received" / "succeeded": the consumer thread that feeds the pool wrote them
    assert logging.getLogger("celery.app.trace").isEnabledFor(logging.WARNING)  # a task's error still logs


def test_a_cancelled_message_is_never_sent(sandbox_settings, evolution_sandbox):
    message, _ = services.accept_message(phone="+5511987654321", text="stop")
    assert services.cancel_message(message_id=message.pk) is True
    assert services.send_message(message_id=message.pk).status == "skipped"
    assert OutboundMessage.objects.get(pk=message.pk).status == MessageStatus.CANCELLED
    assert sandbox_copies(evolution_sandbox, "5511987654321") == []


def test_a_message_whose_publish_was_lost_is_requeued_by_the_sweeper(celery_worker, settings):
    message, _ = services.accept_message(phone="+5511987654321", text="lost publish")
    final(message.pk)
    # A second message whose publish never happened (broker down at commit time).
    lost = OutboundMessage.objects.create(phone="+5511987654321", text="never published", instance=message.instance, task_id="t-lost")
    OutboundMessage.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert maintenance.requeue_stuck_messages()["queued"] == 1
    assert final(lost.pk).status == MessageStatus.SENT


def test_a_send_interrupted_by_a_dead_worker_is_checked_before_it_is_sent_again(celery_worker, evolution_sandbox):
    message, _ = services.accept_message(phone="+5511987654321", text="crash mid-send")
    final(message.pk)
    # Replay a crash: a claimed message whose worker died after Evolution sent it but before it recorded that.
    crashed = OutboundMessage.objects.create(
        phone="+5511912345678", text="crash mid-send", instance=message.instance, task_id="t-crash",
        status=MessageStatus.SENDING, attempt_count=1,
    )
    SendAttempt.objects.create(message=crashed, number=1)
    httpx.post(
        f"{evolution_sandbox.url}/message/sendText/{evolution_sandbox.instance}",
        json={"number": "5511912345678", "text": "crash mid-send"},
        headers={"apikey": evolution_sandbox.api_key},
    ).raise_for_status()
    OutboundMessage.objects.filter(pk=crashed.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    assert maintenance.requeue_stuck_messages()["interrupted"] == 1
    recovered = final(crashed.pk)
    assert recovered.status == MessageStatus.SENT
    first, second = recovered.attempts.all()
    assert (first.outcome, first.maybe_sent) == (AttemptOutcome.INTERRUPTED, True)
    assert second.reconciled is True
    assert len(sandbox_copies(evolution_sandbox, "5511912345678")) == 1


def test_a_message_accepted_while_the_broker_is_down_is_sent_once_it_is_back(celery_worker, settings):
    # Accept in a separate process whose broker is unreachable, as a web process would during a Redis outage.
    script = (
        "import django; django.setup()\n"
        "from messaging import services\n"
        "message, _ = services.accept_message(phone='+5511987654321', text='broker down')\n"
        "print(message.pk)\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url_of_the_test_database(),
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "EVOLUTION_INSTANCE_NAME": settings.EVOLUTION_INSTANCE_NAME,
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "enqueue failed" in done.stderr
    message_id = int(done.stdout.strip().splitlines()[-1])
    assert OutboundMessage.objects.get(pk=message_id).status == MessageStatus.QUEUED

    OutboundMessage.objects.filter(pk=message_id).update(updated_at=timezone.now() - timedelta(hours=1))
    assert maintenance.requeue_stuck_messages()["queued"] == 1  # beat's sweeper, once the broker is back
    message = final(message_id)
    assert (message.status, message.attempt_count) == (MessageStatus.SENT, 1)


def test_reconciling_never_mistakes_another_message_with_the_same_text_for_this_one(celery_worker, evolution_sandbox):
    # An earlier message, same text, same number, really sent.
    earlier, _ = services.accept_message(phone="+5511912345678", text="Your order shipped")
    assert final(earlier.pk).status == MessageStatus.SENT
    # This one's worker died after claiming it but before sending anything.
    crashed = OutboundMessage.objects.create(
        phone="+5511912345678", text="Your order shipped", instance=earlier.instance, task_id="t-crash-2",
        status=MessageStatus.SENDING, attempt_count=1,
    )
    SendAttempt.objects.create(message=crashed, number=1)
    OutboundMessage.objects.filter(pk=crashed.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    assert maintenance.requeue_stuck_messages()["interrupted"] == 1
    recovered = final(crashed.pk)
    assert recovered.status == MessageStatus.SENT
    assert recovered.attempts.get(number=2).reconciled is False  # it was really sent, not taken for the other
    assert recovered.evolution_message_id != OutboundMessage.objects.get(pk=earlier.pk).evolution_message_id
    assert len(sandbox_copies(evolution_sandbox, "5511912345678")) == 2


def test_the_claim_starts_the_attempt_in_the_same_statement_when_nothing_can_hold_the_instance(sandbox_settings):
    message, _ = services.accept_message(phone="+5511987654321", text="at once")
    claimed, attempt = OutboundMessage.objects.claim_and_start(
        message.pk, task_id="task-1", worker="w1@host", instances=[message.instance]
    )
    assert (claimed.pk, claimed.status, claimed.attempt_count) == (message.pk, MessageStatus.SENDING, 1)
    row = SendAttempt.objects.get(message=message)
    assert (row.pk, row.number, row.outcome, row.task_id, row.worker, row.counted, row.finished_at) == (
        attempt.pk, 1, AttemptOutcome.STARTED, "task-1", "w1@host", True, None
    )
    # A second claim (a duplicated task, another worker) gets nothing, and writes no attempt.
    assert OutboundMessage.objects.claim_and_start(
        message.pk, task_id="task-2", worker="w2@host", instances=[message.instance]
    ) == (None, None)
    assert SendAttempt.objects.filter(message=message).count() == 1


def test_a_message_whose_instance_may_be_held_is_claimed_without_an_attempt(sandbox_settings):
    # Paced or paused instances are not in the list: the send looks at its pace first, and may hand it back.
    message, _ = services.accept_message(phone="+5511987654321", text="paced")
    claimed, attempt = OutboundMessage.objects.claim_and_start(
        message.pk, task_id="task-1", worker="w1@host", instances=["another-instance"]
    )
    assert claimed.status == MessageStatus.SENDING and attempt is None
    assert not SendAttempt.objects.filter(message=message).exists()


def test_a_worker_the_sweeper_gave_up_on_cannot_overwrite_the_newer_attempt(sandbox_settings):
    message, _ = services.accept_message(phone="+5511987654321", text="slow gateway")
    assert OutboundMessage.objects.claim_for_sending(message.pk)  # worker A, attempt 1, then stuck in its call
    first = SendAttempt.objects.create(message=message, number=1)
    OutboundMessage.objects.filter(pk=message.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert maintenance.requeue_stuck_messages()["interrupted"] == 1
    assert OutboundMessage.objects.claim_for_sending(message.pk)  # worker B, attempt 2

    # A's call finally fails: its outcome must not move B's message.
    assert not OutboundMessage.objects.mark_retrying(
        message.pk, attempt=1, error_kind="timeout", error="late", next_attempt_at=timezone.now()
    )
    assert not OutboundMessage.objects.mark_sent(message.pk, attempt=first, evolution_message_id="X", remote_jid="Y")
    assert not OutboundMessage.objects.claim_for_sending(message.pk)  # so no third worker gets in
    assert OutboundMessage.objects.get(pk=message.pk).attempt_count == 2


def test_a_send_that_could_outlast_the_stuck_cutoff_is_not_started(sandbox_settings, evolution_sandbox):
    sandbox_settings.MESSAGING_STUCK_AFTER_SECONDS = 1  # less than a send may take: never start one
    message, _ = services.accept_message(phone="+5511987654321", text="too late")
    assert services.send_message(message_id=message.pk).status == MessageStatus.RETRYING
    assert message.attempts.get().error_kind == "timeout"
    assert sandbox_copies(evolution_sandbox, "5511987654321") == []


def test_a_last_try_that_timed_out_but_went_out_ends_sent_not_failed(sandbox_settings, evolution_sandbox):
    sandbox_settings.MESSAGING_MAX_RETRIES = 0
    sandbox_settings.EVOLUTION_TIMEOUT_SECONDS = 0.5  # the sandbox holds ...0408 answers longer than this
    message, _ = services.accept_message(phone="+55 11 98765-0408", text="last chance")
    assert services.send_message(message_id=message.pk).status == MessageStatus.SENT
    attempt = message.attempts.get()
    assert (attempt.outcome, attempt.reconciled) == (AttemptOutcome.SENT, True)
    assert len(sandbox_copies(evolution_sandbox, "5511987650408")) == 1


# --- a worker that really dies mid-call, and the last allowed attempt ---------------------------------------------


def test_a_worker_killed_inside_its_http_call_leaves_a_started_attempt_and_the_message_is_sent_once(
    sandbox_settings, evolution_sandbox
):
    """kill -9 a real process while its request to Evolution is in flight (the sandbox has recorded the message
    and holds the answer): the attempt row it wrote before the call is the trace the sweeper recovers from."""
    message, _ = services.accept_message(phone="+55 11 98765-0408", text="killed mid-call")
    script = (
        "import django; django.setup()\n"
        "from messaging import services\n"
        f"services.send_message(message_id={message.pk}, task_id='doomed')\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url_of_the_test_database(),
        "EVOLUTION_API_URL": evolution_sandbox.url,
        "EVOLUTION_API_KEY": evolution_sandbox.api_key,
        "EVOLUTION_INSTANCE_NAME": evolution_sandbox.instance,
    }
    worker = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT)
    try:
        wait_for(lambda: sandbox_copies(evolution_sandbox, "5511987650408"), timeout=30, what="the send reaching Evolution")
        worker.kill()  # SIGKILL: no except, no finally, nothing written after this
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()

    attempt = SendAttempt.objects.get(message=message)
    assert (attempt.number, attempt.outcome, attempt.task_id) == (1, AttemptOutcome.STARTED, "doomed")
    assert OutboundMessage.objects.get(pk=message.pk).status == MessageStatus.SENDING

    OutboundMessage.objects.filter(pk=message.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert maintenance.requeue_stuck_messages()["interrupted"] == 1
    assert services.send_message(message_id=message.pk).status == MessageStatus.SENT
    first, second = OutboundMessage.objects.get(pk=message.pk).attempts.all()
    assert (first.outcome, first.maybe_sent) == (AttemptOutcome.INTERRUPTED, True)
    assert (second.outcome, second.reconciled) == (AttemptOutcome.SENT, True)
    assert len(sandbox_copies(evolution_sandbox, "5511987650408")) == 1


def _stuck_in_attempt(number: int) -> OutboundMessage:
    message, _ = services.accept_message(phone="+5511987654321", text=f"stuck in attempt {number}")
    OutboundMessage.objects.filter(pk=message.pk).update(
        status=MessageStatus.SENDING, attempt_count=number, updated_at=timezone.now() - timedelta(hours=1)
    )
    for earlier in range(1, number):
        SendAttempt.objects.create(message=message, number=earlier, outcome=AttemptOutcome.TEMPORARY_ERROR)
    SendAttempt.objects.create(message=message, number=number)
    return message


def test_a_send_interrupted_on_its_last_allowed_attempt_fails_and_is_never_tried_again(sandbox_settings, evolution_sandbox):
    last = sandbox_settings.MESSAGING_MAX_RETRIES + 1
    message = _stuck_in_attempt(last)

    assert maintenance.requeue_stuck_messages() == {"queued": 0, "retrying": 0, "interrupted": 0, "failed": 1}

    failed = OutboundMessage.objects.get(pk=message.pk)
    assert (failed.status, failed.attempt_count, failed.last_error_kind) == (MessageStatus.FAILED, last, "interrupted")
    assert services.send_message(message_id=message.pk).status == "skipped"
    assert failed.attempts.count() == last
    assert sandbox_copies(evolution_sandbox, "5511987654321") == []


def test_a_send_interrupted_on_its_last_attempt_by_count_is_retried_when_a_pause_excused_an_earlier_one(
    sandbox_settings, evolution_sandbox
):
    message = _stuck_in_attempt(sandbox_settings.MESSAGING_MAX_RETRIES + 1)
    OutboundMessage.objects.filter(pk=message.pk).update(uncounted_attempts=1)  # attempt 1 met a paused instance
    SendAttempt.objects.filter(message=message, number=1).update(counted=False)

    assert maintenance.requeue_stuck_messages() == {"queued": 0, "retrying": 0, "interrupted": 1, "failed": 0}

    assert OutboundMessage.objects.get(pk=message.pk).status == MessageStatus.RETRYING
    assert services.send_message(message_id=message.pk).status == MessageStatus.SENT


def test_a_send_interrupted_before_its_last_attempt_gets_the_next_one(sandbox_settings, evolution_sandbox):
    message = _stuck_in_attempt(sandbox_settings.MESSAGING_MAX_RETRIES)

    assert maintenance.requeue_stuck_messages()["interrupted"] == 1

    assert OutboundMessage.objects.get(pk=message.pk).status == MessageStatus.RETRYING
    assert services.send_message(message_id=message.pk).status == MessageStatus.SENT
    assert len(sandbox_copies(evolution_sandbox, "5511987654321")) == 1


def test_a_final_failure_reads_failure_over_the_api(api, celery_worker):
    message = final(send_via_api(api, "+55 11 98765-0000"))
    body = wait_for(lambda: api.get(f"/tasks/{message.task_id}").json())
    assert (body["state"], body["result"]["status"], body["result"]["error_kind"]) == ("FAILURE", "failed", "not_on_whatsapp")
