"""The operator console, through the admin's real views: what an operator sees and what each action does."""
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from celery import current_app
from django.apps import apps as django_apps
from django.utils import timezone
from django_celery_results.models import TaskResult

from config.celery import TRANSACTIONAL_QUEUE
from messaging import idempotency, services, tasks
from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage
from messaging.paginators import EstimatedCountPaginator
from tests_support import ROOT
from messaging.tests.admin_fixtures import (  # noqa: F401  (fixtures)
    CHANGELIST,
    DASHBOARD,
    FAILED_THEN_SENT,
    SENT_FIRST_TIME,
    admin_client,
    admin_static_files_and_cache,
    button,
    failed_message,
    html,
    make_message,
    make_user,
    page,
    shown_ids,
    superuser,
)

pytestmark = pytest.mark.django_db


def run_action(client, action: str, *messages, follow=True):
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": [m.pk for m in messages]}, follow=follow
    )


def flash(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- the changelist ----------------------------------------------------------------------------------------------


def test_the_changelist_answers_what_happened_to_each_message(admin_client):
    failed = failed_message(phone="+5511987654321", text="Seu pedido #991 saiu para entrega hoje à tarde.")
    body = html(admin_client.get(CHANGELIST))
    assert 'class="msg-badge msg-badge--failed"' in body
    assert "+5511987654321" in body
    assert "Seu pedido #991 saiu para entrega" in body
    assert "not_on_whatsapp" in body
    assert f'href="{page(failed.pk)}"' in body


def test_the_changelist_is_titled_for_what_it_lists(admin_client):
    body = html(admin_client.get(CHANGELIST))
    assert "<h1>Messages</h1>" in body and "<title>Messages |" in body
    assert "outbound message" not in body.lower()


def test_the_changelist_is_newest_first(admin_client):
    old = make_message(created_at=timezone.now() - timedelta(days=2))
    new = make_message()
    results = admin_client.get(CHANGELIST).context["cl"].result_list
    assert [m.pk for m in results] == [new.pk, old.pk]


@pytest.mark.parametrize("typed", ["+55 11 98765-4321", "5511987654321", "98765 4321", "(11) 98765-4321", "987654321"])
def test_search_finds_a_message_by_phone_in_any_format(admin_client, typed):
    wanted = make_message(phone="+5511987654321")
    make_message(phone="+5511912345678")
    assert shown_ids(admin_client.get(CHANGELIST, {"q": typed})) == {wanted.pk}


def test_search_finds_messages_by_words_of_the_text_in_any_case(admin_client):
    wanted = make_message(text="Seu código de verificação é 4821")
    make_message(text="Pedido confirmado")
    assert shown_ids(admin_client.get(CHANGELIST, {"q": "CÓDIGO verificação"})) == {wanted.pk}


def test_search_finds_a_message_by_evolution_id_or_by_hash_id(admin_client):
    wanted, other = make_message(), make_message()
    assert shown_ids(admin_client.get(CHANGELIST, {"q": wanted.evolution_message_id})) == {wanted.pk}
    assert shown_ids(admin_client.get(CHANGELIST, {"q": f"#{other.pk}"})) == {other.pk}


def test_filters_by_status_instance_and_failed_attempts(admin_client, settings):
    settings.EVOLUTION_INSTANCES = ["console", "loja-sp"]
    clean = make_message(attempts=SENT_FIRST_TIME)
    bumpy = make_message(attempts=FAILED_THEN_SENT, instance="loja-sp")
    failed = failed_message()
    assert shown_ids(admin_client.get(CHANGELIST, {"status": "failed"})) == {failed.pk}
    assert shown_ids(admin_client.get(CHANGELIST, {"instance": "loja-sp"})) == {bumpy.pk}
    assert shown_ids(admin_client.get(CHANGELIST, {"failed_attempts": "yes"})) == {bumpy.pk, failed.pk}
    assert shown_ids(admin_client.get(CHANGELIST, {"failed_attempts": "no"})) == {clean.pk}
    assert shown_ids(admin_client.get(CHANGELIST, {"last_error_kind": "not_on_whatsapp"})) == {failed.pk}


def test_the_date_hierarchy_drills_down_to_a_day(admin_client):
    make_message(created_at=datetime(2025, 3, 14, 12, tzinfo=ZoneInfo("UTC")))
    wanted = make_message(created_at=datetime(2026, 5, 2, 12, tzinfo=ZoneInfo("UTC")))
    years = html(admin_client.get(CHANGELIST))
    assert "created_at__year=2025" in years and "created_at__year=2026" in years
    months = html(admin_client.get(CHANGELIST, {"created_at__year": 2026}))
    assert "created_at__month=5" in months
    day = admin_client.get(CHANGELIST, {"created_at__year": 2026, "created_at__month": 5, "created_at__day": 2})
    assert shown_ids(day) == {wanted.pk}


def test_the_changelist_query_count_does_not_grow_with_rows(admin_client, django_assert_max_num_queries):
    for index in range(120):
        make_message(attempts=FAILED_THEN_SENT if index % 2 else SENT_FIRST_TIME)
    # session, user, count, page, date range, failure-reason choices: a fixed handful, whatever the row count.
    with django_assert_max_num_queries(10):
        response = admin_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 50
    with django_assert_max_num_queries(10):
        admin_client.get(CHANGELIST, {"failed_attempts": "yes", "q": "98765"})


def test_past_a_thousand_rows_the_count_is_an_estimate_and_says_so(admin_client, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 5)
    for _ in range(8):
        make_message()
    body = html(admin_client.get(CHANGELIST))
    assert "about " in body
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 50)
    assert "about " not in html(admin_client.get(CHANGELIST))


