"""`manage.py simulate_inbound` drives the sandbox (a real `manage.py evolution_sandbox` process) to post replies to
a live console, and `evolution_sandbox --register-webhooks` (what `make dev` runs) points the sandbox at it."""
import io
import os
import subprocess
import sys

import httpx
import pytest
from django.core.management import CommandError, call_command

from inbound.models import Batch, BatchStatus, InboundMessage, InstanceWebhook
from tests_support import ROOT, database_url_of_the_test_database, free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def simulate(*args: str) -> str:
    out = io.StringIO()
    call_command("simulate_inbound", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_a_burst_of_simulated_messages_is_one_batch_in_order(console):
    out = simulate("--phone", "+5511987650301", "--text", "hola", "--text", "quiero cambiar la cita",
                   "--count", "3", "--every", "0.2", "--push-name", "Ana")

    assert out.count("the console answered 200") == 3
    batch = wait_for(lambda: Batch.objects.filter(phone="+5511987650301", status=BatchStatus.DONE).first(),
                     what="the batch processed")
    texts = list(batch.messages.order_by("received_at", "id").values_list("text", flat=True))
    assert texts == ["hola", "quiero cambiar la cita", "hola"]
    assert batch.message_count == 3 and Batch.objects.count() == 1
    assert set(InboundMessage.objects.values_list("push_name", "instance")) == {("Ana", "console")}


def test_it_writes_to_the_instance_it_is_given(console, evolution_sandbox):
    simulate("--phone", "+5511987650302", "--text", "oi", "--instance", evolution_sandbox.other_instance)

    message = wait_for(lambda: InboundMessage.objects.first(), what="stored")
    assert (message.instance, message.phone, message.text) == (evolution_sandbox.other_instance, "+5511987650302", "oi")


def test_it_fails_when_the_message_reached_no_console(sandbox_settings, evolution_sandbox):
    for instance in evolution_sandbox.instances:  # the session's sandbox may still point at an earlier test's console
        httpx.post(f"{evolution_sandbox.url}/webhook/set/{instance}", headers={"apikey": evolution_sandbox.api_key},
                   json={"webhook": {"enabled": False, "url": "http://127.0.0.1:9"}}, timeout=10)

    with pytest.raises(CommandError, match="1 of 1 messages did not reach the console"):
        simulate("--phone", "+5511987650303", "--text", "hola")


def test_it_refuses_anything_but_the_sandbox(sandbox_settings, live_server):
    sandbox_settings.EVOLUTION_API_URL = live_server.url  # answers /_sandbox/... 404, as Evolution API does
    with pytest.raises(CommandError, match="is not the Evolution sandbox"):
        simulate("--phone", "+5511987650304", "--text", "hola")

    sandbox_settings.EVOLUTION_API_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(CommandError, match="does not answer"):
        simulate("--phone", "+5511987650304", "--text", "hola")


def test_it_refuses_an_instance_the_sandbox_does_not_have(sandbox_settings):
    with pytest.raises(CommandError, match="no instance 'nowhere'"):
        simulate("--phone", "+5511987650305", "--text", "hola", "--instance", "nowhere")


def test_the_sandbox_registers_the_consoles_webhook_when_it_starts_as_make_dev_runs_it(
    sandbox_settings, live_server, celery_worker
):
    # `make dev`: the Procfile's sandbox line with CONSOLE_PUBLIC_URL pointing at the web process.
    port = free_port()
    sandbox_settings.EVOLUTION_API_URL = f"http://127.0.0.1:{port}"
    sandbox_settings.EVOLUTION_API_KEY = "dev-key"
    sandbox_settings.INBOUND_DEBOUNCE_SECONDS = 1
    env = {**os.environ, "DATABASE_URL": database_url_of_the_test_database(), "PYTHONUNBUFFERED": "1",
           "EVOLUTION_API_URL": f"http://127.0.0.1:{port}", "EVOLUTION_API_KEY": "dev-key",
           "CONSOLE_PUBLIC_URL": live_server.url, "EVOLUTION_INSTANCE_NAME": "console", "EVOLUTION_INSTANCES": ""}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "evolution_sandbox", "--host", "127.0.0.1", "--port", str(port),
         "--register-webhooks"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        registered = wait_for(lambda: InstanceWebhook.objects.filter(instance="console", registered_at__isnull=False)
                              .first(), timeout=30, what="webhook registered")
        hook = httpx.get(f"http://127.0.0.1:{port}/webhook/find/console", headers={"apikey": "dev-key"}).json()
        simulate("--phone", "+5511987650306", "--text", "hola")
        wait_for(lambda: Batch.objects.filter(phone="+5511987650306", status=BatchStatus.DONE).exists(),
                 what="batch processed")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)

    assert hook["url"] == f"{live_server.url}/webhooks/evolution/console" and hook["enabled"]
    assert hook["headers"] == {"x-console-webhook-secret": registered.secret}
    assert f"console: webhook registered at {live_server.url}/webhooks/evolution/console" in output


def test_the_sandbox_registers_nothing_when_the_console_talks_to_another_evolution(transactional_db):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url_of_the_test_database(), "PYTHONUNBUFFERED": "1",
           "EVOLUTION_API_URL": "http://evolution.example:8080", "CONSOLE_PUBLIC_URL": "http://127.0.0.1:8000"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "evolution_sandbox", "--port", str(port), "--register-webhooks"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        wait_for(lambda: lines.append(process.stdout.readline()) or "not registering" in lines[-1], timeout=30,
                 what="the sandbox says why it registers nothing")
    finally:
        process.terminate()
        process.communicate(timeout=10)

    assert "EVOLUTION_API_URL is http://evolution.example:8080, not this sandbox" in lines[-1]
    assert not InstanceWebhook.objects.exists()
