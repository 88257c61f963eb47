"""A run's progress counts what WhatsApp's receipts say: delivered to the phone, then read. The sandbox posts its
receipts to a live console (inbound/), as Evolution would."""
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from campaigns import services
from campaigns.models import Campaign, CampaignStatus
from campaigns.tests.test_campaigns import messages_of, people, until
from inbound.tests.conftest import console  # noqa: F401  (the live console the sandbox posts receipts to)
from inbound.tests.support import post, receipt
from messaging.models import MessageStatus
from tests_support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_runs_progress_counts_its_delivered_and_read_messages_in_the_api_and_the_admin(console, api):
    campaign = services.create_campaign(name="Receipts", text="Hola {name}", recipients=people(3, start=4100),
                                        rate_per_minute=600)
    services.launch_campaign(campaign_id=campaign.pk)
    until(lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED, what="completed")
    wait_for(lambda: messages_of(campaign).filter(delivered_at__isnull=False).count() == 3, what="all delivered")
    first = messages_of(campaign).filter(status=MessageStatus.SENT).order_by("pk").first()

    post(console.url, receipt(first.evolution_message_id, "READ"))
    wait_for(lambda: messages_of(campaign).filter(read_at__isnull=False).count() == 1, what="one read")

    run = api.get(f"/campaigns/{campaign.pk}").json()["runs"][0]
    assert (run["total"], run["sent"], run["delivered"], run["read"]) == (3, 3, 3, 1)
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser(username="boss", password="x-secret-pass-1"))
    page = admin.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "<th>sent</th><th>delivered</th><th>read</th>" in page
    assert "<td>3</td><td>3</td><td>1</td>" in page  # sent, delivered, read
