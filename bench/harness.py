"""What every benchmark shares: its own database and Redis DB, free ports, processes that always stop, and the
min/median/max table.

The benchmarks never touch the databases the console or the tests use: they default to PostgreSQL database
``console_bench`` and Redis DB 9, and take ``BENCH_DATABASE_URL`` / ``BENCH_REDIS_URL`` to point elsewhere.
Like the tests, they are tools around the console, so they read the environment themselves.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from tests_support import free_port, wait_for  # noqa: F401  (the benchmarks use them as harness.*)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"  # logs of the processes a run started (ignored by git)
PYTHON = sys.executable
BIN = Path(PYTHON).parent

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/console_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
INSTANCE = "console"
API_KEY = "bench-key"
# The worker command the README tells users to run; a benchmark starts WORKER_PROCESSES of them.
WORKER_PROCESSES = int(os.environ.get("BENCH_WORKER_PROCESSES", "2"))
WORKER_CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "16"))
WORKER_POOL = os.environ.get("BENCH_WORKER_POOL", "threads")
# The web server as the Dockerfile runs it (config/gunicorn.py: WEB_CONCURRENCY sync workers); the bench adds --bind.
GUNICORN_ARGS = os.environ.get("BENCH_GUNICORN_ARGS", "--config python:config.gunicorn").split()


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every process a benchmark starts: production settings, bench databases."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        DJANGO_DEBUG="false",
        DJANGO_SETTINGS_MODULE="config.settings",
        EVOLUTION_API_KEY=API_KEY,
        EVOLUTION_INSTANCE_NAME=INSTANCE,
        PATH=f"{BIN}:{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        # Production settings refuse to start with DEBUG off and no key of their own.
        DJANGO_SECRET_KEY=env.get("DJANGO_SECRET_KEY") or "bench-only-secret-key-never-used-in-production-0123456789",
        # One token posts tens of thousands of requests (and hundreds of thousands of messages) a minute here:
        # counted by both throttles as in production, so their Redis round trips are measured, never refused by
        # them (the defaults, 6000 requests and 600 messages a minute, would).
        API_THROTTLE_RATE="10000000/min",
        API_MESSAGE_RATE="100000000/min",
        # Benchmarks measure the console, not a WhatsApp number's safe pace: pacing off, whatever the caller's
        # environment sets (the "drain with pacing off").
        EVOLUTION_RATE_LIMIT="",
        EVOLUTION_RATE_LIMITS="",
        EVOLUTION_SEND_JITTER_SECONDS="0",
    )
    env.update(extra)
    return env


def setup_django(**extra: str) -> None:
    """Configure Django in this process against the bench databases (to prepare data and check results)."""
    os.environ.update(child_env(**extra))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Processes:
    """Start processes in their own process groups; ``stop_all`` ends every one of them (and their children)."""

    def __init__(self, label: str):
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.label = label
        self.started: list[subprocess.Popen] = []

    def log(self, name: str) -> Path:
        """Where the process started as ``name`` writes its output."""
        return RESULTS / f"{self.label}-{name}.log"

    def start(self, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        log = open(self.log(name), "wb")
        process = subprocess.Popen(
            argv, cwd=ROOT, env=child_env(**env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 20) -> None:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # stragglers in the group (gunicorn workers, pool children)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self) -> None:
        for process in reversed(self.started):
            self.stop(process)
        self.started.clear()


@contextmanager
def processes(label: str):
    group = Processes(label)
    try:
        yield group
    finally:
        group.stop_all()


def manage(*args: str, **env: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=child_env(**env), check=True,
                   stdout=subprocess.DEVNULL, timeout=300)


def prepare_database() -> None:
    """Create the bench database if needed and bring it to the current migrations."""
    import psycopg

    url = urlparse(DATABASE_URL)
    name = url.path.lstrip("/")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    manage("migrate", "--noinput")


def wait_until_answered(log: Path, *, path: str, sent: int, still_for: float = 5, timeout: float = 120) -> None:
    """Wait until gunicorn has answered the ``sent`` POSTs to ``path`` a load run sent (its access log, ``log``, has
    a line for each), before the tables are emptied for the measured run: a warm-up request still in flight then
    deadlocked with the ``TRUNCATE`` or stored its row after it. A request wrk cut off before its body was sent
    never reaches the application, so the count may stop short: when it has stood still for ``still_for``
    seconds, nothing more is coming."""
    line = f'"POST {path} HTTP/1.1"'.encode()
    deadline = time.monotonic() + timeout
    answered, changed_at = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = log.read_bytes().count(line)
        if count >= sent:
            return
        if count != answered:
            answered, changed_at = count, time.monotonic()
        elif time.monotonic() - changed_at > still_for:
            return
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn answered {answered} of the {sent} requests to {path} within {timeout}s")


def reset_state() -> None:
    """Empty the message tables, the task results and the bench Redis queues (only ours)."""
    from django.db import connection
    from django_celery_results.models import TaskResult

    from messaging.models import OutboundMessage, SendAttempt

    tables = [SendAttempt._meta.db_table, OutboundMessage._meta.db_table, TaskResult._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    redis_client().delete("transactional_messages", "bulk_messages", "maintenance", "unacked", "unacked_index", "unacked_mutex")


def redis_client():
    import redis

    return redis.Redis.from_url(REDIS_URL)


def queued_message_ids(queues=("transactional_messages", "bulk_messages")) -> list[int]:
    """The message ids the send tasks waiting in the send queues carry (kombu keeps one JSON message per list
    item): a single send's task carries one id, a bulk batch's (send_bulk_messages) a list of them."""
    client = redis_client()
    ids: list[int] = []
    for queue in queues:
        length = client.llen(queue)
        for start in range(0, length, 5000):
            for raw in client.lrange(queue, start, start + 4999):
                body = json.loads(base64.b64decode(json.loads(raw)["body"]))
                argument = body[0][0]
                ids.extend(argument if isinstance(argument, list) else [argument])
    return ids


def bench_token() -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from django.contrib.auth.models import Group

    user, _ = get_user_model().objects.get_or_create(username="bench")
    user.groups.add(Group.objects.get(name="Operators"))  # the API checks the admin's permissions
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def rss_kib(pids: list[int]) -> int:
    """Resident memory of these processes and all their descendants, in KiB."""
    total = 0
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            todo.extend(int(child) for child in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def load_options(doc: str, *, connections: int) -> argparse.ArgumentParser:
    """The options every wrk benchmark takes (its script adds its own): --runs, --connections, --duration."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=connections)
    parser.add_argument("--duration", type=float, default=10)
    return parser


