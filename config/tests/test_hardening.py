"""Production hardening, tried the way an attacker would: idle sockets against the production server command, a
start with no secret key, proxied /metrics scrapes, /health probes, and the headers every answer carries."""
import http.client
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

        # Half a request each (slowloris): a request line and one header, then silence. Each one holds a thread.
        for _ in range(50):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
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


@pytest.mark.django_db(transaction=True)
def test_the_production_server_keeps_a_clients_connection_for_its_next_request(tmp_path, evolution_sandbox):
    # An API client (or a proxy that keeps upstream connections) sends request after request on one connection;
    # a server that closes it after each answer costs both sides a new TCP connection per request.
    env = production_env(tmp_path, EVOLUTION_API_URL=evolution_sandbox.url, EVOLUTION_API_KEY=evolution_sandbox.api_key,
                         EVOLUTION_INSTANCE_NAME=evolution_sandbox.instance)
    env.pop("WEB_CONCURRENCY", None)
    env.pop("WEB_THREADS", None)
    running = Processes(tmp_path, env)
    port = free_port()
    try:
        running.start("web", [*dockerfile_cmd(), "--bind", f"127.0.0.1:{port}"])
        assert wait_for(lambda: _get(f"http://127.0.0.1:{port}/health"), timeout=60, interval=0.3), running.output("web")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for _ in range(3):
            connection.request("GET", "/health")
            answer = connection.getresponse()
            answer.read()
            assert answer.status in (200, 503)
            assert answer.getheader("Connection", "").lower() != "close"
        assert connection.sock is not None  # still the first connection: http.client opens a new one only when closed
        local_port = connection.sock.getsockname()[1]
        connection.request("GET", "/health")
        connection.getresponse().read()
        assert connection.sock.getsockname()[1] == local_port
        connection.close()
    finally:
        running.stop_all()


# --- /health ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_public_health_says_only_down_and_answers_within_a_second_when_everything_is_down(tmp_path):
    # PostgreSQL refuses, the broker refuses, and Evolution accepts the connection but never answers.
    never_answers = socket.socket()
    never_answers.bind(("127.0.0.1", 0))
    never_answers.listen(16)
    dead_database, dead_broker = free_port(), free_port()
    env = production_env(
        tmp_path,
        DATABASE_URL=f"postgres://console_role:s3cret@127.0.0.1:{dead_database}/console_db",
        REDIS_URL=f"redis://127.0.0.1:{dead_broker}/0",
        EVOLUTION_API_URL=f"http://127.0.0.1:{never_answers.getsockname()[1]}",
        WEB_CONCURRENCY="1",
    )
    running = Processes(tmp_path, env)
    port = free_port()
    try:
        running.start("web", [*dockerfile_cmd(), "--bind", f"127.0.0.1:{port}"])
        assert wait_for(lambda: _get(f"http://127.0.0.1:{port}/health"), timeout=60, interval=0.3), running.output("web")

        started = time.perf_counter()
        answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        elapsed = time.perf_counter() - started

        assert answer.status_code == 503
        assert answer.json() == {
            "status": "error",
            "checks": {"database": {"status": "error"}, "broker": {"status": "error"}, "evolution": {"status": "error"}},
            "paused_instances": 0,  # Redis, where pauses are kept, is down too: none known
        }
        for secret in ("console_role", str(dead_database), str(dead_broker), "127.0.0.1", "console_db"):
            assert secret not in answer.text
        assert elapsed < 1, f"/health took {elapsed:.2f} s"
        # The container's HEALTHCHECK still counts a 503 from /health as "this process serves HTTP".
        healthcheck = subprocess.run([sys.executable, "config/healthcheck.py", f"http://127.0.0.1:{port}/health"],
                                     cwd=BASE_DIR, timeout=30)
        assert healthcheck.returncode == 0
    finally:
        running.stop_all()
        never_answers.close()


@pytest.fixture
def people(db):
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    users = get_user_model().objects
    staff = users.create_user("health-staff", password="x", is_staff=True)
    someone = users.create_user("health-someone", password="x")
    return {"staff": staff, "staff_token": Token.objects.create(user=staff).key,
            "someone_token": Token.objects.create(user=someone).key}


def test_health_details_are_for_staff_sessions_and_tokens_only(client, sandbox_settings, people):
    def checks(**headers):
        response = client.get("/health", **headers)
        assert response.status_code == 200, response.content
        return response.json()["checks"]

    for anonymous in (checks(), checks(HTTP_AUTHORIZATION=f"Token {people['someone_token']}"),
                      checks(HTTP_AUTHORIZATION="Token not-a-token")):
        assert anonymous == {"database": {"status": "ok"}, "broker": {"status": "ok"}, "evolution": {"status": "ok"}}

    staff_by_token = checks(HTTP_AUTHORIZATION=f"Token {people['staff_token']}")
    assert staff_by_token["evolution"]["detail"] == 'instance "console" is open'
    assert all("latency_ms" in check for check in staff_by_token.values())

    client.force_login(people["staff"], backend="access.permission_cache.CachedPermissionsBackend")  # as the admin logs in
    assert checks()["database"]["detail"] == "postgresql"


