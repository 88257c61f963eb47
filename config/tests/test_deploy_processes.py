"""The image's entry commands, run here as the containers run them, against the local PostgreSQL and Redis.

gunicorn (the Dockerfile's CMD), the worker and beat (docker-compose.yml's commands) start as subprocesses on the
test database; a message posted to gunicorn is sent by that worker through the sandbox, and beat's sweeps reach
the worker too. Everything is bounded and killed at the end.
"""
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django_celery_results.models import TaskResult

from access.models import ApiClient
from config.celery import app
from config.tests.test_deploy import command_of, compose_with_defaults, dockerfile_cmd
from tests_support import database_url_of_the_test_database, free_port, wait_for

BASE_DIR = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "entry-commands-token"

pytestmark = pytest.mark.django_db(transaction=True)


class Processes:
    """Subprocesses with their output in files (a full pipe would block them); all stopped at the end."""

    def __init__(self, directory: Path, env: dict):
        self.directory, self.env, self.running = directory, env, []

    def start(self, name: str, command: list[str], **extra_env: str) -> subprocess.Popen:
        log = open(self.directory / f"{name}.log", "w")
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env={**self.env, **extra_env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.running.append((process, log))
        return process

    def output(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process, _ in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, log in self.running:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            log.close()


@pytest.fixture
def processes(tmp_path, evolution_sandbox):
    evolution_sandbox.reset()
    env = {
        **os.environ,
        # Like the image's PATH=/opt/venv/bin:...: gunicorn and celery are the virtualenv's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url_of_the_test_database(),  # pytest-django's test_<name> database, not the developer's
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "DJANGO_DEBUG": "false",
        "DJANGO_STATIC_ROOT": str(tmp_path / "staticfiles"),
        "CONSOLE_VAR_DIR": str(tmp_path / "var"),
        "LOG_FORMAT": "json",
        "WEB_CONCURRENCY": "2",
        "EVOLUTION_API_URL": evolution_sandbox.url,
        "EVOLUTION_API_KEY": evolution_sandbox.api_key,
        "EVOLUTION_INSTANCE_NAME": evolution_sandbox.instance,
        "METRICS_TOKEN": METRICS_TOKEN,
        "METRICS_KEY_PREFIX": f"{settings.METRICS_KEY_PREFIX}:entry:{uuid.uuid4().hex}",  # deleted with the run's keys
        "MESSAGING_DISPATCH_INTERVAL_SECONDS": "1",
    }
    app.control.purge()
    running = Processes(tmp_path, env)
    try:
        yield running
    finally:
        running.stop_all()
        app.control.purge()


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_gunicorn_worker_and_beat_run_as_in_the_containers_and_send_a_message(processes, tmp_path):
    services = compose_with_defaults()["services"]

    # The image's build step, then its CMD with a local port instead of 0.0.0.0:8000.
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=BASE_DIR, env=processes.env,
        capture_output=True, text=True, timeout=180,
    )
    assert collect.returncode == 0, collect.stderr
    assert (tmp_path / "staticfiles" / "admin" / "css" / "base.css").is_file()
    port = free_port()
    web = processes.start("web", [*dockerfile_cmd(), "--bind", f"127.0.0.1:{port}"])

    worker_name = f"entry-{uuid.uuid4().hex[:8]}@localhost"
    worker = processes.start("worker", [*command_of(services["worker"]), "--hostname", worker_name])
    beat = processes.start("beat", command_of(services["beat"]))

    base = f"http://127.0.0.1:{port}"
    health = wait_for(lambda: _get(f"{base}/health"), timeout=60, interval=0.3)
    assert health.status_code == 200, health.text
    assert health.json()["checks"]["database"]["status"] == "ok"
    assert _get(f"{base}/static/admin/css/base.css").status_code == 200  # whitenoise, from gunicorn
    assert subprocess.run([sys.executable, "config/healthcheck.py", f"{base}/health"], cwd=BASE_DIR, timeout=30).returncode == 0

    assert wait_for(lambda: app.control.ping(destination=[worker_name], timeout=1), timeout=60, interval=0.5)

    _, key = ApiClient.objects.create_client(name="entry")  # as an integrator calls it
    headers = {"Authorization": f"Bearer {key}"}
    created = httpx.post(f"{base}/messages", json={"phone": "+55 11 98765-4321", "message": "Hola"}, headers=headers, timeout=10)
    assert created.status_code == 202, created.text
    message_url = f"{base}/messages/{created.json()['id']}"
    sent = wait_for(
        lambda: (body := httpx.get(message_url, headers=headers, timeout=10).json())["status"] == "sent" and body,
        timeout=60, interval=0.3,
    )
    assert sent["attempts"][0]["outcome"] == "sent"

    metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10).text
    assert 'console_messages_sent_total{instance="console"} 1.0' in metrics

    # beat publishes its sweeps every few seconds and this worker runs them.
    assert wait_for(lambda: TaskResult.objects.filter(task_name="dispatch_due_messages").exists(), timeout=60, interval=0.5)
    assert "beat: Starting" in processes.output("beat")

    for name, process in (("web", web), ("worker", worker), ("beat", beat)):
        assert process.poll() is None, processes.output(name)

    # LOG_FORMAT=json: the worker's send lines carry the ids as fields.
    sends = [line for line in json_lines(processes.output("worker")) if line.get("logger") == "messaging" and "sent" in line["msg"]]
    assert sends and sends[0]["message"] == sent["id"] and sends[0]["attempt"] == 1 and sends[0]["task_id"]
    access = [line for line in json_lines(processes.output("web")) if line.get("logger") == "gunicorn.access"]
    assert any(line.get("path") == "/messages" and str(line.get("status")) == "202" for line in access)


def test_the_healthcheck_fails_when_nothing_listens():
    result = subprocess.run(
        [sys.executable, "config/healthcheck.py", f"http://127.0.0.1:{free_port()}/health"],
        cwd=BASE_DIR, capture_output=True, timeout=30,
    )
    assert result.returncode == 1


def _get(url: str):
    try:
        return httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None
