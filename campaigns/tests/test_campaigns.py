"""Campaigns end to end: PostgreSQL, Redis, a real Celery worker and the Evolution sandbox. Beat's due-check and
due-message release are called directly (``tick``), as beat would call them, instead of waiting for beat."""
import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns import services
from campaigns.models import Campaign, CampaignRun, CampaignStatus, Contact, RunStatus, Tag
from messaging import maintenance
from messaging import services as messaging
from messaging.models import MessageStatus, OutboundMessage, Priority
from tests_support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def people(count: int, *, start: int = 2000, **fields) -> list[dict]:
    return [{"phone": f"+55119876{start + i:05d}", "name": f"P{i}", **fields} for i in range(count)]


def tick(now=None) -> None:
    """One beat tick: start due runs, release due messages, complete finished runs."""
    services.start_due_runs(now=now)
    maintenance.dispatch_due_messages()
    services.finish_runs()


def messages_of(campaign):
    return OutboundMessage.objects.filter(source__startswith=f"campaign:{campaign.pk}:")


def sent_count(campaign) -> int:
    return messages_of(campaign).filter(status=MessageStatus.SENT).count()


def until(condition, timeout=30, what="condition"):
    return wait_for(lambda: (tick(), condition())[1], timeout=timeout, interval=0.2, what=what)


def test_a_placeholder_missing_for_some_contacts_is_reported_before_launch(api):
    recipients = people(3, date="12 May") + people(2, start=3000)
    campaign = services.create_campaign(name="Reminder", text="Hola {name}, tu cita es el {date}", recipients=recipients)

    with pytest.raises(ValidationError) as refused:
        services.launch_campaign(campaign_id=campaign.pk)

    assert refused.value.message_dict["text"] == ["{date} is missing for 2 contacts: +5511987603000, +5511987603001"]
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DRAFT
    assert not CampaignRun.objects.exists() and not OutboundMessage.objects.exists()

    answer = api.post("/campaigns", data=json.dumps({"name": "Reminder", "text": "Hola {name}, el {date}",
                                                      "recipients": recipients}), content_type="application/json")
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["text"] == ["{date} is missing for 2 contacts: +5511987603000, +5511987603001"]
    assert Campaign.objects.count() == 1  # the refused one was not kept


def test_a_broken_placeholder_is_refused_when_the_campaign_is_created(db):
    with pytest.raises(ValidationError) as refused:
        services.create_campaign(name="x", text="Hola {name", recipients=people(1))
    assert "stray brace" in refused.value.message_dict["text"][0]


def test_a_scheduled_campaign_starts_when_the_due_check_runs_at_its_time(api, celery_worker, evolution_sandbox):
    start = timezone.now() + timedelta(hours=1)
    answer = api.post("/campaigns", data=json.dumps({
        "name": "Promo", "text": "Hola {name}", "recipients": people(3), "scheduled_at": start.isoformat(),
        "rate_per_minute": 600,
    }), content_type="application/json")
    assert answer.status_code == 201, answer.content
    campaign = Campaign.objects.get(pk=answer.json()["id"])
    assert answer.json()["status"] == "scheduled"

    assert services.start_due_runs() == []  # not yet
    [run] = services.start_due_runs(now=start)
    assert (run.number, run.due_at) == (1, start)
    until(lambda: sent_count(campaign) == 3, what="three sent")

    body = api.get(f"/campaigns/{campaign.pk}").json()
    assert body["status"] == "completed"
    [progress] = body["runs"]
    assert (progress["total"], progress["sent"], progress["skipped"], progress["status"]) == (3, 3, 0, "completed")
    listed = api.get(f"/messages?campaign={campaign.pk}").json()["results"]
    assert sorted(m["message"] for m in listed) == ["Hola P0", "Hola P1", "Hola P2"]
    assert OutboundMessage.objects.filter(source=progress["messages_url"].split("source=")[1]).count() == 3
    assert set(messages_of(campaign).values_list("priority", flat=True)) == {Priority.BULK}


def test_a_recurring_campaign_makes_its_second_run_at_its_next_time_and_only_once(db, sandbox_settings):
    campaign = services.create_campaign(name="Daily", text="Hola {name}", recipients=people(2),
                                        recurrence={"every_seconds": 3600})
    assert campaign.recurrence.task == "start_due_campaign_runs"
    services.launch_campaign(campaign_id=campaign.pk)
    first_time = Campaign.objects.get(pk=campaign.pk).next_run_at

    [first] = services.start_due_runs(now=first_time)
    services.prepare_run(run_id=first.pk)
    second_time = Campaign.objects.get(pk=campaign.pk).next_run_at
    assert second_time == first_time + timedelta(hours=1)

    [second] = services.start_due_runs(now=second_time)
    assert services.start_due_runs(now=second_time) == []  # a second beat at the same moment starts nothing
    services.prepare_run(run_id=second.pk)

    assert (second.number, second.due_at) == (2, second_time)
    assert [(r.source, r.created) for r in CampaignRun.objects.filter(campaign=campaign)] == [
        (f"campaign:{campaign.pk}:run:1", 2), (f"campaign:{campaign.pk}:run:2", 2)]
    assert messages_of(campaign).count() == 4


