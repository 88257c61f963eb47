"""Beat's periodic work: due schedules, retention, and the schedule that runs them."""
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app
from messaging import maintenance, tasks
from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt

pytestmark = pytest.mark.django_db


def old_message(status, days: int) -> OutboundMessage:
    moment = timezone.now() - timedelta(days=days)
    message = OutboundMessage.objects.create(
        phone="+5511987654321", text="old", instance="console", status=status, created_at=moment, updated_at=moment,
        finished_at=moment if status in (MessageStatus.SENT, MessageStatus.FAILED) else None,
    )
    SendAttempt.objects.create(message=message, number=1, outcome=AttemptOutcome.SENT, started_at=moment)
    return message


def test_beat_runs_every_periodic_task_the_worker_knows():
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert scheduled <= set(app.tasks)  # each name a task some worker runs
    assert {"dispatch_due_messages", "requeue_stuck_messages", "purge_old_records", "check_paused_instances"} <= scheduled


def test_the_daily_retention_task_deletes_what_is_older_than_the_setting_and_never_unfinished_work(settings):
    settings.MESSAGING_RETENTION_DAYS = 30
    gone = old_message(MessageStatus.SENT, days=31)
    kept = old_message(MessageStatus.FAILED, days=29)
    waiting = old_message(MessageStatus.RETRYING, days=60)  # still being worked on: its row stays

    deleted = tasks.purge_old_records.apply().get()
    assert (deleted["attempts"], deleted["messages"]) == (2, 1)  # other apps' counts follow (inbound/, callbacks/)

    assert set(OutboundMessage.objects.values_list("pk", flat=True)) == {kept.pk, waiting.pk}
    assert list(SendAttempt.objects.values_list("message_id", flat=True)) == [kept.pk]
    assert not OutboundMessage.objects.filter(pk=gone.pk).exists()


def test_retention_zero_keeps_everything(settings):
    settings.MESSAGING_RETENTION_DAYS = 0
    old_message(MessageStatus.SENT, days=3650)

    assert not any(maintenance.purge_old_records().values())
    assert (OutboundMessage.objects.count(), SendAttempt.objects.count()) == (1, 1)


def test_due_messages_are_released_together_each_with_its_own_task(sandbox_settings, django_capture_on_commit_callbacks):
    due = timezone.now() - timedelta(seconds=1)
    waiting = [
        OutboundMessage.objects.create(phone="+5511987654321", text=f"due {i}", instance="console",
                                       status=MessageStatus.SCHEDULED, scheduled_at=due)
        for i in range(3)
    ]
    OutboundMessage.objects.create(phone="+5511987654321", text="not yet", instance="console",
                                   status=MessageStatus.SCHEDULED, scheduled_at=timezone.now() + timedelta(hours=1))

    with django_capture_on_commit_callbacks() as published:
        assert maintenance.dispatch_due_messages() == 3
    assert maintenance.dispatch_due_messages() == 0  # an overlapping tick finds nothing left to release

    released = OutboundMessage.objects.filter(pk__in=[m.pk for m in waiting])
    assert {m.status for m in released} == {MessageStatus.QUEUED}
    assert len({m.task_id for m in released}) == 3 and "" not in {m.task_id for m in released}
    assert len(published) == 1  # one publish batch, after the commit
    assert OutboundMessage.objects.filter(status=MessageStatus.SCHEDULED).count() == 1
