"""What WhatsApp's receipts said, where an operator looks: the changelist (a column and a filter), the dashboard's
delivery and read rates, and a message's page, with links to its contact's conversation and its status callbacks."""
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from callbacks.models import CallbackDelivery
from inbound.models import InboundMessage
from messaging.tests.admin_fixtures import (  # noqa: F401  (fixtures)
    CHANGELIST,
    DASHBOARD,
    admin_client,
    admin_static_files_and_cache,
    failed_message,
    html,
    make_message,
    make_user,
    page,
    shown_ids,
    superuser,
)

pytestmark = pytest.mark.django_db


def receipts():
    """Four sent messages: read, delivered and not read, no receipt yet; and a failed one."""
    now = timezone.now()
    read = make_message(delivered_at=now, read_at=now)
    delivered = make_message(delivered_at=now)
    unacknowledged = make_message()
    return read, delivered, unacknowledged, failed_message()


def test_the_changelist_shows_each_receipt_and_filters_by_it(admin_client):
    read, delivered, unacknowledged, failed = receipts()

    body = html(admin_client.get(CHANGELIST))
    assert body.count('<span class="msg-receipt"') == 2
    assert re.search(r'<span class="msg-receipt" title="read [^"]+">read</span>', body)
    assert shown_ids(admin_client.get(CHANGELIST, {"receipt": "delivered"})) == {read.pk, delivered.pk}
    assert shown_ids(admin_client.get(CHANGELIST, {"receipt": "read"})) == {read.pk}
    assert shown_ids(admin_client.get(CHANGELIST, {"receipt": "unread"})) == {delivered.pk}
    assert shown_ids(admin_client.get(CHANGELIST, {"receipt": "none"})) == {unacknowledged.pk}
    assert len(shown_ids(admin_client.get(CHANGELIST, {"receipt": "anything else"}))) == 4


def test_the_dashboard_shows_delivery_and_read_rates_of_what_was_sent_and_links_them(admin_client):
    read, delivered, unacknowledged, _ = receipts()
    make_message(finished_at=timezone.now() - timedelta(days=2), delivered_at=timezone.now())  # in no window

    response = admin_client.get(DASHBOARD)

    rows = {row["label"]: row["cells"] for row in response.context["receipt_rows"]}
    assert response.context["receipt_windows"] == ["hour", "day"]
    assert [cell["count"] for cell in rows["Sent"]] == [3, 3]
    assert [cell["count"] for cell in rows["Delivered"]] == [2, 2]
    assert [(cell["count"], cell["rate"]) for cell in rows["Read"]] == [(1, "33.3%"), (1, "33.3%")]
    assert rows["Delivered"][0]["rate"] == "66.7%"
    assert shown_ids(admin_client.get(rows["Delivered"][1]["url"])) == {read.pk, delivered.pk}
    assert shown_ids(admin_client.get(rows["Sent"][0]["url"])) == {read.pk, delivered.pk, unacknowledged.pk}
    assert 'id="receipt-rates"' in html(response)


def test_with_nothing_sent_the_rates_say_so_rather_than_divide_by_zero(admin_client):
    rows = {row["label"]: row["cells"] for row in admin_client.get(DASHBOARD).context["receipt_rows"]}
    assert [cell["rate"] for cell in rows["Read"]] == ["—", "—"]


def test_a_message_page_shows_its_receipts_and_links_to_the_conversation_with_its_contact(admin_client):
    message = make_message(phone="+5511987651234", delivered_at=timezone.now(), read_at=timezone.now())
    InboundMessage.objects.create(instance="console", whatsapp_id="3EB0REPLY", phone="+5511987651234",
                                  remote_jid="5511987651234@s.whatsapp.net", text="gracias!")

    body = html(admin_client.get(page(message.pk)))
    assert "Delivered at" in body and "Read at" in body
    conversation = re.search(r'<a href="([^"]+)" id="msg-conversation">', body).group(1)
    assert conversation == "/admin/inbound/inboundmessage/conversation/5511987651234/"
    lines = admin_client.get(conversation).context["lines"]
    assert [(line.outbound, line.text) for line in lines] == [(True, message.text), (False, "gracias!")]
    assert lines[0].detail == "Sent, read"


def test_the_conversation_link_is_offered_only_to_those_who_may_read_conversations(client):
    message = make_message()
    user = make_user("only-messages")
    user.user_permissions.add(Permission.objects.get(codename="view_outboundmessage"))
    client.force_login(user)
    assert 'id="msg-conversation"' not in html(client.get(page(message.pk)))

    client.force_login(make_user("sam", groups=["Support"]))
    assert 'id="msg-conversation"' in html(client.get(page(message.pk)))


def test_a_message_with_a_callback_url_links_to_its_status_callbacks(admin_client):
    told = make_message(callback_url="https://example.com/status")
    other = make_message(callback_url="https://example.com/status")
    for message in (told, other):
        CallbackDelivery.objects.create(message=message, status="sent", rank=1, at=timezone.now(), url=message.callback_url)

    body = html(admin_client.get(page(told.pk)))
    callbacks = re.search(r'<a href="([^"]+)" id="msg-callbacks">', body).group(1).replace("&amp;", "&")
    listed = admin_client.get(callbacks)
    assert [delivery.message_id for delivery in listed.context["cl"].result_list] == [told.pk]
    assert 'id="msg-callbacks"' not in html(admin_client.get(page(make_message().pk)))  # no callback_url


def test_a_nul_in_the_receipt_filter_is_dropped_not_a_500(admin_client):
    response = admin_client.get(CHANGELIST, {"receipt": "read\x00", "status": "sent"})
    assert response.status_code == 302
    assert response["Location"] == f"{CHANGELIST}?status=sent"