def test_a_double_trigger_creates_each_recipients_message_once(db, sandbox_settings):
    campaign = services.create_campaign(name="Once", text="Hola {name}", recipients=people(30))
    services.launch_campaign(campaign_id=campaign.pk)
    [run] = services.start_due_runs()
    assert services.start_due_runs() == []

    services.prepare_run(run_id=run.pk)
    again = services.prepare_run(run_id=run.pk)  # the task delivered twice, or retried after a crash

    assert again.created == 30
    assert messages_of(campaign).count() == 30
    assert messages_of(campaign).values("phone").distinct().count() == 30


def test_opted_out_and_not_on_whatsapp_contacts_are_skipped_and_counted(api, celery_worker, evolution_sandbox):
    gone, _ = messaging.accept_message(phone="+5511987650000", text="hello")  # the sandbox: not on WhatsApp
    wait_for(lambda: OutboundMessage.objects.get(pk=gone.pk).status == MessageStatus.FAILED, timeout=20)
    vip = Tag.objects.create(name="vip")
    for phone in ("+5511987652001", "+5511987652002", "+5511987652003", "+5511987650000"):
        Contact.objects.create(phone=phone, name="x").tags.add(vip)
    services.opt_out(contact_id=Contact.objects.get(phone="+5511987652002").pk, source="admin")

    campaign = services.create_campaign(name="VIP", text="Hola {name}", audience="vip", rate_per_minute=600)
    services.launch_campaign(campaign_id=campaign.pk)
    until(lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED, what="completed")

    assert sorted(messages_of(campaign).values_list("phone", flat=True)) == ["+5511987652001", "+5511987652003"]
    [run] = CampaignRun.objects.filter(campaign=campaign)
    assert run.skipped == {"opted out": 1, "not on WhatsApp": 1}
    progress = api.get(f"/campaigns/{campaign.pk}").json()["runs"][0]
    assert (progress["total"], progress["sent"], progress["skipped"]) == (4, 2, 2)


def test_pause_holds_a_running_campaign_resume_finishes_it_and_cancel_stops_it(api, celery_worker, evolution_sandbox):
    campaign = services.create_campaign(name="Paced", text="Hola {name}", recipients=people(12), rate_per_minute=240)
    services.launch_campaign(campaign_id=campaign.pk)
    until(lambda: sent_count(campaign) >= 3, what="a few sent")

    assert api.post(f"/campaigns/{campaign.pk}/pause").json()["status"] == "paused"
    wait_for(lambda: not messages_of(campaign).filter(status=MessageStatus.SENDING).exists(), timeout=10)
    held_at = sent_count(campaign)
    for _ in range(10):  # 2.5 s of beat ticks: 10 more would have gone at 4 a second
        tick()
        wait_for(lambda: True, timeout=0.25)
    assert sent_count(campaign) == held_at < 12
    assert api.get(f"/campaigns/{campaign.pk}").json()["runs"][0]["held"] == 12 - held_at
    assert api.post(f"/campaigns/{campaign.pk}/pause").status_code == 409

    assert api.post(f"/campaigns/{campaign.pk}/resume").json()["status"] == "running"
    until(lambda: sent_count(campaign) >= held_at + 2, what="sending again")
    assert api.post(f"/campaigns/{campaign.pk}/cancel").json()["status"] == "cancelled"
    wait_for(lambda: not messages_of(campaign).filter(status=MessageStatus.SENDING).exists(), timeout=10)
    stopped_at = sent_count(campaign)
    for _ in range(8):
        tick()
        wait_for(lambda: True, timeout=0.25)

    assert sent_count(campaign) == stopped_at < 12
    assert messages_of(campaign).filter(status=MessageStatus.CANCELLED).count() == 12 - stopped_at
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.CANCELLED
    assert CampaignRun.objects.get(campaign=campaign).status == RunStatus.CANCELLED
    assert api.post(f"/campaigns/{campaign.pk}/resume").status_code == 409


def test_a_transactional_message_is_sent_promptly_during_a_run(celery_worker, evolution_sandbox):
    evolution_sandbox.set_latency(20)
    try:
        campaign = services.create_campaign(name="Big", text="Hola {name}", recipients=people(400), rate_per_minute=100000)
        services.launch_campaign(campaign_id=campaign.pk)
        until(lambda: sent_count(campaign) > 10, what="the run under way")

        urgent, _ = messaging.accept_message(phone="+5531987651234", text="your code is 1234")
        sent = wait_for(lambda: (m := OutboundMessage.objects.get(pk=urgent.pk)).status == MessageStatus.SENT and m,
                        timeout=10)

        assert (sent.sent_at - sent.created_at).total_seconds() < 2
        assert messages_of(campaign).exclude(status=MessageStatus.SENT).count() > 100  # the run was still going
    finally:
        evolution_sandbox.set_latency(0)


def test_quiet_hours_move_send_times_to_the_end_of_the_window(db, sandbox_settings):
    from datetime import datetime, time
    from zoneinfo import ZoneInfo

    from campaigns import pacing

    tz = ZoneInfo("America/Sao_Paulo")
    times = pacing.send_times(datetime(2030, 1, 1, 21, 59, 30, tzinfo=tz), per_minute=2, start=time(22), end=time(8), tz=tz)
    assert [next(times).astimezone(tz).strftime("%d %H:%M:%S") for _ in range(3)] == ["01 21:59:30", "02 08:00:00", "02 08:00:30"]