def test_health_names_a_part_that_does_not_answer_in_time(client, sandbox_settings, people):
    # An Evolution API that accepts the connection and never answers.
    never_answers = socket.socket()
    never_answers.bind(("127.0.0.1", 0))
    never_answers.listen(16)
    sandbox_settings.EVOLUTION_API_URL = f"http://127.0.0.1:{never_answers.getsockname()[1]}"
    try:
        started = time.perf_counter()
        response = client.get("/health", HTTP_AUTHORIZATION=f"Token {people['staff_token']}")
        elapsed = time.perf_counter() - started
    finally:
        never_answers.close()

    assert elapsed < 1, f"/health took {elapsed:.2f} s"
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["evolution"]["status"] == "error" and checks["database"]["status"] == "ok"
    assert "ReadTimeout" in checks["evolution"]["detail"] or "no answer within" in checks["evolution"]["detail"]


# --- /metrics behind a proxy -------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [
    {"HTTP_FORWARDED": "for=203.0.113.9;proto=https"},  # RFC 7239: what Caddy, Envoy and nginx configs may send
    {"HTTP_X_FORWARDED_FOR": "203.0.113.9"},
    {"HTTP_X_REAL_IP": "203.0.113.9"},
])
def test_without_a_token_metrics_refuse_whatever_came_through_a_proxy_on_this_host(client, settings, db, header):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200  # a scraper calling directly
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", **header).status_code == 403


# --- headers: Content-Security-Policy and no-store --------------------------------------------------------------


def test_every_page_carries_a_content_security_policy_that_refuses_foreign_and_injected_scripts(client, db):
    for path in ("/admin/login/", "/health", "/messages", "/no-such-path"):
        policy = client.get(path).headers.get("Content-Security-Policy", "")
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"].startswith("'self'") and "unsafe-inline" not in directives["script-src"], path
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'", path


def test_the_admins_inline_script_is_allowed_by_its_hash_and_swagger_ui_may_run_its_own(client, db):
    import base64
    import hashlib
    import re

    page = client.get("/admin/login/")
    inline = re.findall(r"<script>(.*?)</script>", page.content.decode(), flags=re.S)
    assert inline, "the admin's time-zone script"
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in page.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" in client.get("/docs").headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]


def test_api_answers_with_phones_and_texts_are_not_stored_by_caches_and_static_files_still_are(client, db):
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_superuser("cache-reader", password="x")
    token = Token.objects.create(user=user).key
    for path in ("/messages", "/health", "/no-such-path"):
        assert client.get(path, HTTP_AUTHORIZATION=f"Token {token}").headers.get("Cache-Control") == "no-store", path
    static = client.get("/static/admin/css/base.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")


def test_the_browsable_api_with_an_admin_session_is_not_stored_by_caches_either(client, db):
    from django.contrib.auth import get_user_model

    from messaging.models import OutboundMessage

    OutboundMessage.objects.create(phone="+5511987650001", text="Seu código é 4411", instance="console")
    client.force_login(get_user_model().objects.create_superuser("cache-browser", password="x"))

    page = client.get("/messages", HTTP_ACCEPT="text/html")

    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert "5511987650001" in page.content.decode()
    assert page.headers.get("Cache-Control") == "no-store"


# --- no secret key, no start -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "django-insecure-dev-key-change-me-in-production-0123456789abcdef"])
def test_with_debug_off_the_console_refuses_to_start_without_a_secret_key_of_its_own(tmp_path, key):
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings",
           "CONSOLE_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "false"}
    if key is not None:
        env["DJANGO_SECRET_KEY"] = key

    check = subprocess.run([sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True,
                           text=True, timeout=120)
    web = subprocess.run([*dockerfile_cmd(), "--bind", f"127.0.0.1:{free_port()}"], cwd=BASE_DIR, env=env,
                         capture_output=True, text=True, timeout=120)

    assert check.returncode != 0 and "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in check.stderr
    assert web.returncode != 0 and "DJANGO_SECRET_KEY" in web.stderr


def test_development_still_starts_with_the_repositorys_key(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "CONSOLE_VAR_DIR": str(tmp_path),
           "DJANGO_DEBUG": "true"}
    check = subprocess.run([sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stderr
