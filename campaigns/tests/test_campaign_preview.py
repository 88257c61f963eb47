"""The campaign form's live preview endpoint: the text as the first contact the chosen audience or recipients would
reach receives it, by the same rules as a run's messages; a sample contact when none is chosen."""
import pytest

from campaigns.models import Contact, Tag
from messaging.tests.admin_fixtures import admin_client, make_user, superuser  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

URL = "/admin/campaigns/campaign/preview/"


@pytest.fixture
def vip():
    tag = Tag.objects.create(name="vip")
    gone = Contact.objects.create(phone="+5511987653001", name="Gone", fields={"date": "1 May"}, opted_out_at="2030-01-01T00:00Z")
    ana = Contact.objects.create(phone="+5511987653002", name="Ana", fields={"date": "12 May"})
    bruno = Contact.objects.create(phone="+5511987653003", name="Bruno", fields={"date": ""})
    for contact in (gone, ana, bruno):
        contact.tags.add(tag)
    return tag, ana, bruno


def preview(client, **query):
    answer = client.get(URL, query)
    assert answer.status_code == 200 and answer["Content-Type"] == "application/json"
    return answer.json()


def test_the_preview_renders_the_text_for_the_audiences_first_reachable_contact(admin_client, vip):
    tag, _, _ = vip
    assert preview(admin_client, text="Hola {name}, tu cita es el {date}", audience=tag.pk) == {
        "preview": "To Ana (+5511987653002): Hola Ana, tu cita es el 12 May", "sample": False}


def test_a_placeholder_the_contact_has_no_value_for_is_said_not_rendered(admin_client, vip):
    _, _, bruno = vip
    body = preview(admin_client, text="Hola {name}, el {date}", recipients=[bruno.pk])
    assert body["preview"] == "To Bruno (+5511987653003): cannot be written ({date} has no value)."


def test_a_sample_contact_stands_in_until_recipients_are_chosen_and_a_broken_template_is_named(admin_client):
    assert preview(admin_client, text="Hola {name}") == {"preview": "To Ana (+5511987654321): Hola Ana", "sample": True}
    assert preview(admin_client, text="Hola {name")["preview"].startswith("Not a template yet: The template has a stray brace")
    assert preview(admin_client, text="Hola {name.upper}")["preview"] == (
        'Not a template yet: "{name.upper}" is not a placeholder: use a plain name such as {name}.')


def test_only_who_may_add_or_change_campaigns_gets_previews(client, vip):
    make_user("nobody")  # staff, no permission
    client.login(username="nobody", password="secret-pass-123")
    assert client.get(URL, {"text": "Hola {name}"}).status_code == 403
    client.logout()
    assert client.get(URL, {"text": "Hola {name}"}).status_code == 302  # to the login page


def test_the_campaign_form_loads_the_preview_script_and_points_it_at_the_endpoint(admin_client):
    page = admin_client.get("/admin/campaigns/campaign/add/").content.decode()
    assert 'src="/static/campaigns/preview.js"' in page
    assert f'data-preview-url="{URL}"' in page
