"""Recovery in seconds, through real processes: a worker killed mid-send, a broker down at accept time, a Redis
flush, PostgreSQL down. Workers are `celery -A config worker` subprocesses on the test database and the test run's
own Redis database; the sweep is beat's (``maintenance.requeue_stuck_messages``), called here as beat would."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connection

from access.models import ApiClient
from config.celery import app
from config.tests.test_deploy import dockerfile_cmd
from config.tests.test_deploy_processes import Processes
from messaging import heartbeats, maintenance, services
from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt
from tests_support import ROOT, database_url_of_the_test_database, free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class Workers(Processes):
    """`celery -A config worker` subprocesses, as compose runs them (threads pool), output in files."""

    def start(self, name: str, **extra_env) -> subprocess.Popen:
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "transactional_messages,bulk_messages",
            "--pool", "threads", "--concurrency", "2", "--loglevel", "INFO", "--hostname", f"{name}-{uuid.uuid4().hex[:6]}@test",
            "--without-gossip", "--without-mingle",
        ]
        return super().start(name, command, **extra_env)

    def stop_all(self) -> None:
        # Killed outright: a worker still waiting on a held send would only make the test wait for it.
        for process, log in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            log.close()


@pytest.fixture
def workers(tmp_path, sandbox_settings, evolution_sandbox):
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_the_test_database(),
        "REDIS_URL": settings.REDIS_URL,
        "EVOLUTION_API_URL": evolution_sandbox.url,
        "EVOLUTION_API_KEY": evolution_sandbox.api_key,
        "EVOLUTION_INSTANCE_NAME": evolution_sandbox.instance,
        "EVOLUTION_RATE_LIMIT": "",
    }
    app.control.purge()
    running = Workers(tmp_path, env)
    try:
        yield running
    finally:
        running.stop_all()
        app.control.purge()


def sandbox_copies(sandbox, phone_digits: str) -> list[dict]:
    return [m for m in sandbox.sent_messages() if m["number"].lstrip("+") == phone_digits]


def final(message_id: int, timeout: float = 30) -> OutboundMessage:
    return wait_for(lambda: (m := OutboundMessage.objects.get(pk=message_id)).is_final and m, timeout=timeout, interval=0.2)


def started_attempt(message_id: int) -> SendAttempt:
    return wait_for(
        lambda: SendAttempt.objects.filter(message_id=message_id, outcome=AttemptOutcome.STARTED).first(),
        timeout=60, interval=0.1, what="a worker starting the send",
    )


# --- a worker killed mid-send -------------------------------------------------------------------------------------


def test_a_worker_killed_mid_send_is_taken_over_within_90_seconds_and_the_message_is_sent_once(workers, evolution_sandbox):
    """Default settings: a 20 s heartbeat, beat sweeping every 15 s. kill -9 while the sandbox holds the send open
    (it has the message and has not answered); the sweep takes the claim over once the heartbeat is gone."""
    assert settings.MESSAGING_WORKER_HEARTBEAT_TTL_SECONDS == 20 and settings.MESSAGING_SWEEP_INTERVAL_SECONDS == 15
    doomed = workers.start("doomed")
    message, _ = services.accept_message(phone="+55 11 98765-0408", text="killed mid-send")
    attempt = started_attempt(message.pk)
    assert attempt.worker.endswith(f":{doomed.pid}")  # the attempt names the process that holds it
    wait_for(lambda: sandbox_copies(evolution_sandbox, "5511987650408"), timeout=10, what="the send reaching Evolution")
    os.killpg(doomed.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    doomed.wait(timeout=10)
    workers.start("replacement")

    assert maintenance.requeue_stuck_messages()["interrupted"] == 0  # its heartbeat has not expired yet
    taken_over = wait_for(
        lambda: maintenance.requeue_stuck_messages()["interrupted"] and time.monotonic(), timeout=60, interval=1,
        what="the sweep taking the dead worker's send over",
    )
    recovered = final(message.pk, timeout=60)
    done = time.monotonic()
    # Beat sweeps every 15 s, so its tick may come up to 15 s after this test's once-a-second sweep did.
    assert taken_over - killed_at <= settings.MESSAGING_WORKER_HEARTBEAT_TTL_SECONDS + 2
    assert done - killed_at + settings.MESSAGING_SWEEP_INTERVAL_SECONDS < 90
    assert recovered.status == MessageStatus.SENT
    first, second = recovered.attempts.all()
    assert (first.outcome, first.maybe_sent) == (AttemptOutcome.INTERRUPTED, True)
    assert (second.outcome, second.reconciled) == (AttemptOutcome.SENT, True)
    assert len(sandbox_copies(evolution_sandbox, "5511987650408")) == 1


def test_a_worker_killed_mid_batch_leaves_every_message_of_the_batch_sent_once_within_90_seconds(workers, evolution_sandbox):
    """A bulk batch (send_bulk_messages) whose first send the sandbox holds open when the worker is killed: that
    claim is taken over as above, and the batch's unclaimed messages, whose task died with the worker, are
    published again by the sweep's lost-task rule."""
    doomed = workers.start("doomed")
    numbers = ["+5511987650408"] + [f"+551198765{1000 + i}" for i in range(4)]
    results = services.accept_messages(items=[{"phone": number, "text": f"batch {i}"} for i, number in enumerate(numbers)])
    ids = [result.message.pk for result in results]
    started_attempt(ids[0])
    wait_for(lambda: sandbox_copies(evolution_sandbox, "5511987650408"), timeout=10, what="the send reaching Evolution")
    os.killpg(doomed.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    doomed.wait(timeout=10)
    workers.start("replacement")
    assert OutboundMessage.objects.filter(pk__in=ids[1:], status=MessageStatus.QUEUED).count() == 4  # not reached

    def all_sent() -> bool:
        maintenance.requeue_stuck_messages()  # as beat's tick would
        return OutboundMessage.objects.filter(pk__in=ids, status=MessageStatus.SENT).count() == len(ids)

    wait_for(all_sent, timeout=90, interval=1, what="every message of the batch sent")
    assert time.monotonic() - killed_at + settings.MESSAGING_SWEEP_INTERVAL_SECONDS < 90
    for number in numbers:
        assert len(sandbox_copies(evolution_sandbox, number.lstrip("+"))) == 1
    assert SendAttempt.objects.filter(message_id__in=ids[1:]).count() == 4  # one attempt each, nothing spent waiting


def test_a_slow_worker_that_is_still_alive_is_never_taken_over(workers, evolution_sandbox, settings):
    settings.MESSAGING_WORKER_HEARTBEAT_TTL_SECONDS = 1  # the sandbox holds the send 3 s: three TTLs
    workers.start("slow", MESSAGING_WORKER_HEARTBEAT_TTL_SECONDS="1")
    message, _ = services.accept_message(phone="+55 11 98765-0408", text="slow but alive")
    attempt = started_attempt(message.pk)
    assert attempt.worker
    wait_for(lambda: sandbox_copies(evolution_sandbox, "5511987650408"), timeout=10, what="the send reaching Evolution")
    sweeps = 0
    while OutboundMessage.objects.get(pk=message.pk).status == MessageStatus.SENDING:
        assert maintenance.requeue_stuck_messages()["interrupted"] == 0
        sweeps += 1
        time.sleep(0.2)
    assert sweeps >= 5  # swept all through the held send, well past the TTL
    sent = final(message.pk)
    assert sent.status == MessageStatus.SENT
    assert [(a.number, a.outcome, a.reconciled) for a in sent.attempts.all()] == [(1, AttemptOutcome.SENT, False)]
    assert len(sandbox_copies(evolution_sandbox, "5511987650408")) == 1


def test_a_send_with_no_worker_recorded_waits_for_the_stuck_cutoff(sandbox_settings):
    message, _ = services.accept_message(phone="+5511987654321", text="an old row, or embedded mode")
    assert OutboundMessage.objects.claim_for_sending(message.pk)
    SendAttempt.objects.start(message=OutboundMessage.objects.get(pk=message.pk), task_id="t")  # no heartbeat here
    assert maintenance.requeue_stuck_messages()["interrupted"] == 0
    assert OutboundMessage.objects.get(pk=message.pk).status == MessageStatus.SENDING


def test_no_send_is_taken_over_while_redis_has_kept_heartbeats_for_less_than_a_ttl(sandbox_settings):
    """Right after a flush or a restart without AOF every heartbeat is missing, live workers' too: trust none."""
    message, _ = services.accept_message(phone="+5511987654321", text="after a flush")
    assert OutboundMessage.objects.claim_for_sending(message.pk)
    SendAttempt.objects.create(message=message, number=1, worker="gone-host:1")
    store = redis.Redis.from_url(settings.REDIS_URL)
    store.delete(heartbeats.SINCE_KEY)
    assert maintenance.requeue_stuck_messages()["interrupted"] == 0
    store.set(heartbeats.SINCE_KEY, int(store.time()[0]) - int(settings.MESSAGING_WORKER_HEARTBEAT_TTL_SECONDS) - 1)
    assert maintenance.requeue_stuck_messages()["interrupted"] == 1


# --- lost publishes -----------------------------------------------------------------------------------------------


def test_a_message_accepted_while_the_broker_was_down_is_published_by_the_next_sweep(celery_worker, settings):
    script = (
        "import django; django.setup()\n"
        "from messaging import services\n"
        "message, _ = services.accept_message(phone='+5511987654321', text='broker down')\n"
        "print(message.pk)\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_the_test_database(),
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "EVOLUTION_INSTANCE_NAME": settings.EVOLUTION_INSTANCE_NAME,
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    message_id = int(done.stdout.strip().splitlines()[-1])
    accepted = OutboundMessage.objects.get(pk=message_id)
    assert accepted.status == MessageStatus.QUEUED and accepted.publish_failed_at is not None

    assert maintenance.requeue_stuck_messages()["queued"] == 1  # the first sweep the broker answers, no cutoff
    assert maintenance.requeue_stuck_messages()["queued"] == 0  # published once
    message = final(message_id)
    assert (message.status, message.attempt_count, message.publish_failed_at) == (MessageStatus.SENT, 1, None)


def test_tasks_lost_in_a_redis_flush_are_published_again(workers, evolution_sandbox):
    broker = urlparse(settings.CELERY_BROKER_URL)
    assert broker.scheme == "redis" and broker.path.strip("/") not in ("", "0"), "flush only the test run's own database"
    phones = [f"+55119876540{n:02d}" for n in range(11, 14)]
    accepted = [services.accept_message(phone=phone, text="flushed")[0] for phone in phones]
    fresh, _ = services.accept_message(phone="+5511987654099", text="just accepted")
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # the test run's own Redis database
    OutboundMessage.objects.filter(pk__in=[m.pk for m in accepted]).update(
        updated_at=OutboundMessage.objects.get(pk=fresh.pk).updated_at - maintenance.LOST_TASK_AFTER
    )

    counts = maintenance.requeue_stuck_messages()
    assert counts["queued"] == 3  # waiting LOST_TASK_AFTER with empty queues; the fresh one not yet
    workers.start("after-flush")
    for message in accepted:
        assert (final(message.pk).status, final(message.pk).attempt_count) == (MessageStatus.SENT, 1)
    assert OutboundMessage.objects.get(pk=fresh.pk).status == MessageStatus.QUEUED
    assert len([m for m in evolution_sandbox.sent_messages() if m["text"] == "flushed"]) == 3


def test_nothing_is_republished_while_the_send_queues_have_a_backlog(sandbox_settings):
    app.control.purge()
    waiting, _ = services.accept_message(phone="+5511987654321", text="behind a backlog")  # its task is queued
    OutboundMessage.objects.filter(pk=waiting.pk).update(updated_at=waiting.updated_at - maintenance.LOST_TASK_AFTER * 2)
    try:
        assert maintenance.requeue_stuck_messages()["queued"] == 0
    finally:
        app.control.purge()


# --- PostgreSQL down ----------------------------------------------------------------------------------------------


class OwnCluster:
    """A PostgreSQL cluster of this test's own (initdb + pg_ctl, as postgres, in a temporary folder): the shared
    one is never stopped."""

    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="console-pg-"))
        shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        self.port = free_port()
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])

    def _as_postgres(self, command: list[str]) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"), "-w", "start"])

    def stop(self) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=30)
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def own_cluster():
    cluster = OwnCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def test_with_postgresql_down_post_messages_answers_503_at_once_and_work_resumes_when_it_is_back(
    own_cluster, workers, evolution_sandbox, tmp_path
):
    _, key = ApiClient.objects.create_client(name="outage")
    connection.close()
    # The test database, with its schema and that client, copied into the cluster this test may stop.
    subprocess.run(["psql", own_cluster.url("postgres"), "-qc", "CREATE DATABASE console"], check=True, capture_output=True)
    copy = subprocess.run(
        f"pg_dump --no-owner {database_url_of_the_test_database()} | psql -q -v ON_ERROR_STOP=1 {own_cluster.url('console')}",
        shell=True, capture_output=True, text=True, timeout=120,
    )
    assert copy.returncode == 0, copy.stderr
    database = own_cluster.url("console")
    workers.env["DATABASE_URL"] = database
    port = free_port()
    web_env = {**workers.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               "DJANGO_DEBUG": "false", "WEB_CONCURRENCY": "1", "DJANGO_STATIC_ROOT": str(tmp_path / "static")}
    log = open(tmp_path / "web.log", "w")
    web = subprocess.Popen([*dockerfile_cmd(), "--bind", f"127.0.0.1:{port}"], cwd=ROOT, env=web_env,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}

    def post(text: str) -> httpx.Response:
        return httpx.post(f"{base}/messages", json={"phone": "+5511987654321", "message": text}, headers=headers, timeout=10)

    def rows() -> int:
        return int(subprocess.run(["psql", database, "-tAc", "SELECT count(*) FROM messaging_outboundmessage"],
                                  capture_output=True, text=True, check=True).stdout)

    try:
        wait_for(lambda: _answers(f"{base}/health"), timeout=60, interval=0.3, what="gunicorn answering")
        accepted = post("before")  # no worker yet: its task waits in the queue
        assert accepted.status_code == 202, accepted.text
        # And a bulk batch (one send_bulk_messages task), which must keep its messages through the outage too.
        bulk = httpx.post(f"{base}/messages/bulk", headers=headers, timeout=10, json={"messages": [
            {"phone": f"+551198765{1000 + i}", "message": f"bulk before {i}"} for i in range(3)]})
        assert bulk.status_code == 202, bulk.text
        bulk_ids = [item["id"] for item in bulk.json()["results"]]
        message_id, before = accepted.json()["id"], rows()

        own_cluster.stop()
        started = time.monotonic()
        refused = post("while down")
        assert time.monotonic() - started < 2
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "database_unavailable"
        assert refused.json()["success"] is False
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 503 and health.json()["checks"]["database"]["status"] == "error"
        assert health.json()["checks"]["broker"]["status"] == "ok"

        # A worker given the send while the database is down keeps it, and sends once the database is back.
        worker = workers.start("db-down")
        wait_for(lambda: "database unavailable" in workers.output("db-down"), timeout=60, interval=0.3,
                 what="the worker meeting the outage")
        wait_for(lambda: f"messages={bulk_ids} task=" in workers.output("db-down"), timeout=60, interval=0.3,
                 what="the batch keeping its messages through the outage")
        own_cluster.start()
        assert wait_for(lambda: _status(database, message_id) == "sent", timeout=60, interval=0.5)
        assert wait_for(lambda: all(_status(database, pk) == "sent" for pk in bulk_ids), timeout=60, interval=0.5)
        assert worker.poll() is None
        assert rows() == before  # the refused request wrote nothing
        assert post("after").status_code == 202
    finally:
        if web.poll() is None:
            os.killpg(web.pid, signal.SIGTERM)
            try:
                web.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(web.pid, signal.SIGKILL)
                web.wait(timeout=10)
        log.close()


def _answers(url: str):
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


def _status(database: str, message_id: int) -> str:
    done = subprocess.run(["psql", database, "-tAc", f"SELECT status FROM messaging_outboundmessage WHERE id = {message_id}"],
                          capture_output=True, text=True)
    return done.stdout.strip()