# --- the message page --------------------------------------------------------------------------------------------


def test_the_message_page_shows_the_attempts_and_the_task_id(admin_client):
    message = make_message(attempts=FAILED_THEN_SENT)
    TaskResult.objects.create(task_id=message.task_id, status="SUCCESS")
    body = html(admin_client.get(page(message.pk)))
    assert "Attempts" in body
    assert "Connection Closed" in body and "server_error" in body and "500" in body
    assert 'msg-badge--temporary_error' in body and "msg-badge--sent" in body
    assert f"<code>{message.task_id}</code>" in body
    assert message.evolution_message_id in body


def test_the_message_page_says_which_attempts_did_not_count_because_the_instance_was_paused(admin_client):
    message = make_message(attempts=FAILED_THEN_SENT, uncounted_attempts=1)
    message.attempts.filter(number=1).update(counted=False)
    body = html(admin_client.get(page(message.pk)))
    assert body.count("did not count: instance paused") == 1


def test_a_failed_message_says_failed_and_does_not_send_the_operator_to_celerys_success(admin_client):
    # The task returned normally after recording the failure, so Celery's own row says SUCCESS.
    message = failed_message()
    result = TaskResult.objects.create(task_id=message.task_id, status="SUCCESS")
    body = html(admin_client.get(page(message.pk)))
    task_row = body[body.index("field-celery_task"):]
    task_row = task_row[: task_row.index("</div>\n")]
    assert message.task_id in task_row and "Failed" in task_row
    assert f"/admin/django_celery_results/taskresult/{result.pk}/" not in body
    # and the result page itself, if someone finds it, can only be read
    result_page = html(admin_client.get(f"/admin/django_celery_results/taskresult/{result.pk}/change/"))
    assert 'name="_save"' not in result_page
    assert admin_client.post(f"/admin/django_celery_results/taskresult/{result.pk}/change/", {"status": "FAILURE"}).status_code == 403


def test_a_message_page_shows_values_not_the_hints_for_typing_them(admin_client):
    body = html(admin_client.get(page(make_message().pk)))
    assert "E.164, e.g." not in body  # the phone field's help text
    assert "Evolution API instance name" not in body
    assert "Celery task id of the send" not in body


def test_a_message_page_is_titled_by_its_number_and_phone(admin_client):
    message = make_message(phone="+5511987654321")
    body = html(admin_client.get(page(message.pk)))
    assert f"<h1>Message #{message.pk} to +5511987654321</h1>" in body
    assert "outbound message" not in body.lower()


