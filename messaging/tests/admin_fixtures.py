"""Fixtures and helpers shared by the admin's tests (imported by test_admin*.py)."""
import itertools
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.utils import timezone

from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt

CHANGELIST = "/admin/messaging/outboundmessage/"
DASHBOARD = "/admin/messaging/outboundmessage/dashboard/"
_phones = itertools.count(1000)


def page(message_id: int) -> str:
    return f"{CHANGELIST}{message_id}/change/"


def button(message_id: int, action: str) -> str:
    return f"{CHANGELIST}{message_id}/actions/{action}/"


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def shown_ids(response) -> set[int]:
    return {message.pk for message in response.context["cl"].result_list}


@pytest.fixture(autouse=True)
def admin_static_files_and_cache(settings):
    # Tests run without collectstatic: serve the admin's CSS/JS from the apps, not from a manifest.
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    cache.clear()  # the dashboard caches instance states
    yield
    cache.clear()


def make_user(username: str, *, groups=(), superuser: bool = False):
    user = get_user_model().objects.create_user(
        username=username, password="secret-pass-123", is_staff=True, is_superuser=superuser
    )
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def superuser(db):
    return make_user("boss", superuser=True)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def make_message(status=MessageStatus.SENT, *, phone=None, text="Olá Carlos, seu pedido #123 saiu.",
                 instance="console", attempts=(), created_at=None, **fields) -> OutboundMessage:
    """A message in any state, with attempts given as (outcome, http_status, error_kind, error_text) tuples."""
    now = timezone.now()
    final = status in (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.CANCELLED)
    values = dict(
        phone=phone or f"+55119876{next(_phones):05d}",
        text=text,
        instance=instance,
        status=status,
        task_id=str(uuid.uuid4()),
        attempt_count=len(attempts),
        created_at=created_at or now,
        finished_at=now if final else None,
        sent_at=now if status == MessageStatus.SENT else None,
        evolution_message_id=f"3EB0{uuid.uuid4().hex[:16].upper()}" if status == MessageStatus.SENT else "",
    )
    message = OutboundMessage.objects.create(**{**values, **fields})
    for number, (outcome, http_status, kind, text_) in enumerate(attempts, start=1):
        SendAttempt.objects.create(
            message=message, number=number, outcome=outcome, http_status=http_status, error_kind=kind,
            error_text=text_, started_at=now, finished_at=now,
        )
    return message


SENT_FIRST_TIME = [(AttemptOutcome.SENT, 201, "", "")]
NOT_ON_WHATSAPP = [(AttemptOutcome.PERMANENT_ERROR, 400, "not_on_whatsapp", "5511987650000 is not on WhatsApp")]
FAILED_THEN_SENT = [(AttemptOutcome.TEMPORARY_ERROR, 500, "server_error", "Connection Closed"), (AttemptOutcome.SENT, 201, "", "")]


def failed_message(**fields) -> OutboundMessage:
    return make_message(
        MessageStatus.FAILED, attempts=NOT_ON_WHATSAPP, last_error_kind="not_on_whatsapp",
        last_error="5511987650000 is not on WhatsApp", **fields,
    )
