"""The operator's management commands: send_test_message, requeue_stuck, purge_old_attempts (evolution_status is
tested in evolution/tests/test_instances.py)."""
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from config.celery import app
from messaging.management.commands.purge_old_attempts import parse_age
from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def empty_queues():
    app.control.purge()
    yield
    app.control.purge()


def message(status=MessageStatus.SENT, age=timedelta(0), **fields) -> OutboundMessage:
    moment = timezone.now() - age
    return OutboundMessage.objects.create(
        phone="+5511987654321", text="Hola", instance="console", status=status,
        created_at=moment, updated_at=moment,
        finished_at=moment if status in (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.CANCELLED) else None,
        **fields,
    )


def attempt(msg, number=1, age=timedelta(0)) -> SendAttempt:
    return SendAttempt.objects.create(
        message=msg, number=number, outcome=AttemptOutcome.SENT, started_at=timezone.now() - age
    )


# --- purge_old_attempts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [("90d", timedelta(days=90)), ("12h", timedelta(hours=12)), ("30", timedelta(days=30)), (" 7D ", timedelta(days=7))])
def test_it_reads_ages_in_days_or_hours(text, expected):
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["3w", "d", "-5d", "1.5d", ""])
def test_it_refuses_ages_it_cannot_read(text):
    with pytest.raises(CommandError):
        call_command("purge_old_attempts", "--older-than", text)


def test_it_deletes_only_attempts_older_than_the_cutoff_in_batches():
    old_message = message(age=timedelta(days=120))
    old = [attempt(old_message, n, age=timedelta(days=120)) for n in (1, 2, 3, 4, 5)]
    recent = attempt(message(), 1, age=timedelta(days=10))

    output = run("purge_old_attempts", "--older-than", "90d", "--batch-size", "2")

    assert "deleted 5 attempts" in output
    assert not SendAttempt.objects.filter(pk__in=[a.pk for a in old]).exists()
    assert SendAttempt.objects.filter(pk=recent.pk).exists()
    assert OutboundMessage.objects.filter(pk=old_message.pk).exists()  # messages stay unless asked


def test_with_messages_it_deletes_finished_messages_but_never_unfinished_ones():
    old_sent = message(MessageStatus.SENT, age=timedelta(days=100))
    attempt(old_sent, age=timedelta(days=100))
    old_failed = message(MessageStatus.FAILED, age=timedelta(days=100))
    old_retrying = message(MessageStatus.RETRYING, age=timedelta(days=100))
    recent_sent = message(MessageStatus.SENT, age=timedelta(days=1))

    output = run("purge_old_attempts", "--older-than", "90d", "--messages", "--batch-size", "1")

    assert "deleted 2 messages" in output
    remaining = set(OutboundMessage.objects.values_list("pk", flat=True))
    assert remaining == {old_retrying.pk, recent_sent.pk}
    assert old_sent.pk not in remaining and old_failed.pk not in remaining


def test_a_dry_run_counts_and_deletes_nothing():
    attempt(message(age=timedelta(days=100)), age=timedelta(days=100))

    output = run("purge_old_attempts", "--older-than", "90d", "--messages", "--dry-run")

    assert "would delete 1 attempts" in output and "would delete 1 messages" in output
    assert SendAttempt.objects.count() == 1 and OutboundMessage.objects.count() == 1


def test_hours_cut_closer_than_days():
    kept = attempt(message(), age=timedelta(hours=1))
    gone = attempt(message(), age=timedelta(hours=13))

    run("purge_old_attempts", "--older-than", "12h")

    assert list(SendAttempt.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not SendAttempt.objects.filter(pk=gone.pk).exists()


# --- requeue_stuck --------------------------------------------------------------------------------------------


def test_it_republishes_a_message_left_queued(settings, empty_queues):
    stuck = message(MessageStatus.QUEUED, age=timedelta(seconds=settings.MESSAGING_STUCK_AFTER_SECONDS + 60), task_id="t-stuck")
    message(MessageStatus.QUEUED, task_id="t-fresh")  # not stuck yet: left alone

    output = run("requeue_stuck")

    assert "queued 1" in output
    with app.connection_for_read() as conn:
        queue = app.amqp.queues["transactional_messages"].bind(conn.default_channel)
        published = queue.get(no_ack=True)
        assert published is not None, "nothing was published"
        assert (published.headers["id"], published.headers["argsrepr"]) == ("t-stuck", f"[{stuck.pk}]")
        assert queue.get(no_ack=True) is None  # the fresh one was left alone
    stuck.refresh_from_db()
    assert stuck.updated_at > timezone.now() - timedelta(seconds=60)  # touched, so the next sweep waits again


# --- send_test_message ----------------------------------------------------------------------------------------


def test_it_refuses_a_bad_number_naming_the_field():
    with pytest.raises(CommandError, match="phone"):
        call_command("send_test_message", "not-a-phone", "--wait", "0")


@pytest.mark.django_db(transaction=True)
def test_it_accepts_and_publishes_without_waiting(empty_queues):
    output = run("send_test_message", "+5511987654321", "--wait", "0")

    created = OutboundMessage.objects.get()
    assert f"message {created.pk} accepted to +5511987654321" in output
    assert created.status == MessageStatus.QUEUED


@pytest.mark.django_db(transaction=True)
def test_with_no_worker_it_says_the_message_is_still_queued(empty_queues):
    with pytest.raises(CommandError, match="still queued .* is a worker consuming"):
        call_command("send_test_message", "+5511987654321", "--wait", "1", stdout=StringIO())
