"""Saved filters: an audience by rule (all of some tags, field values, made after a moment) a campaign can use from
the admin, the API and the shell; a run writes to whoever it matches when it starts, skipping the opted-out."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns import services
from campaigns.models import Campaign, Contact, SavedFilter, Tag
from messaging.models import OutboundMessage
from messaging.tests.admin_fixtures import admin_client, superuser  # noqa: F401  (fixtures)
from messaging.tests.conftest import api, user  # noqa: F401  (an Operators user and its token client)

pytestmark = pytest.mark.django_db

LONG_AGO = timezone.now() - timedelta(days=30)


@pytest.fixture
def contacts():
    vip, lima_tag = Tag.objects.create(name="vip"), Tag.objects.create(name="newsletter")

    def contact(phone, *, tags=(), made=None, **fields):
        made = made or timezone.now()
        person = Contact.objects.create(phone=phone, name=phone[-4:], fields=fields, created_at=made, updated_at=made)
        person.tags.add(*tags)
        return person

    contact("+5511987651101", tags=[vip, lima_tag], city="Lima")  # matches
    contact("+5511987651102", tags=[vip], city="Lima")  # only one of the two tags
    contact("+5511987651103", tags=[vip, lima_tag], city="Cusco")  # another city
    contact("+5511987651104", tags=[vip, lima_tag], city="Lima", made=LONG_AGO)  # made before the cut
    contact("+5511987651105", tags=[vip, lima_tag], city="Lima", date="12 May")  # other fields do not matter
    gone = contact("+5511987651106", tags=[vip, lima_tag], city="Lima")
    services.opt_out(contact_id=gone.pk, source="admin")
    limeños = SavedFilter.objects.create(name="VIP in Lima", fields={"city": "Lima"},
                                         created_after=timezone.now() - timedelta(days=1))
    limeños.tags.add(vip, lima_tag)
    return limeños


def test_a_saved_filter_matches_contacts_with_all_its_tags_its_field_values_made_after_its_moment(contacts):
    assert sorted(contacts.contacts().values_list("phone", flat=True)) == [
        "+5511987651101", "+5511987651105", "+5511987651106"]


def test_a_run_of_a_campaign_for_a_saved_filter_writes_to_its_contacts_and_skips_the_opted_out(contacts, sandbox_settings):
    campaign = services.create_campaign(name="Lima", text="Hola {name}", saved_filter="VIP in Lima")
    services.launch_campaign(campaign_id=campaign.pk)
    [run] = services.start_due_runs()
    run = services.prepare_run(run_id=run.pk)

    assert sorted(OutboundMessage.objects.filter(source=run.source).values_list("phone", flat=True)) == [
        "+5511987651101", "+5511987651105"]
    assert (run.recipients, run.skipped) == (3, {"opted out": 1})


def test_the_api_takes_a_saved_filter_by_name_and_refuses_an_unknown_one(contacts, api):
    answer = api.post("/campaigns", data=json.dumps({"name": "Lima", "text": "Hola {name}", "saved_filter": "VIP in Lima",
                                                     "draft": True}), content_type="application/json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["saved_filter"] == "VIP in Lima"
    assert Campaign.objects.get(pk=answer.json()["id"]).saved_filter == contacts

    refused = api.post("/campaigns", data=json.dumps({"name": "x", "text": "Hola", "saved_filter": "nope"}),
                       content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"]["saved_filter"] == ['No saved filter is called "nope".']


def test_the_admin_makes_saved_filters_and_offers_them_to_campaigns(admin_client, contacts):
    vip = Tag.objects.get(name="vip")
    made = admin_client.post("/admin/campaigns/savedfilter/add/", {"name": "Cusco", "tags": [vip.pk],
                                                                   "fields": '{"city": "Cusco"}'})
    assert made.status_code == 302, made.content.decode()[:2000]
    assert list(SavedFilter.objects.get(name="Cusco").contacts().values_list("phone", flat=True)) == ["+5511987651103"]
    bad = admin_client.post("/admin/campaigns/savedfilter/add/", {"name": "Bad", "fields": '{"city": 3}'})
    assert bad.status_code == 200 and "An object of field names to text values" in bad.content.decode()

    form = admin_client.get("/admin/campaigns/campaign/add/").content.decode()
    assert 'name="saved_filter"' in form and ">VIP in Lima</option>" in form
