"""Production hardening, tried the way an attacker would: idle sockets against the production server command, a
start with no secret key, proxied /metrics scrapes, /health probes, and the headers every answer carries."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from config.tests.test_deploy import dockerfile_cmd
from config.tests.test_deploy_processes import Processes
from tests_support import database_url_of_the_test_database, free_port, wait_for

BASE_DIR = Path(__file__).resolve().parents[2]
TEST_SECRET_KEY = "test-only-" + "hArd3n" * 10


def production_env(tmp_path, **extra: str) -> dict[str, str]:
    """The environment the web container gets, on the test database: DEBUG off and a secret key of its own."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url_of_the_test_database(),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": TEST_SECRET_KEY,
        "DJANGO_STATIC_ROOT": str(tmp_path / "staticfiles"),
        "CONSOLE_VAR_DIR": str(tmp_path / "var"),
        **extra,
    }


def _get(url: str, timeout: float = 5):
    try:
        return httpx.get(url, timeout=timeout)
    except httpx.TransportError:
        return None


# --- slow clients ----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_clients_that_never_finish_a_request_do_not_stop_the_web_server(tmp_path, evolution_sandbox):
    # The image's CMD as the web container runs it (its default processes and threads), on a local port.
    env = production_env(
        tmp_path, EVOLUTION_API_URL=evolution_sandbox.url, EVOLUTION_API_KEY=evolution_sandbox.api_key,
        EVOLUTION_INSTANCE_NAME=evolution_sandbox.instance,
    )
    env.pop("WEB_CONCURRENCY", None)
    env.pop("WEB_THREADS", None)
    running = Processes(tmp_path, env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    idle: list[socket.socket] = []
    try:
        running.start("web", [*dockerfile_cmd(), "--bind", f"127.0.0.1:{port}"])
        assert wait_for(lambda: _get(f"{base}/health"), timeout=60, interval=0.3), running.output("web")

        # Half a request each: a request line and one header, then silence (slowloris); and the same number of
        # connections that send nothing at all.
        for index in range(50):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            if index % 2 == 0:
                client.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            idle.append(client)
        time.sleep(1)  # every one of them accepted and handed to the server's workers

        for _ in range(3):
            started = time.perf_counter()
            answer = _get(f"{base}/health", timeout=5)
            elapsed = time.perf_counter() - started
            assert answer is not None and answer.status_code in (200, 503), running.output("web")[-2000:]
            assert elapsed < 1, f"/health took {elapsed:.2f} s with 50 idle connections open"
    finally:
        for client in idle:
            client.close()
        running.stop_all()
