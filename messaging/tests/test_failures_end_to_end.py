"""Issue 11's "Done when" failures, each through real processes started as the containers start them: gunicorn
(the Dockerfile's CMD), `celery -A config worker` and beat (docker-compose.yml's commands), on the test database
and a Redis, with the session's Evolution sandbox. Everything binds to 127.0.0.1, is bounded, and is stopped at the
end; the shared Redis on 6379 is never stopped (the Redis outage runs on a redis-server of the test's own).
"""
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import redis
from django.conf import settings

from access.models import ApiClient
from config.celery import TRANSACTIONAL_QUEUE, app
from config.tests.test_deploy import command_of, compose_with_defaults, dockerfile_cmd
from config.tests.test_deploy_processes import Processes
from config.tests.test_hardening import production_env
from evolution import instances
from messaging import services
from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt
from tests_support import free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# Variables of the test run's own environment that would point a started process elsewhere than told here.
NOT_INHERITED = ("CELERY_BROKER_URL", "CACHE_REDIS_URL", "METRICS_REDIS_URL", "WEB_THREADS")


def console_env(tmp_path, sandbox, **extra: str) -> dict[str, str]:
    """The containers' environment on the test database and the session's sandbox, with no pacing unless told."""
    env = production_env(tmp_path, **{
        "EVOLUTION_API_URL": sandbox.url,
        "EVOLUTION_API_KEY": sandbox.api_key,
        "EVOLUTION_INSTANCE_NAME": sandbox.instance,
        "EVOLUTION_INSTANCES": ",".join(sandbox.instances),
        "EVOLUTION_RATE_LIMIT": "",
        "EVOLUTION_RATE_LIMITS": "",
        "WEB_CONCURRENCY": "1",
        **extra,
    })
    for name in NOT_INHERITED:
        if name not in extra:
            env.pop(name, None)
    return env


def worker_command(hostname: str, concurrency: int = 4) -> list[str]:
    """docker-compose.yml's worker command (threads pool, all three queues), with a name and fewer threads."""
    services_ = compose_with_defaults()["services"]
    return [*command_of(services_["worker"]), "--concurrency", str(concurrency), "--hostname", hostname]


def beat_command() -> list[str]:
    return command_of(compose_with_defaults()["services"]["beat"])


def ready(running: Processes, name: str, process: subprocess.Popen, hostname: str) -> bool:
    """Whether the worker ``hostname`` (started as ``name``) is consuming: it says so once it is."""
    assert process.poll() is None, running.output(name)[-3000:]
    return f"{hostname} ready." in running.output(name)


def _get(url: str):
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


# --- Redis stopped while messages are posted ------------------------------------------------------------------


class OwnRedis:
    """A redis-server of this test's own on a free port of 127.0.0.1, without persistence (a restart comes back
    empty, as Redis without AOF does): the test stops and starts it, never the shared one."""

    def __init__(self, directory: Path):
        self.directory, self.port, self.process = directory, free_port(), None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for(self.answers, timeout=10, interval=0.05, what=f"redis on {self.port} answering")

    def answers(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5) as client:
                return client.ping()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_messages_posted_while_redis_is_stopped_are_all_sent_once_within_90_seconds_of_its_return(
    own_redis, evolution_sandbox, tmp_path
):
    """Default settings (beat sweeps every 15 s): web, worker and beat on a Redis that is stopped while 20
    messages are posted and started again, empty. Each POST answers 202 (the row is the record); each message is
    sent once, on its first attempt, within 90 s of Redis returning."""
    assert settings.MESSAGING_SWEEP_INTERVAL_SECONDS == 15  # what the 90 s is promised with
    evolution_sandbox.reset()
    _, key = ApiClient.objects.create_client(name="redis-outage")
    env = console_env(tmp_path, evolution_sandbox, REDIS_URL=own_redis.url)
    running = Processes(tmp_path, env)
    port = free_port()
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
    run = uuid.uuid4().hex[:8]
    texts = [f"redis down {run} {i}" for i in range(20)]
    worker_name = f"outage-{run}@test"
    try:
        started = {
            "web": running.start("web", [*dockerfile_cmd(), "--bind", f"127.0.0.1:{port}"]),
            "worker": running.start("worker", worker_command(worker_name)),
            "beat": running.start("beat", beat_command()),
        }
        health = wait_for(lambda: _get(f"{base}/health"), timeout=60, interval=0.3, what="gunicorn answering")
        assert health.json()["checks"]["broker"]["status"] == "ok", health.text
        wait_for(lambda: ready(running, "worker", started["worker"], worker_name), timeout=60, interval=0.3,
                 what="the worker up")
        wait_for(lambda: "beat: Starting" in running.output("beat"), timeout=30, interval=0.3, what="beat up")

        own_redis.stop()
        ids, slowest = [], 0.0
        for i, text in enumerate(texts):
            posted = time.monotonic()
            answer = httpx.post(f"{base}/messages", headers=headers, timeout=30,
                                json={"phone": f"+55119876{51000 + i}", "message": text})
            slowest = max(slowest, time.monotonic() - posted)
            assert answer.status_code == 202, (answer.status_code, answer.text, running.output("web")[-3000:])
            ids.append(answer.json()["id"])
        print(f"the slowest of 20 POSTs with Redis down took {slowest:.2f} s")
        assert slowest < 2  # the publish gives up quickly: the sweep publishes it once Redis is back
        accepted = OutboundMessage.objects.filter(pk__in=ids)
        assert accepted.count() == 20
        assert set(accepted.values_list("status", flat=True)) == {MessageStatus.QUEUED}  # not sent while down
        assert not accepted.filter(publish_failed_at__isnull=True).exists()  # each publish failed, and says so
        time.sleep(2)  # the worker and beat meet the outage too
        assert not SendAttempt.objects.filter(message_id__in=ids).exists()

        own_redis.start()  # on the same port, empty
        back = time.monotonic()
        wait_for(lambda: accepted.filter(status=MessageStatus.SENT).count() == 20, timeout=90, interval=0.5,
                 what="all 20 sent within 90 s of Redis returning")
        recovered_in = time.monotonic() - back
        print(f"all 20 sent {recovered_in:.1f} s after Redis returned")
        for name, process in started.items():  # each rode the outage out
            assert process.poll() is None, running.output(name)[-3000:]
    finally:
        running.stop_all()

    assert recovered_in < 90
    assert set(accepted.values_list("attempt_count", flat=True)) == {1}
    attempts = SendAttempt.objects.filter(message_id__in=ids)
    assert attempts.count() == 20 and set(attempts.values_list("outcome", flat=True)) == {AttemptOutcome.SENT}
    copies = [m["text"] for m in evolution_sandbox.sent_messages() if m["text"].startswith(f"redis down {run} ")]
    assert sorted(copies) == sorted(texts)  # each once


