"""Evolution (the sandbox) pointed at a real console: pytest-django's live_server on 127.0.0.1, registered with
`manage.py evolution_webhooks`, and a real worker doing the work the receiver hands over."""
import httpx
import pytest
from django.core.management import call_command

DEBOUNCE_SECONDS = 1.5


@pytest.fixture
def console(sandbox_settings, live_server, celery_worker, evolution_sandbox):
    """The console registered as the sandbox's webhook on both instances; unregistered afterwards, so the
    session's sandbox posts nowhere once this test's server is gone."""
    sandbox_settings.CONSOLE_PUBLIC_URL = live_server.url
    sandbox_settings.INBOUND_DEBOUNCE_SECONDS = DEBOUNCE_SECONDS
    call_command("evolution_webhooks", *evolution_sandbox.instances)
    yield live_server
    for instance in evolution_sandbox.instances:
        httpx.post(
            f"{evolution_sandbox.url}/webhook/set/{instance}",
            headers={"apikey": evolution_sandbox.api_key},
            json={"webhook": {"enabled": False, "url": live_server.url}},
            timeout=10,
        )
