"""A customer who writes STOP to the sandbox (Evolution) is never written to by a later campaign run."""
import pytest

from campaigns import services
from campaigns.models import Campaign, CampaignRun, CampaignStatus, Contact, Tag
from campaigns.tests.test_campaigns import messages_of, until
from inbound import services as inbound_services
from inbound.models import Batch, BatchStatus
from inbound.tests.conftest import console  # noqa: F401  (the live console registered as the sandbox's webhook)
from tests_support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_stop_reply_opts_the_contact_out_and_a_later_campaign_skips_them(console, evolution_sandbox):
    vip = Tag.objects.create(name="vip")
    for phone in ("+5511987652101", "+5511987652102", "+5511987652103"):
        Contact.objects.create(phone=phone, name="x").tags.add(vip)

    evolution_sandbox.inbound(number="5511987652102", text="STOP")
    wait_for(lambda: Batch.objects.filter(phone="+5511987652102", status=BatchStatus.DONE).exists(), timeout=20,
             what="the STOP batch processed")
    contact = wait_for(lambda: Contact.objects.filter(phone="+5511987652102", opted_out_at__isnull=False).first(),
                       timeout=10, what="the contact opted out")
    assert contact.opt_out_source == "reply"

    campaign = services.create_campaign(name="VIP", text="Hola {name}", audience="vip", rate_per_minute=600)
    services.launch_campaign(campaign_id=campaign.pk)
    until(lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED, what="completed")

    assert sorted(messages_of(campaign).values_list("phone", flat=True)) == ["+5511987652101", "+5511987652103"]
    [run] = CampaignRun.objects.filter(campaign=campaign)
    assert run.skipped == {"opted out": 1}


def test_a_contact_made_after_their_stop_is_skipped_at_run_time(db, sandbox_settings):
    inbound_services.opt_out(phone="+5511987652202", instance="console", keyword="STOP")  # no contact yet
    campaign = services.create_campaign(name="Later", text="Hola {name}", recipients=[
        {"phone": "+5511987652201", "name": "A"}, {"phone": "+5511987652202", "name": "B"},
    ])
    assert Contact.objects.get(phone="+5511987652202").opted_out_at is None
    services.launch_campaign(campaign_id=campaign.pk)
    [run] = services.start_due_runs()
    run = services.prepare_run(run_id=run.pk)

    assert list(messages_of(campaign).values_list("phone", flat=True)) == ["+5511987652201"]
    assert run.skipped == {"opted out": 1}
    contact = Contact.objects.get(phone="+5511987652202")
    assert contact.opted_out_at is not None and contact.opt_out_source == "reply"