# --- two workers sharing one instance's pace ------------------------------------------------------------------


def test_two_workers_keep_one_instance_to_five_a_second_without_spending_attempts_and_another_is_not_slowed(
    evolution_sandbox, sandbox_settings, tmp_path
):
    """Two `celery -A config worker` processes, EVOLUTION_RATE_LIMITS=console=5/s (sales unpaced) in their
    environment: the pace is Redis's, shared by both, so 50 console messages take at least 9.5 s however many
    workers send them, each on one attempt, while sales's go out at once."""
    paced_instance, other_instance = evolution_sandbox.instance, evolution_sandbox.other_instance
    sandbox_settings.EVOLUTION_INSTANCES = [paced_instance, other_instance]
    run = uuid.uuid4().hex[:8]
    env = console_env(
        tmp_path, evolution_sandbox,
        REDIS_URL=settings.REDIS_URL,  # the test run's own Redis database, where this process publishes
        EVOLUTION_RATE_LIMITS=f"{paced_instance}=5/s,{other_instance}=",
        PACING_KEY_PREFIX=f"{settings.PACING_KEY_PREFIX}:{run}",  # a fresh pace, deleted with the run's keys
    )
    app.control.purge()
    running = Processes(tmp_path, env)
    names = [f"paced-{n}-{run}@test" for n in (1, 2)]
    try:
        workers = [running.start(f"worker{n}", worker_command(name, concurrency=2)) for n, name in enumerate(names, 1)]
        for n, (worker, name) in enumerate(zip(workers, names), 1):
            wait_for(lambda: ready(running, f"worker{n}", worker, name), timeout=60, interval=0.3, what=f"{name} up")

        # Warm, as long-running workers are: each process's first send builds its HTTP client and connections.
        warm_up = [services.accept_message(phone=f"+55319876{54000 + i}", text=f"warm-up {run} {i}",
                                           instance=other_instance)[0].pk for i in range(8)]
        wait_for(lambda: not _unfinished(warm_up), timeout=15, what="the warm-up sends")

        paced = [services.accept_message(phone=f"+55119876{52000 + i}", text=f"paced {run} {i}")[0].pk
                 for i in range(50)]
        other = [services.accept_message(phone=f"+55319876{53000 + i}", text=f"other {run} {i}",
                                         instance=other_instance)[0].pk for i in range(10)]

        wait_for(lambda: not _unfinished(other), timeout=15, what="the other instance's messages sent")
        wait_for(lambda: not _unfinished(paced), timeout=40, what="the paced messages final")
        for n, worker in enumerate(workers, 1):
            assert worker.poll() is None, running.output(f"worker{n}")[-3000:]
    finally:
        running.stop_all()
        app.control.purge()

    statuses = OutboundMessage.objects.filter(pk__in=paced + other).values_list("status", flat=True)
    assert list(statuses) == [MessageStatus.SENT] * 60  # none failed, none expired
    sent = sorted(OutboundMessage.objects.filter(pk__in=paced).values_list("sent_at", flat=True))
    first_accepted = OutboundMessage.objects.get(pk=paced[0]).created_at
    took = (sent[-1] - first_accepted).total_seconds()
    print(f"50 paced messages took {took:.2f} s from the first accepted to the last sent "
          f"({(sent[-1] - sent[0]).total_seconds():.2f} s from the first sent)")
    assert took >= 9.5  # 50 sends at 5/s: 49 gaps of 0.2 s after the first
    for i in range(len(sent) - 6):  # never more than 5 (+1 for timer jitter) in any second
        assert (sent[i + 6] - sent[i]).total_seconds() >= 1.0
    # No attempt spent on waiting: one attempt each, and it was the send.
    assert set(OutboundMessage.objects.filter(pk__in=paced).values_list("attempt_count", flat=True)) == {1}
    attempts = SendAttempt.objects.filter(message_id__in=paced)
    assert attempts.count() == 50 and set(attempts.values_list("outcome", flat=True)) == {AttemptOutcome.SENT}
    # Both workers sent the paced instance's messages: the pace held across processes, not within one.
    pids = {worker.pid for worker in workers}
    senders = {int(name.rsplit(":", 1)[1]) for name in attempts.values_list("worker", flat=True)}
    assert senders == pids, (senders, pids)
    # The other instance, at the same time, was not slowed: each went out within seconds of being accepted.
    for created, sent_at in OutboundMessage.objects.filter(pk__in=other).values_list("created_at", "sent_at"):
        assert (sent_at - created).total_seconds() < 5
    other_done = max(OutboundMessage.objects.filter(pk__in=other).values_list("sent_at", flat=True))
    assert other_done < sent[-1] - timedelta(seconds=5)
    assert len([m for m in evolution_sandbox.sent_messages() if m["text"].startswith(f"paced {run} ")]) == 50


