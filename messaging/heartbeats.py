"""Worker heartbeats in Redis: which worker processes are alive, so the sweeper takes over a dead one's sends at once.

Each worker process that runs sends (a prefork child, or the main process of a threads/solo worker) writes its own
key every MESSAGING_WORKER_HEARTBEAT_TTL_SECONDS / 4 seconds with that TTL, from a daemon thread started by
Celery's signals (config/celery.py). A send attempt records the name of the process holding it
(``SendAttempt.worker``); when that key is gone, the process is gone (killed, out of memory, its host lost) and
no one can still be inside that HTTP call, so ``maintenance.requeue_stuck_messages`` takes the message over
without waiting for MESSAGING_STUCK_AFTER_SECONDS.

Absence is trusted only when Redis has kept heartbeats for longer than a TTL (the ``since`` key, written with the
first beat after Redis starts empty): right after a flush or a restart without AOF, a live worker's key is missing
until its next beat, and the sweeper then falls back to the cutoff instead of taking over live sends.
Without Redis (embedded mode) no heartbeat runs, attempts record no worker, and the cutoff is the only rule.
"""
from __future__ import annotations

import logging
import os
import socket
import threading

from django.conf import settings

from evolution.shared_state import redis_client

log = logging.getLogger("messaging")

KEY_PREFIX = "console:workers:"
SINCE_KEY = "console:workers-since"  # Redis's own time (seconds) when it started keeping heartbeats

_started_in_pid: int | None = None
_start_lock = threading.Lock()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def current_worker() -> str:
    """This process's name while its heartbeat runs; "" otherwise (a shell, a test, embedded mode), which leaves
    its sends to the cutoff. After a fork the parent's thread is not running here, so the child starts its own."""
    return worker_name() if _started_in_pid == os.getpid() else ""


def start() -> bool:
    """Start this process's heartbeat (once per process); the first beat is written before this returns, so
    no attempt records a worker whose key is not there yet. False without Redis."""
    global _started_in_pid
    if not settings.REDIS_URL:
        return False
    with _start_lock:
        if _started_in_pid == os.getpid():
            return True
        import redis

        # A client of its own, made after any fork: nothing shared with the parent process.
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        name, ttl = worker_name(), settings.MESSAGING_WORKER_HEARTBEAT_TTL_SECONDS
        try:
            _beat(client, name, ttl)
        except Exception as error:  # Redis down at start: this process records no worker; the cutoff covers it
            log.warning("worker=%s heartbeat not started: %s: %s", name, type(error).__name__, error)
            return False
        thread = threading.Thread(target=_run, args=(client, name, ttl), name="worker-heartbeat", daemon=True)
        thread.start()
        _started_in_pid = os.getpid()
        log.info("worker=%s heartbeat every %.1fs, ttl %.0fs", name, ttl / 4, ttl)
        return True


def _beat(client, name: str, ttl: float) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.set(KEY_PREFIX + name, "1", px=int(ttl * 1000))
    pipe.time()
    _, (seconds, _micro) = pipe.execute()
    client.set(SINCE_KEY, seconds, nx=True)


def _run(client, name: str, ttl: float) -> None:
    stop = threading.Event()
    while not stop.wait(ttl / 4):
        try:
            _beat(client, name, ttl)
        except Exception as error:  # keep beating: a Redis blip must not silence a live worker for good
            log.warning("worker=%s heartbeat failed: %s: %s", name, type(error).__name__, error)


def dead_workers(names) -> set[str] | None:
    """Which of these workers' heartbeats are gone; None when that cannot be told (no Redis, Redis down, or Redis
    has kept heartbeats for less than a TTL, as after a flush or a restart): then only the cutoff applies."""
    names = sorted({name for name in names if name})
    client = redis_client()
    if not names or client is None:
        return None if client is None else set()
    try:
        pipe = client.pipeline(transaction=False)
        pipe.get(SINCE_KEY)
        pipe.time()
        for name in names:
            pipe.exists(KEY_PREFIX + name)
        since, (now, _micro), *alive = pipe.execute()
    except Exception as error:
        log.warning("worker heartbeats unreadable (%s: %s); only the stuck cutoff applies", type(error).__name__, error)
        return None
    if since is None or now - int(since) < settings.MESSAGING_WORKER_HEARTBEAT_TTL_SECONDS:
        return None
    return {name for name, present in zip(names, alive) if not present}
