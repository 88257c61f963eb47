"""A contact's phone is stored as normalize_phone writes it, whichever way it came, so a run's messages can take
it as it is (services.prepare_run tells accept_messages so) and still never store a phone that is not E.164."""
import pytest

from campaigns.models import Contact
from messaging import services as messaging
from messaging.tests.admin_fixtures import admin_client, superuser  # noqa: F401  (fixtures)


def test_a_contact_typed_in_the_admin_is_stored_in_e164_and_a_bad_phone_is_refused(admin_client):
    typed = admin_client.post("/admin/campaigns/contact/add/", {"phone": "+55 (11) 98765-4001", "name": "Ana",
                                                                "fields": "{}"})
    refused = admin_client.post("/admin/campaigns/contact/add/", {"phone": "12", "name": "Nobody", "fields": "{}"})

    assert typed.status_code == 302, typed.content.decode()[:2000]
    assert list(Contact.objects.values_list("phone", flat=True)) == ["+5511987654001"]
    assert refused.status_code == 200 and "phone" in refused.context["adminform"].form.errors


@pytest.mark.parametrize("phone, stored", [("+5511987654001", "+5511987654001"), ("+55 11 98765-4001", "+5511987654001")])
def test_a_phone_said_to_be_normalized_is_still_stored_in_e164(db, phone, stored):
    [result] = messaging.accept_messages(items=[{"phone": phone, "text": "hi"}], phones_are_normalized=True)
    assert result.message.phone == stored


def test_a_phone_said_to_be_normalized_that_is_no_phone_is_still_refused(db):
    [result] = messaging.accept_messages(items=[{"phone": "not a phone", "text": "hi"}], phones_are_normalized=True)
    assert result.message is None and "phone" in result.errors