def repeat(one_run, runs: int, **options) -> list[dict]:
    """Bring the bench database to the current migrations, then ``one_run(index, **options)`` ``runs`` times, a
    second apart; the runs' results."""
    setup_django()
    prepare_database()
    results = []
    for index in range(runs):
        results.append(one_run(index, **options))
        time.sleep(1)
    return results


def wrk_timings(result: dict) -> dict:
    """The figures every load benchmark reads alike from the WRK_RESULT line its wrk script prints."""
    return {
        "seconds": result["duration_us"] / 1e6,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "socket_errors": result["connect_errors"] + result["read_errors"] + result["write_errors"] + result["timeouts"],
    }


def summarise(name: str, runs: list[dict], figures: list[tuple[str, str]], *, checks_ok: bool) -> dict:
    """Print one JSON line (every run plus min/median/max of each figure) and a short table; return the summary."""
    summary = {"benchmark": name, "runs": runs, "checks_ok": checks_ok, "load_after": load_average()}
    for key, _label in figures:
        values = [run[key] for run in runs if run.get(key) is not None]
        if values:
            summary[key] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    print(json.dumps(summary), flush=True)
    print(f"\n{name}: {len(runs)} runs, checks {'OK' if checks_ok else 'FAILED'}")
    print(f"  {'figure':<34} {'min':>10} {'median':>10} {'max':>10}")
    for key, label in figures:
        if key in summary:
            s = summary[key]
            print(f"  {label:<34} {s['min']:>10,.1f} {s['median']:>10,.1f} {s['max']:>10,.1f}")
    print(flush=True)
    return summary
