"""Operators and integrators run the stuck-work sweep on demand, in the admin and the API, and see what it did."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from messaging.models import MessageStatus, OutboundMessage
from messaging.roles import ROLES
from messaging.tests.admin_fixtures import (  # noqa: F401  (fixtures)
    CHANGELIST,
    admin_static_files_and_cache,
    make_message,
    make_user,
)

pytestmark = pytest.mark.django_db

SWEEP = CHANGELIST + "sweep/"
ENDPOINT = "/maintenance/requeue-stuck"


@pytest.fixture
def stuck(settings):
    """One message queued long ago whose publish was lost, and one sent: only the first is stuck."""
    long_ago = timezone.now() - timedelta(seconds=settings.MESSAGING_STUCK_AFTER_SECONDS + 60)
    lost = make_message(MessageStatus.QUEUED, updated_at=long_ago)
    make_message(MessageStatus.SENT)
    return lost


def flash(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_operators_hold_the_requeue_permission_and_support_does_not():
    assert "requeue_outboundmessage" in ROLES["Operators"]
    assert "requeue_outboundmessage" not in ROLES["Support"]
    assert Permission.objects.filter(codename="requeue_outboundmessage", content_type__app_label="messaging").exists()


# --- the admin ---------------------------------------------------------------------------------------------------


def test_the_button_runs_the_sweep_and_says_what_it_requeued(client, stuck):
    client.force_login(make_user("op", groups=["Operators"]))
    assert "Run the stuck-work sweep now" in client.get(CHANGELIST).content.decode()
    response = client.post(SWEEP, follow=True)
    assert flash(response) == ["Stuck-work sweep: re-queued 1 message queued but never picked up."]
    stuck.refresh_from_db()
    assert stuck.updated_at > timezone.now() - timedelta(seconds=30)  # taken by the sweep


def test_the_action_runs_the_same_sweep_whatever_is_selected(client, stuck):
    client.force_login(make_user("op", groups=["Operators"]))
    other = OutboundMessage.objects.exclude(pk=stuck.pk).get()
    response = client.post(CHANGELIST, {"action": "run_stuck_sweep", "_selected_action": [other.pk]}, follow=True)
    assert flash(response) == ["Stuck-work sweep: re-queued 1 message queued but never picked up."]


def test_a_sweep_with_nothing_stuck_says_so(client, settings):
    client.force_login(make_user("op", groups=["Operators"]))
    response = client.post(SWEEP, follow=True)
    assert flash(response) == [
        "Stuck-work sweep: nothing was stuck (it takes work whose publish failed at once, work the broker lost after "
        "30 s (when the send queues are empty), the sends of a worker whose heartbeat stopped, and anything else left "
        f"for more than {settings.MESSAGING_STUCK_AFTER_SECONDS:g} s; a live worker's send is never taken)."
    ]


def test_support_sees_neither_the_button_nor_the_action_and_cannot_post_the_sweep(client, stuck):
    client.force_login(make_user("helper", groups=["Support"]))
    page = client.get(CHANGELIST)
    assert "Run the stuck-work sweep now" not in page.content.decode()
    assert "run_stuck_sweep" not in page.context["action_form"].fields["action"].choices.__repr__()
    assert client.post(SWEEP).status_code == 403
    stuck.refresh_from_db()
    assert stuck.updated_at < timezone.now() - timedelta(seconds=60)  # untouched


# --- the API -----------------------------------------------------------------------------------------------------


def test_staff_with_the_permission_run_the_sweep_and_get_counts(stuck, settings):
    response = token_client(make_user("op", groups=["Operators"])).post(ENDPOINT)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "success": True,
        "requeued": {"queued": 1, "retrying": 0, "interrupted": 0, "failed": 0},
        "total": 1,
        "stuck_after_seconds": settings.MESSAGING_STUCK_AFTER_SECONDS,
    }


def test_a_superuser_may_run_it():
    assert token_client(make_user("boss", superuser=True)).post(ENDPOINT).status_code == 200


@pytest.mark.parametrize("who", ["operator not staff", "staff without a role", "support staff"])
def test_anyone_else_gets_a_403_and_nothing_is_requeued(stuck, who):
    if who == "operator not staff":
        user = make_user("op", groups=["Operators"])
        user.is_staff = False
        user.save()
    elif who == "staff without a role":
        user = make_user("staff")
    else:
        user = make_user("helper", groups=["Support"])
    response = token_client(user).post(ENDPOINT)
    assert response.status_code == 403
    assert response.json()["success"] is False
    stuck.refresh_from_db()
    assert stuck.updated_at < timezone.now() - timedelta(seconds=60)


def test_without_credentials_it_is_a_401():
    assert APIClient().post(ENDPOINT).status_code == 401


def test_it_is_post_only():
    assert token_client(make_user("boss", superuser=True)).get(ENDPOINT).status_code == 405
