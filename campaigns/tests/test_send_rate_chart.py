"""The send-rate chart on a campaign's page: each run's messages sent per bar of time, drawn as inline SVG."""
import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest

from campaigns import selectors
from campaigns.models import Campaign, CampaignRun, CampaignStatus, RunStatus
from messaging.models import MessageStatus, OutboundMessage
from messaging.tests.admin_fixtures import admin_client, superuser  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

START = datetime(2030, 1, 1, 12, 0, 3, tzinfo=dt_timezone.utc)


def sent_at(run: CampaignRun, *offsets: float, status=MessageStatus.SENT) -> None:
    for i, offset in enumerate(offsets):
        OutboundMessage.objects.create(phone=f"+55119876{51000 + i}", text="Hola", instance="console", status=status,
                                       source=run.source, sent_at=START + timedelta(seconds=offset))


@pytest.fixture
def run():
    campaign = Campaign.objects.create(name="Chart", text="Hola", instance="console", status=CampaignStatus.COMPLETED)
    run = CampaignRun.objects.create(campaign=campaign, number=1, due_at=START, status=RunStatus.COMPLETED)
    sent_at(run, 0, 0, 0, 5, 25, 26, 41)  # 12:00:03 x3, :08, :28, :29, :44
    sent_at(run, 1, 2, status=MessageStatus.FAILED)  # not sent: not counted
    other = CampaignRun.objects.create(campaign=campaign, number=2, due_at=START + timedelta(days=1))
    sent_at(other, 1)
    return run


def test_a_runs_sends_are_counted_per_ten_seconds_from_its_first_send(run):
    rate = selectors.send_rate(source=run.source)
    assert rate == {"bar_seconds": 10, "start": datetime(2030, 1, 1, 12, 0, 0, tzinfo=dt_timezone.utc),
                    "counts": [4, 0, 2, 0, 1]}


def test_a_longer_run_is_counted_per_minute(run):
    sent_at(run, 3600)  # an hour after the first: per minute gives 61 bars, more than 60: per 5 minutes
    rate = selectors.send_rate(source=run.source)
    assert rate["bar_seconds"] == 300 and rate["start"] == datetime(2030, 1, 1, 12, 0, tzinfo=dt_timezone.utc)
    assert rate["counts"] == [7] + [0] * 11 + [1]


def test_the_campaign_page_draws_each_bar_in_proportion_with_no_script(admin_client, run):
    page = admin_client.get(f"/admin/campaigns/campaign/{run.campaign_id}/change/").content.decode()

    [chart] = re.findall(r'Run 1:<br>(<svg class="send-rate".*?</svg>)', page, flags=re.S)
    bars = re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="[\d.]+" height="([\d.]+)"[^>]*><title>(.*?)</title>', chart)
    # Five bars of 10 s in at least 20 slots of 30 px, the tallest 120 px high.
    assert bars == [("0.0", "120.0", "4 sent from 12:00:00 UTC"), ("60.0", "60.0", "2 sent from 12:00:20 UTC"),
                    ("120.0", "30.0", "1 sent from 12:00:40 UTC")]
    assert "Messages sent per 10 s from 2030-01-01 12:00:00 UTC; the tallest bar is 4." in page
    assert "<script" not in chart
    assert page.count('<svg class="send-rate"') == 2 and page.index("Run 2:<br><svg") < page.index("Run 1:<br><svg")  # latest first


def test_a_run_with_nothing_sent_has_no_chart(admin_client):
    campaign = Campaign.objects.create(name="Quiet", text="Hola", instance="console", status=CampaignStatus.RUNNING)
    CampaignRun.objects.create(campaign=campaign, number=1, due_at=START)
    page = admin_client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "Nothing sent yet." in page and "send-rate" not in page