def _unfinished(ids) -> bool:
    return OutboundMessage.objects.filter(pk__in=ids).exclude(
        status__in=(MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.EXPIRED)).exists()


# --- an instance that loses its WhatsApp connection, and a Redis flush: a worker and beat as deployed ------------

RETRY_SETTINGS = ("MESSAGING_MAX_RETRIES", "MESSAGING_RETRY_DELAY_SECONDS", "MESSAGING_RETRY_BACKOFF",
                  "MESSAGING_SWEEP_INTERVAL_SECONDS", "MESSAGING_DISPATCH_INTERVAL_SECONDS")


@pytest.fixture
def worker_and_beat(evolution_sandbox, sandbox_settings, tmp_path):
    """`celery -A config worker` and beat as docker-compose.yml starts them, on the test run's own Redis database,
    with the default retry and sweep settings (the test process's fast retries are not passed on)."""
    env = console_env(tmp_path, evolution_sandbox, REDIS_URL=settings.REDIS_URL)
    for name in RETRY_SETTINGS:
        env.pop(name, None)
    app.control.purge()
    running = Processes(tmp_path, env)
    name = f"e2e-{uuid.uuid4().hex[:8]}@test"
    try:
        worker = running.start("worker", worker_command(name))
        running.start("beat", beat_command())
        wait_for(lambda: ready(running, "worker", worker, name), timeout=60, interval=0.3, what="the worker up")
        wait_for(lambda: "beat: Starting" in running.output("beat"), timeout=30, interval=0.3, what="beat up")
        yield running
    finally:
        running.stop_all()
        evolution_sandbox.set_state("open")
        instances.resume(evolution_sandbox.instance)
        app.control.purge()