def test_a_finished_message_is_read_only(admin_client):
    message = make_message()
    body = html(admin_client.get(page(message.pk)))
    assert 'name="_save"' not in body
    response = admin_client.post(page(message.pk), {"text": "rewritten history"})
    assert response.status_code == 403
    assert OutboundMessage.objects.get(pk=message.pk).text != "rewritten history"


def test_the_page_offers_only_the_buttons_that_apply(admin_client):
    assert 'id="msg-resend"' in html(admin_client.get(page(failed_message().pk)))
    scheduled = html(admin_client.get(page(make_message(MessageStatus.SCHEDULED, scheduled_at=timezone.now() + timedelta(hours=1)).pk)))
    assert 'id="msg-send-now"' in scheduled and 'id="msg-cancel"' in scheduled and 'id="msg-resend"' not in scheduled
    sending = html(admin_client.get(page(make_message(MessageStatus.SENDING).pk)))
    assert "msg-resend" not in sending and "msg-cancel" not in sending


# --- actions -----------------------------------------------------------------------------------------------------


def test_resend_makes_one_linked_copy_and_reports_what_it_skipped(admin_client, superuser):
    failed, sent, queued = failed_message(), make_message(), make_message(MessageStatus.QUEUED)
    response = run_action(admin_client, "resend_selected", failed, sent, queued)
    copies = OutboundMessage.objects.filter(resend_of__isnull=False)
    assert {c.resend_of_id for c in copies} == {failed.pk, sent.pk}
    assert all(c.status == MessageStatus.QUEUED and c.created_by == superuser and c.text == failed.text for c in copies)
    assert flash(response) == [
        f"2 messages resent as {', '.join(f'#{pk}' for pk in sorted(c.pk for c in copies))}, "
        "1 skipped: queued, not sent or failed."
    ]
    # The originals keep their history.
    assert OutboundMessage.objects.get(pk=failed.pk).status == MessageStatus.FAILED


def test_resending_twice_does_not_make_a_second_copy(admin_client):
    failed = failed_message()
    first = admin_client.post(button(failed.pk, "resend"), follow=True)
    again = admin_client.post(button(failed.pk, "resend"), follow=True)
    copy = OutboundMessage.objects.get(resend_of=failed)
    assert first.redirect_chain == [(page(copy.pk), 302)]  # the operator lands on the new message
    assert flash(first) == [f"Resent as #{copy.pk}."]
    assert flash(again) == [f"Already resent as #{copy.pk}."]
    assert flash(run_action(admin_client, "resend_selected", failed)) == ["0 messages resent, 1 skipped: already resent."]


def test_resending_again_finds_the_copy_even_if_it_was_made_differently(admin_client):
    # A copy made before resends carried the original's callback_url differs from what a resend makes now;
    # the resend key names the copy itself, so asking again still finds it (it was a 500 for a while).
    failed = failed_message()
    OutboundMessage.objects.filter(pk=failed.pk).update(callback_url="https://shop.example/hooks/whatsapp")
    older, _ = services.accept_message(phone=failed.phone, text=failed.text, resend_of=failed,
                                       idempotency_key=idempotency.resend_key(failed.pk))
    response = admin_client.post(button(failed.pk, "resend"), follow=True)
    assert response.status_code == 200
    assert flash(response) == [f"Already resent as #{older.pk}."]
    assert OutboundMessage.objects.filter(resend_of=failed).count() == 1


def test_a_resend_is_enqueued_after_commit(admin_client, django_capture_on_commit_callbacks):
    failed = failed_message()
    with django_capture_on_commit_callbacks() as callbacks:
        admin_client.post(button(failed.pk, "resend"))
    assert len(callbacks) == 1


