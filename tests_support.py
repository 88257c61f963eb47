"""What the tests and the benchmarks share: the sandbox control client, `wait_for`, `free_port`, the URL of the
test database, and `take_waiting_tasks` (what a queue holds).

The Evolution sandbox runs two ways in the tests, and one client drives both through its /_sandbox endpoints:
- `start_sandbox_process()`: `manage.py evolution_sandbox` in a subprocess, as users start it (the root
  conftest's `evolution_sandbox` fixture, used by the console's own tests);
- `start_sandbox_in_thread()`: the same aiohttp app in a thread of the test process (the `sandbox_in_thread`
  and `sandbox` fixtures of evolution/tests, which check the sandbox's own contract).

Nothing here imports Django at module level, so the benchmarks can import it before Django is set up.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent
CONTROL_TIMEOUT_SECONDS = 10.0


class SandboxControl:
    """A running Evolution sandbox: its address, key and instances, and the calls that steer it."""

    def __init__(self, *, url: str, api_key: str, instances: list[str], on_stop: Callable[[], None] | None = None):
        self.url = url
        self.api_key = api_key
        self.instances = list(instances)
        self._on_stop = on_stop

    @property
    def instance(self) -> str:
        """The default instance (the first one)."""
        return self.instances[0]

    @property
    def other_instance(self) -> str:
        """A second instance, for multi-instance behaviour."""
        return self.instances[1]

    def reset(self) -> None:
        """Forget sent messages and failure counters; instances open, latency back to its start value."""
        self._control("POST", "/_sandbox/reset")

    def sent_messages(self, instance: str | None = None) -> list[dict]:
        return self._control("GET", "/_sandbox/messages", params={"instance": instance} if instance else None)

    def set_state(self, state: str, instance: str | None = None) -> None:
        self._control("POST", f"/_sandbox/instances/{instance or self.instance}/state", json={"state": state})

    def set_latency(self, latency_ms: int) -> None:
        self._control("POST", "/_sandbox/latency", json={"latency_ms": latency_ms})

    def set_receipts(self, **delays: float | None) -> dict:
        """Time the receipts of later sends: ``delivered_after`` (seconds from a send to its DELIVERY_ACK) and/or
        ``read_after`` (from that to its READ; None: never read). reset() puts back the start values."""
        return self._control("POST", "/_sandbox/receipts", json=delays)

    def inbound(self, *, number: str, text: str, push_name: str = "", instance: str | None = None) -> dict:
        """Make a contact "write" to the instance: emits messages.upsert to the webhook and waits for it."""
        body = {"instance": instance or self.instance, "number": number, "text": text, "push_name": push_name}
        return self._control("POST", "/_sandbox/inbound", json=body)

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/_sandbox/messages", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self._on_stop is not None:
            self._on_stop()
            self._on_stop = None

    def _control(self, method: str, path: str, **kwargs):
        response = httpx.request(method, self.url + path, timeout=CONTROL_TIMEOUT_SECONDS, **kwargs)
        response.raise_for_status()
        return response.json()


def start_sandbox_process(
    *, api_key: str, instances: list[str], hang_seconds: float, port: int | None = None,
    read_after: float | None = None,
) -> SandboxControl:
    """`manage.py evolution_sandbox` on 127.0.0.1, returned once it answers; `.stop()` ends the process.

    Its sends are delivered at once but never read unless ``read_after`` (or ``set_receipts``) says otherwise:
    a READ a test did not ask for would change the receipts and callbacks it counts."""
    port = port or free_port()
    command = [
        sys.executable, "manage.py", "evolution_sandbox", "--host", "127.0.0.1", "--port", str(port),
        "--api-key", api_key, "--instances", ",".join(instances), "--hang-seconds", str(hang_seconds), "--quiet",
        "--read-after", "never" if read_after is None else str(read_after),
    ]
    process = subprocess.Popen(command, cwd=ROOT)

    def terminate() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    sandbox = SandboxControl(url=f"http://127.0.0.1:{port}", api_key=api_key, instances=instances, on_stop=terminate)
    try:
        wait_for(lambda: process.poll() is None and sandbox.answers(), timeout=20, interval=0.1, what="sandbox answers")
    except BaseException:
        sandbox.stop()
        raise
    return sandbox


def start_sandbox_in_thread(**options) -> SandboxControl:
    """The sandbox in a background thread of this process; `options` are run_in_thread's (api_key, instances,
    latency_ms, hang_seconds, quiet, delivered_after, read_after). `.stop()` stops the thread."""
    from evolution.sandbox.in_thread import run_in_thread

    running = run_in_thread(**options)
    return SandboxControl(url=running.url, api_key=running.api_key, instances=running.instances, on_stop=running.stop)


def wait_for(predicate, *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll until ``predicate()`` is truthy and return its value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_of_the_test_database() -> str:
    """pytest-django's test database (test_<name>) as a DATABASE_URL, for subprocesses started by a test."""
    from django.db import connection

    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def take_waiting_tasks(queue_name: str) -> list[tuple[dict, object]]:
    """Take every task waiting in a queue of the console's broker: (its headers, its one argument) each."""
    import json

    from config.celery import app

    taken = []
    with app.connection_for_write() as connection:
        queue = app.amqp.queues[queue_name].bind(connection.default_channel)
        queue.declare()
        while (task := queue.get(no_ack=True)) is not None:
            taken.append((task.headers, json.loads(task.body)[0][0]))
    return taken