def test_an_instance_down_for_a_minute_pauses_its_messages_and_sends_each_once_when_it_is_back_with_no_retry_spent(
    worker_and_beat, evolution_sandbox
):
    """Done when: "An instance down for a minute: its messages pause and are sent when it is back, none failed, no
    retries spent." Messages posted at the start and in the middle of the outage; the sends that met the dropped
    connection stay as attempts, but none counts against the 3 retries."""
    run = uuid.uuid4().hex[:8]
    evolution_sandbox.set_state("close")
    down = time.monotonic()
    ids = [services.accept_message(phone=f"+55119876{58000 + i}", text=f"down {run} {i}")[0].pk for i in range(5)]
    time.sleep(30)
    ids += [services.accept_message(phone=f"+55119876{58100 + i}", text=f"down {run} late {i}")[0].pk for i in range(3)]
    time.sleep(max(0.0, 60 - (time.monotonic() - down)))
    waiting = OutboundMessage.objects.filter(pk__in=ids)
    assert set(waiting.values_list("status", flat=True)) <= {MessageStatus.QUEUED, MessageStatus.RETRYING}
    assert instances.paused_reason(evolution_sandbox.instance) == "connectionState is close"

    evolution_sandbox.set_state("open")
    back = time.monotonic()
    wait_for(lambda: not _unfinished(ids), timeout=60, interval=0.5, what="every message final after it is back")
    print(f"all {len(ids)} final {time.monotonic() - back:.1f} s after the instance was back")

    messages = list(OutboundMessage.objects.filter(pk__in=ids))
    assert [m.status for m in messages] == [MessageStatus.SENT] * 8  # none failed
    assert [m.counted_attempts for m in messages] == [1] * 8  # no retry spent
    attempts = SendAttempt.objects.filter(message_id__in=ids)
    assert not attempts.filter(counted=True).exclude(outcome=AttemptOutcome.SENT).exists()
    assert attempts.filter(counted=False).count() == sum(m.uncounted_attempts for m in messages)
    texts = sorted(m["text"] for m in evolution_sandbox.sent_messages() if m["text"].startswith(f"down {run} "))
    assert texts == sorted(m.text for m in messages)  # each received once


def test_a_message_valid_for_30_seconds_while_its_instance_is_down_ends_expired_and_is_never_sent(
    worker_and_beat, evolution_sandbox
):
    """Done when: "A message with a 30 s validity while its instance is down ends `expired`, never sent"."""
    run = uuid.uuid4().hex[:8]
    evolution_sandbox.set_state("close")
    code, _ = services.accept_message(phone="+5511987659000", text=f"code {run}", valid_for_seconds=30)

    expired = wait_for(lambda: (m := OutboundMessage.objects.get(pk=code.pk)).is_final and m, timeout=50, interval=0.5,
                       what="the message final")
    evolution_sandbox.set_state("open")
    instances.resume(evolution_sandbox.instance)
    time.sleep(3)  # a task still in the broker would find nothing to send

    assert expired.status == MessageStatus.EXPIRED
    assert expired.finished_at >= expired.expires_at
    assert (expired.finished_at - expired.expires_at).total_seconds() < 15  # beat's expiry, or the paused retry's claim
    assert OutboundMessage.objects.get(pk=code.pk).status == MessageStatus.EXPIRED
    assert not [m for m in evolution_sandbox.sent_messages() if m["text"] == f"code {run}"]


def test_twenty_tasks_lost_in_a_redis_flush_are_all_sent_once_within_90_seconds(
    evolution_sandbox, sandbox_settings, tmp_path
):
    """Done when: "Redis flushed with queued tasks: all recovered within 90 s." 20 tasks wait in the queue (no
    worker yet), the test run's own Redis database is flushed, then the worker starts: beat's sweep finds the rows
    waiting with empty queues and publishes them again."""
    broker = urlparse(settings.CELERY_BROKER_URL)
    assert broker.scheme == "redis" and broker.path.strip("/") not in ("", "0"), "flush only the test run's own database"
    env = console_env(tmp_path, evolution_sandbox, REDIS_URL=settings.REDIS_URL)
    for name in RETRY_SETTINGS:
        env.pop(name, None)
    app.control.purge()
    running = Processes(tmp_path, env)
    run = uuid.uuid4().hex[:8]
    name = f"flush-{run}@test"
    try:
        running.start("beat", beat_command())
        wait_for(lambda: "beat: Starting" in running.output("beat"), timeout=30, interval=0.3, what="beat up")
        ids = [services.accept_message(phone=f"+55119876{57000 + i}", text=f"flush {run} {i}")[0].pk for i in range(20)]
        with app.connection_for_read() as connection:
            assert connection.default_channel.queue_declare(queue=TRANSACTIONAL_QUEUE, passive=True).message_count == 20
        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
        flushed = time.monotonic()
        worker = running.start("worker", worker_command(name))
        wait_for(lambda: ready(running, "worker", worker, name), timeout=60, interval=0.3, what="the worker up")
        wait_for(lambda: OutboundMessage.objects.filter(pk__in=ids, status=MessageStatus.SENT).count() == 20,
                 timeout=90, interval=0.5, what="all 20 sent within 90 s of the flush")
        recovered_in = time.monotonic() - flushed
        print(f"all 20 sent {recovered_in:.1f} s after the flush")
    finally:
        running.stop_all()
        app.control.purge()

    assert recovered_in < 90
    assert set(OutboundMessage.objects.filter(pk__in=ids).values_list("attempt_count", flat=True)) == {1}
    copies = [m["text"] for m in evolution_sandbox.sent_messages() if m["text"].startswith(f"flush {run} ")]
    assert sorted(copies) == sorted(f"flush {run} {i}" for i in range(20))  # each once