def test_retry_failed_resends_the_failed_and_skips_the_sent(admin_client):
    failed, other_failed, sent = failed_message(), failed_message(), make_message()
    response = run_action(admin_client, "retry_failed_selected", failed, other_failed, sent)
    assert set(OutboundMessage.objects.filter(resend_of__isnull=False).values_list("resend_of", flat=True)) == {failed.pk, other_failed.pk}
    assert flash(response)[0].startswith("2 messages re-queued as #")
    assert flash(response)[0].endswith(", 1 skipped: already sent.")


def test_cancel_stops_what_is_not_sending_yet_and_says_what_was_too_late(admin_client):
    queued = make_message(MessageStatus.QUEUED)
    scheduled = make_message(MessageStatus.SCHEDULED, scheduled_at=timezone.now() + timedelta(hours=1))
    sending, sent = make_message(MessageStatus.SENDING), make_message()
    response = run_action(admin_client, "cancel_selected", queued, scheduled, sending, sent)
    assert flash(response) == ["2 messages cancelled, 1 skipped: already sending, 1 skipped: already sent."]
    statuses = dict(OutboundMessage.objects.values_list("pk", "status"))
    assert statuses[queued.pk] == statuses[scheduled.pk] == MessageStatus.CANCELLED
    assert (statuses[sending.pk], statuses[sent.pk]) == (MessageStatus.SENDING, MessageStatus.SENT)


def test_send_now_releases_a_scheduled_message_to_the_queue(admin_client, django_capture_on_commit_callbacks):
    scheduled = make_message(MessageStatus.SCHEDULED, scheduled_at=timezone.now() + timedelta(days=1), task_id="")
    with django_capture_on_commit_callbacks() as callbacks:
        response = run_action(admin_client, "send_now_selected", scheduled, make_message())
    released = OutboundMessage.objects.get(pk=scheduled.pk)
    assert released.status == MessageStatus.QUEUED and released.task_id
    assert len(callbacks) == 1
    assert flash(response) == ["1 message released for sending, 1 skipped: already sent."]


def test_the_buttons_do_what_the_actions_do(admin_client):
    scheduled = make_message(MessageStatus.SCHEDULED, scheduled_at=timezone.now() + timedelta(days=1))
    response = admin_client.post(button(scheduled.pk, "cancel"), follow=True)
    assert flash(response) == ["1 message cancelled."]
    assert OutboundMessage.objects.get(pk=scheduled.pk).status == MessageStatus.CANCELLED
    assert admin_client.get(button(scheduled.pk, "cancel")).status_code == 405  # state changes are POSTs


# --- compose and schedule ----------------------------------------------------------------------------------------


def compose(client, **fields):
    data = {"phone": "+55 11 98765-4321", "instance": "console", "text": "Olá!", "scheduled_at_0": "", "scheduled_at_1": ""}
    data.update(fields)
    return client.post(f"{CHANGELIST}add/", data)


def test_compose_queues_a_message_through_the_same_service_as_the_api(admin_client, superuser, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = compose(admin_client, text="  Olá Carlos  ")
    message = OutboundMessage.objects.get()
    assert response.status_code == 302 and response.url == page(message.pk)
    assert (message.phone, message.text, message.status, message.created_by) == (
        "+5511987654321", "  Olá Carlos  ", MessageStatus.QUEUED, superuser)
    assert message.task_id and len(callbacks) == 1


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"phone": "12"}, "phone"),
        ({"phone": "not a phone"}, "phone"),
        ({"text": "   "}, "text"),
        ({"text": "x" * 4097}, "text"),
        ({"instance": "nope"}, "instance"),
        ({"scheduled_at_0": "2020-01-01", "scheduled_at_1": "10:00"}, "scheduled_at"),
    ],
)
def test_compose_rejects_what_the_api_rejects_and_names_the_field(admin_client, fields, field):
    response = compose(admin_client, **fields)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert OutboundMessage.objects.count() == 0


