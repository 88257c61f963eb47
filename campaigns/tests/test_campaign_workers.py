"""Campaigns sent by two real worker processes (`celery -A config worker`, docker-compose's command) through the
sandbox: pause, resume and cancel take effect across both within seconds, and neither the campaign's pace nor the
instance's is exceeded however many workers send. Beat's ticks are called here (``tick``), as beat would call
them; the times checked are the sandbox's own (when Evolution received each send)."""
import time
import uuid

import pytest
from django.conf import settings

from campaigns import services
from campaigns.models import Campaign, CampaignRun, CampaignStatus, RunStatus
from config.celery import app
from config.tests.test_deploy_processes import Processes
from messaging import maintenance
from messaging.models import MessageStatus, OutboundMessage, SendAttempt
from messaging.tests.test_failures_end_to_end import console_env, ready, worker_command
from tests_support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_workers(tmp_path, evolution_sandbox, sandbox_settings):
    """Start two worker processes with ``**env`` on the test database and this run's Redis; both are stopped at
    the end. Returns their pids."""
    run = uuid.uuid4().hex[:8]
    running = Processes(tmp_path, {})
    app.control.purge()

    def start(**env: str) -> set[int]:
        running.env = console_env(tmp_path, evolution_sandbox, REDIS_URL=settings.REDIS_URL,
                                  PACING_KEY_PREFIX=f"{settings.PACING_KEY_PREFIX}:{run}", **env)
        names = [f"campaign-{n}-{run}@test" for n in (1, 2)]
        workers = [running.start(f"worker{n}", worker_command(name, concurrency=2)) for n, name in enumerate(names, 1)]
        for n, (worker, name) in enumerate(zip(workers, names), 1):
            wait_for(lambda: ready(running, f"worker{n}", worker, name), timeout=90, interval=0.3, what=f"{name} up")
        return {worker.pid for worker in workers}

    try:
        yield start
    finally:
        running.stop_all()
        app.control.purge()


def tick() -> None:
    services.start_due_runs()
    maintenance.dispatch_due_messages()
    services.finish_runs()


def ticking_until(condition, *, timeout: float, what: str):
    return wait_for(lambda: (tick(), condition())[1], timeout=timeout, interval=0.1, what=what)


def people(count: int, start: int) -> list[dict]:
    # The sandbox scripts phones ending 0000, 04xx and 05xx (failures, hangs): these end 1100-1599.
    return [{"phone": f"+55119877{start + i:05d}", "name": f"P{i}"} for i in range(count)]


def received(sandbox, campaign: Campaign) -> list[float]:
    """When the sandbox received each of the campaign's messages, in order."""
    phones = set(OutboundMessage.objects.filter(source__startswith=campaign.source_prefix).values_list("phone", flat=True))
    return sorted(m["received_at"] for m in sandbox.sent_messages() if "+" + m["number"].lstrip("+") in phones)


def sent(campaign: Campaign) -> int:
    return OutboundMessage.objects.filter(source__startswith=campaign.source_prefix, status=MessageStatus.SENT).count()


def senders(campaign: Campaign) -> set[int]:
    attempts = SendAttempt.objects.filter(message__source__startswith=campaign.source_prefix)
    return {int(worker.rsplit(":", 1)[1]) for worker in attempts.values_list("worker", flat=True)}


def settled(campaign: Campaign) -> bool:
    return not OutboundMessage.objects.filter(source__startswith=campaign.source_prefix, status=MessageStatus.SENDING).exists()


def quiet_for(seconds: float) -> None:
    """Beat ticking for ``seconds``: whatever the campaign could still send would go now."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tick()
        time.sleep(0.1)


def test_pause_resume_and_cancel_take_effect_across_two_workers_within_seconds(two_workers, evolution_sandbox):
    pids = two_workers()
    campaign = services.create_campaign(name="Two workers", text="Hola {name}", recipients=people(60, 1100),
                                        rate_per_minute=300)  # 5 a second
    services.launch_campaign(campaign_id=campaign.pk)
    ticking_until(lambda: sent(campaign) >= 8, timeout=60, what="the run under way")

    assert services.pause_campaign(campaign_id=campaign.pk)
    wait_for(lambda: settled(campaign), timeout=10, what="the sends in flight finishing")
    held_at = len(received(evolution_sandbox, campaign))
    quiet_for(3)  # 15 more would have gone at 5 a second
    assert len(received(evolution_sandbox, campaign)) == held_at == sent(campaign) < 60
    assert CampaignRun.objects.get(campaign=campaign).status == RunStatus.PAUSED

    assert services.resume_campaign(campaign_id=campaign.pk)
    ticking_until(lambda: sent(campaign) >= held_at + 8, timeout=60, what="sending again after resume")

    assert services.cancel_campaign(campaign_id=campaign.pk)
    wait_for(lambda: settled(campaign), timeout=10, what="the sends in flight finishing")
    stopped_at = len(received(evolution_sandbox, campaign))
    quiet_for(3)
    assert len(received(evolution_sandbox, campaign)) == stopped_at == sent(campaign) < 60

    messages = OutboundMessage.objects.filter(source__startswith=campaign.source_prefix)
    assert messages.filter(status=MessageStatus.CANCELLED).count() == 60 - stopped_at
    assert messages.values("phone").distinct().count() == 60  # each recipient's message made once
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.CANCELLED
    assert CampaignRun.objects.get(campaign=campaign).status == RunStatus.CANCELLED
    assert senders(campaign) == pids  # both workers sent the campaign, and both stopped


def test_the_instance_pace_holds_across_two_workers_during_a_faster_campaign(two_workers, evolution_sandbox):
    pids = two_workers(EVOLUTION_RATE_LIMITS=f"{evolution_sandbox.instance}=3/s")
    campaign = services.create_campaign(name="Faster than its instance", text="Hola {name}",
                                        recipients=people(18, 1300), rate_per_minute=1200)  # 20 a second asked
    services.launch_campaign(campaign_id=campaign.pk)
    ticking_until(lambda: sent(campaign) == 18, timeout=90, what="the campaign sent")

    times = received(evolution_sandbox, campaign)
    assert len(times) == 18
    assert times[-1] - times[0] >= 17 / 3 - 0.5  # 17 gaps of a third of a second
    for i in range(len(times) - 4):  # never more than 3 (+1 for timer jitter) in any second
        assert times[i + 4] - times[i] >= 1.0, times
    assert senders(campaign) == pids


def test_the_campaign_pace_holds_across_two_workers_below_the_instance_pace(two_workers, evolution_sandbox):
    pids = two_workers()  # the instance unpaced: only the campaign's own send times space its messages
    campaign = services.create_campaign(name="Two a second", text="Hola {name}", recipients=people(12, 1500),
                                        rate_per_minute=120)
    services.launch_campaign(campaign_id=campaign.pk)
    ticking_until(lambda: sent(campaign) == 12, timeout=90, what="the campaign sent")

    times = received(evolution_sandbox, campaign)
    assert len(times) == 12
    assert times[-1] - times[0] >= 11 / 2 - 0.6  # 11 gaps of half a second, less a beat tick's slack
    for i in range(len(times) - 3):  # never more than 2 (+1 for a tick releasing two at once) in any second
        assert times[i + 3] - times[i] >= 1.0, times
    assert senders(campaign) == pids
