"""Hostile but legal input to the admin, sent the way a Support user or an operator could send it from their
own browser: none of it may answer a 500."""
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.utils import timezone

from messaging.models import MessageStatus, OutboundMessage
from messaging.tests.admin_fixtures import (  # noqa: F401  (fixtures)
    CHANGELIST,
    admin_static_files_and_cache,
    button,
    failed_message,
    make_message,
    make_user,
)

pytestmark = pytest.mark.django_db

NUL = "\x00"


@pytest.fixture
def support(client):
    client.force_login(make_user("sam", groups=["Support"]))
    return client


@pytest.fixture
def operator(client):
    user = make_user("olga", groups=["Operators"])
    client.force_login(user)
    client.user = user
    return client


def flash(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- a NUL byte in the changelist's query ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"status": NUL},
        {"instance": NUL},
        {"last_error_kind": NUL},
        {"failed_attempts": NUL},
        {"q": NUL},
        {"q": f"pedido{NUL}"},
        {"created_at__gte": NUL, "created_at__lt": NUL},
        {"created_at__year": NUL},
        {"o": NUL},
        {"p": NUL},
        {f"status{NUL}": "sent"},
    ],
)
def test_a_nul_byte_in_a_filter_or_search_is_refused_with_a_message_not_a_500(support, query):
    failed_message()

    response = support.get(CHANGELIST, query, follow=True)

    assert response.status_code == 200
    assert any("NUL" in text for text in flash(response))
    assert NUL not in response.request["QUERY_STRING"]


def test_the_rest_of_a_query_with_a_nul_byte_still_applies(support):
    failed = failed_message()
    make_message(MessageStatus.SENT)

    response = support.get(CHANGELIST, {"status": "failed", "instance": NUL}, follow=True)

    assert {message.pk for message in response.context["cl"].result_list} == {failed.pk}


# --- ids that are not ids, in actions and buttons ----------------------------------------------------------------


@pytest.mark.parametrize("selected", [["abc"], ["1", "abc"], [NUL], ["1.5"], [""]])
def test_an_action_on_ids_that_are_not_ids_is_refused_not_a_500(support, selected):
    failed = failed_message()

    response = support.post(
        CHANGELIST, {"action": "resend_selected", "_selected_action": selected + [str(failed.pk)]}, follow=True
    )

    assert response.status_code == 200
    assert OutboundMessage.objects.filter(resend_of=failed).count() == 0  # nothing done on a tampered selection
    assert any("not ids" in text for text in flash(response))


@pytest.mark.parametrize("message_id", ["abc", "1.5", "%00", "99999999999999999999999", "-1"])
def test_a_button_on_an_id_that_is_not_an_id_is_not_a_500(support, message_id):
    # The route takes only digits: anything else falls to Django's "no such object" redirect to the index.
    response = support.post(button(message_id, "resend"), follow=True)
    assert response.status_code in (200, 404)


def test_a_button_on_a_message_that_is_gone_is_a_404(support):
    assert support.post(button(2**62, "resend")).status_code == 404


# --- the compose form ----------------------------------------------------------------------------------------------


def compose(client, **fields):
    data = {"phone": "+55 11 98765-4321", "instance": "console", "text": "Olá!", "scheduled_at_0": "", "scheduled_at_1": ""}
    data.update(fields)
    return client.post(f"{CHANGELIST}add/", data)


def test_a_compose_token_of_any_length_is_one_message_not_a_500(operator):
    token = "t" * 5000  # the idempotency key column holds 255: the token is hashed to fit

    first, second = compose(operator, compose_token=token), compose(operator, compose_token=token)

    assert first.status_code == second.status_code == 302
    message = OutboundMessage.objects.get()
    assert len(message.idempotency_key) <= 255


def test_an_operator_without_the_schedule_permission_cannot_set_a_send_time(operator):
    operator.user.groups.clear()
    operator.user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_outboundmessage", "add_outboundmessage"])
    )
    later = timezone.localtime() + timedelta(days=1)

    response = compose(operator, scheduled_at_0=f"{later:%Y-%m-%d}", scheduled_at_1="10:00")

    assert response.status_code == 200
    assert "scheduled_at" in response.context["adminform"].form.errors
    assert OutboundMessage.objects.count() == 0
    assert compose(operator).status_code == 302  # sending now is still theirs


def test_an_operator_with_the_schedule_permission_sets_a_send_time(operator):
    later = timezone.localtime() + timedelta(days=1)
    assert compose(operator, scheduled_at_0=f"{later:%Y-%m-%d}", scheduled_at_1="10:00").status_code == 302
    assert OutboundMessage.objects.get().status == MessageStatus.SCHEDULED


def test_a_nul_byte_in_celerys_results_filter_is_refused_too(client):
    client.force_login(make_user("boss", superuser=True))
    response = client.get("/admin/django_celery_results/taskresult/", {"status": NUL}, follow=True)
    assert response.status_code == 200
    assert any("NUL" in text for text in flash(response))


# --- every changelist on the site ---------------------------------------------------------------------------------


def _changelist_url(model) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda model: model._meta.label)
def test_no_changelist_answers_a_500_to_a_nul_in_a_filter_or_an_action_on_non_ids(client, model):
    # A superuser sees every changelist, every filter and every action; each filter's own query parameters (as its
    # links build them) get a NUL byte, one at a time, then all at once.
    client.force_login(make_user("boss", superuser=True))
    url = _changelist_url(model)
    page = client.get(url)
    assert page.status_code == 200
    changelist = page.context["cl"]
    parameters = [name for spec in changelist.filter_specs for name in spec.expected_parameters()]
    if changelist.search_fields:
        parameters.append("q")

    for query in [{name: NUL} for name in parameters] + [dict.fromkeys(parameters, NUL)]:
        response = client.get(url, query, follow=True)
        assert response.status_code == 200, query
        assert NUL not in response.request["QUERY_STRING"]

    actions = [name for name, _ in changelist.model_admin.get_action_choices(page.wsgi_request) if name]
    for action in actions or ["delete_selected"]:
        response = client.post(url, {"action": action, "index": "0", "_selected_action": ["abc", NUL, "1.5"]},
                               follow=True)
        assert response.status_code == 200, action
        assert any("not ids" in text for text in flash(response)), action