def test_compose_schedules_in_the_operators_time_zone(admin_client):
    admin_client.cookies["operator_tz"] = "America/Sao_Paulo"
    form = html(admin_client.get(f"{CHANGELIST}add/"))
    assert "America/Sao_Paulo (UTC-03:00)" in form
    year = timezone.now().year + 1
    compose(admin_client, scheduled_at_0=f"{year}-01-15", scheduled_at_1="10:00")
    message = OutboundMessage.objects.get()
    assert message.status == MessageStatus.SCHEDULED and message.task_id == ""
    assert message.scheduled_at == datetime(year, 1, 15, 13, 0, tzinfo=ZoneInfo("UTC"))
    # and the page shows it back in the operator's time, not UTC
    assert "10:00" in html(admin_client.get(page(message.pk)))


def test_compose_reads_the_time_zone_cookie_as_a_browser_sends_it(admin_client):
    # The admin's page stores the zone with encodeURIComponent, so the browser sends "America%2FSao_Paulo".
    admin_client.cookies["operator_tz"] = "America%2FSao_Paulo"
    year = timezone.now().year + 1
    compose(admin_client, scheduled_at_0=f"{year}-03-10", scheduled_at_1="09:00")
    message = OutboundMessage.objects.get()
    assert message.scheduled_at == datetime(year, 3, 10, 12, 0, tzinfo=ZoneInfo("UTC"))


def test_the_compose_page_says_compose_and_has_one_send_button(admin_client):
    body = html(admin_client.get(f"{CHANGELIST}add/"))
    assert "<h1>Compose message</h1>" in body and "<title>Compose message |" in body
    form = body[body.index('id="outboundmessage_form"'):]
    assert form.count('type="submit"') == 1
    assert 'type="submit" value="Send"' in form
    assert "outbound message" not in body.lower()


def test_a_double_submitted_compose_form_makes_one_message(admin_client):
    compose(admin_client, compose_token="same-form")
    compose(admin_client, compose_token="same-form")
    assert OutboundMessage.objects.count() == 1


# --- roles -------------------------------------------------------------------------------------------------------


def test_support_can_view_and_resend_but_not_cancel_or_compose(client):
    client.force_login(make_user("sam", groups=["Support"]))
    failed, queued = failed_message(), make_message(MessageStatus.QUEUED)
    changelist = client.get(CHANGELIST)
    actions = [name for name, _ in changelist.context["action_form"].fields["action"].choices if name]
    assert actions == ["resend_selected", "retry_failed_selected"]
    assert 'id="msg-cancel"' not in html(client.get(page(queued.pk)))
    assert client.post(button(queued.pk, "cancel")).status_code == 403
    run_action(client, "cancel_selected", queued)
    assert OutboundMessage.objects.get(pk=queued.pk).status == MessageStatus.QUEUED
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert client.post(button(failed.pk, "resend")).status_code == 302
    assert OutboundMessage.objects.filter(resend_of=failed).count() == 1


def test_operators_can_compose_cancel_and_send_now(client):
    client.force_login(make_user("olga", groups=["Operators"]))
    queued = make_message(MessageStatus.QUEUED)
    assert client.get(f"{CHANGELIST}add/").status_code == 200
    assert client.post(button(queued.pk, "cancel")).status_code == 302
    assert OutboundMessage.objects.get(pk=queued.pk).status == MessageStatus.CANCELLED


def test_staff_without_a_role_sees_no_messages(client):
    client.force_login(make_user("nobody"))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(DASHBOARD).status_code == 403
    assert client.post(button(failed_message().pk, "resend")).status_code == 403


# --- the dashboard -----------------------------------------------------------------------------------------------


def test_the_dashboard_counts_by_status_and_links_each_figure(admin_client):
    failed_message()
    failed_message(created_at=timezone.now() - timedelta(hours=3))
    make_message(created_at=timezone.now() - timedelta(days=3))
    make_message(created_at=timezone.now() - timedelta(days=30))  # outside every window
    response = admin_client.get(DASHBOARD)
    rows = {row["status"]: [cell["count"] for cell in row["cells"]] for row in response.context["status_rows"]}
    assert rows["failed"] == [1, 2, 2]
    assert rows["sent"] == [0, 0, 1]
    failed_week = response.context["status_rows"][5]["cells"][2]["url"]
    assert shown_ids(admin_client.get(failed_week)) == set(OutboundMessage.objects.filter(status="failed").values_list("pk", flat=True))


