"""gunicorn's settings for the web container: `gunicorn config.wsgi --config python:config.gunicorn`.

Values come from config.settings, the one module that reads the environment. Arguments on the command line
(for example `--bind` in a test) override these.
"""
from gunicorn.workers import gthread

from config import settings
from config.startup import freeze_startup_objects

bind = "0.0.0.0:8000"
workers = settings.WEB_CONCURRENCY
# Threads, not sync workers: a sync worker belongs to one connection until its request is complete, so five clients
# that connect and never finish a request stopped the whole web tier. A gthread worker parks a silent connection in
# its poller and serves the others with its WEB_THREADS threads; ThreadWorker (below) accepts only while one of
# them is free.
worker_class = "config.gunicorn.ThreadWorker"
threads = settings.WEB_THREADS
# How long a new connection may hold a thread waiting for its first byte before it waits in the poller instead
# (gunicorn's default, 5 s, let a burst of silent connections take every thread of a worker). Checked by the tests.
gthread.DEFAULT_WORKER_DATA_TIMEOUT = 0.2
timeout = settings.WEB_TIMEOUT_SECONDS
graceful_timeout = settings.WEB_TIMEOUT_SECONDS
# Recycle workers now and then so a slow leak never grows into an outage; the jitter avoids all at once.
max_requests = 2000
max_requests_jitter = 200
# Docker's overlay filesystem makes the default heartbeat directory slow; shared memory is not.
worker_tmp_dir = "/dev/shm"


def post_worker_init(worker):
    freeze_startup_objects()  # the application is loaded by now (no preload: each worker imports it)


accesslog = "-"
errorlog = "-"
loglevel = settings.LOG_LEVEL.lower()

if settings.LOG_FORMAT == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": settings.LOG_LEVEL, "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker that accepts a new connection only while one of its threads is free.

    A request whose headers never finish holds its thread for as long as the client keeps the socket open. With
    gunicorn's own rule (up to ``worker_connections``, 1,000, per process) one process accepted a burst of 50 such
    sockets and queued /health behind them. Here a process whose threads are all taken stops accepting, and the
    other processes (and the kernel's backlog) take the rest: WEB_CONCURRENCY x WEB_THREADS half-sent sockets are
    the limit, and a buffering proxy in front (README, Security) removes it. Connections kept alive between two
    requests wait in the poller and hold no thread, so they do not count: keep-alive stays on. (Capping
    ``worker_connections`` at ``threads``, as this file did before, did the same for slow clients but left gunicorn
    no room for an idle connection, so it closed every connection after one request.)

    Every method here runs on the worker's main thread (the poller's), as gunicorn's own bookkeeping does.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.in_threads = 0  # connections handed to the thread pool and not finished yet

    def enqueue_req(self, conn):
        self.in_threads += 1
        super().enqueue_req(conn)
        if self.in_threads >= self.cfg.threads:
            self.set_accept_enabled(False)

    def finish_request(self, conn, fs):
        self.in_threads -= 1
        super().finish_request(conn, fs)  # (may hand the connection to a thread again: enqueue_req counts it)

    def set_accept_enabled(self, enabled):
        # gunicorn's loop turns accepting back on whenever it holds fewer than worker_connections
        super().set_accept_enabled(enabled and self.in_threads < self.cfg.threads)
