"""Fixtures shared by every app's tests: the real Celery worker and the Evolution sandbox over HTTP."""
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parent


@pytest.fixture(scope="session", autouse=True)
def _tests_use_the_real_services():
    # The guarantees under test (conditional UPDATEs, on_commit, many workers) are PostgreSQL's and Redis's.
    assert django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), "run the tests with `make test`"
    assert django_settings.CELERY_BROKER_URL.startswith("redis"), "run the tests with `make test`"


@dataclass
class SandboxProcess:
    """The Evolution sandbox started the way users start it (`manage.py evolution_sandbox`), on 127.0.0.1."""

    url: str
    api_key: str
    instance: str
    other_instance: str = "sales"  # a second instance, for multi-instance behaviour

    def reset(self) -> None:
        httpx.post(f"{self.url}/_sandbox/reset", timeout=10).raise_for_status()

    def sent_messages(self) -> list[dict]:
        return httpx.get(f"{self.url}/_sandbox/messages", timeout=10).json()

    def set_state(self, state: str, instance: str | None = None) -> None:
        name = instance or self.instance
        httpx.post(f"{self.url}/_sandbox/instances/{name}/state", json={"state": state}, timeout=10).raise_for_status()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def evolution_sandbox():
    port = _free_port()
    sandbox = SandboxProcess(url=f"http://127.0.0.1:{port}", api_key="test-key", instance="console")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "evolution_sandbox", "--host", "127.0.0.1", "--port", str(port),
         "--api-key", sandbox.api_key, "--instances", f"{sandbox.instance},{sandbox.other_instance}", "--hang-seconds", "3", "--quiet"],
        cwd=ROOT,
    )
    try:
        wait_for(lambda: _answers(sandbox.url), timeout=20, interval=0.1)
        yield sandbox
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_sandbox/messages", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def sandbox_settings(settings, evolution_sandbox):
    """Point the console at the sandbox, with fast retries so the retry paths run in seconds."""
    evolution_sandbox.reset()
    settings.EVOLUTION_API_URL = evolution_sandbox.url
    settings.EVOLUTION_API_KEY = evolution_sandbox.api_key
    settings.EVOLUTION_INSTANCE_NAME = evolution_sandbox.instance
    settings.EVOLUTION_INSTANCES = [evolution_sandbox.instance]
    settings.MESSAGING_RETRY_DELAY_SECONDS = 0.2
    return settings


@pytest.fixture
def celery_worker(sandbox_settings, transactional_db):
    """A real Celery worker consuming from Redis in a thread of this process, so it sees the test database."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import MAINTENANCE_QUEUE, TRANSACTIONAL_QUEUE, app

    app.control.purge()
    with start_worker(
        app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        queues=[TRANSACTIONAL_QUEUE, MAINTENANCE_QUEUE],
        shutdown_timeout=15,
    ) as worker:
        yield worker
    app.control.purge()


def wait_for(predicate, *, timeout: float = 20.0, interval: float = 0.05):
    """Poll until ``predicate()`` is truthy and return its value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