def test_the_dashboard_charts_sent_and_failed_per_hour_and_the_bars_link_to_them(admin_client):
    now = timezone.now()
    make_message(finished_at=now - timedelta(hours=2))
    make_message(finished_at=now - timedelta(hours=2))
    failed_message(finished_at=now)
    make_message(finished_at=now - timedelta(hours=30))  # older than the chart
    chart = admin_client.get(DASHBOARD).context["chart"]
    assert (chart["total_sent"], chart["total_failed"]) == (2, 1)
    sent_bars = [bar for bar in chart["bars"] if bar["status"] == "sent" and bar["count"]]
    assert [bar["count"] for bar in sent_bars] == [2]
    assert len(shown_ids(admin_client.get(sent_bars[0]["url"]))) == 2
    assert "<svg" in html(admin_client.get(DASHBOARD))


def test_the_dashboard_lists_top_failure_reasons(admin_client):
    failed_message()
    failed_message()
    make_message(MessageStatus.FAILED, last_error_kind="server_error", last_error="Connection Closed")
    reasons = admin_client.get(DASHBOARD).context["reasons"]
    assert [(r["last_error_kind"], r["n"]) for r in reasons] == [("not_on_whatsapp", 2), ("server_error", 1)]
    assert len(shown_ids(admin_client.get(reasons[0]["url"]))) == 2


def test_the_dashboard_shows_queue_depth_and_an_unreachable_instance(admin_client, settings):
    settings.EVOLUTION_API_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    current_app.control.purge()
    try:
        tasks.publish_send(OutboundMessage(pk=0, task_id="dashboard-depth-probe"))
        context = admin_client.get(DASHBOARD).context
        depths = {queue["name"]: queue["depth"] for queue in context["queues"]}
        assert depths[TRANSACTIONAL_QUEUE] == 1
    finally:
        current_app.control.purge()
    assert [(i["name"], i["state"], i["ok"]) for i in context["instances"]] == [("console", "unreachable", False)]


def test_the_admin_index_links_to_the_dashboard(admin_client):
    assert DASHBOARD in html(admin_client.get("/admin/"))


def test_a_superuser_meets_the_console_first_and_the_machinery_below(admin_client):
    index = admin_client.get("/admin/")
    apps = [app["app_label"] for app in index.context["app_list"]]
    assert apps[0] == "messaging"
    assert [model["name"] for model in index.context["app_list"][0]["models"]] == ["Sending dashboard", "Messages"]
    assert apps.index("auth") < apps.index("django_celery_results") and apps.index("auth") < apps.index("django_celery_beat")
    body = html(index)
    assert body.index("Sending dashboard") < body.index("Administration") < body.index("Periodic tasks")
    # the sidebar of every other page, in the same order
    sidebar = [app["app_label"] for app in admin_client.get(CHANGELIST).context["available_apps"]]
    assert sidebar == apps
    # Every app of this project (campaigns, replies, callbacks, API access...) is the console, above the heading;
    # only what Django and the libraries bring (accounts, tokens, Celery's records, lockouts) is below it.
    ours = {config.label for config in django_apps.get_app_configs() if Path(config.path).parent == ROOT}
    listed = index.context["app_list"]
    assert {"messaging", "campaigns", "inbound", "callbacks", "access"} <= ours & set(apps)
    assert [app["app_label"] in ours for app in listed] == sorted((app["app_label"] in ours for app in listed), reverse=True)
    heading = body.index('<h2 class="app-group-heading">Administration</h2>')
    assert all(body.index(f'class="app-{app["app_label"]} ') < heading for app in listed if app["app_label"] in ours)


def test_attempt_outcomes_used_as_failed_by_the_filter_are_the_failures():
    from messaging.admin.filters import FAILED_ATTEMPT_OUTCOMES

    assert set(AttemptOutcome.values) - set(FAILED_ATTEMPT_OUTCOMES) == {AttemptOutcome.STARTED, AttemptOutcome.SENT}
