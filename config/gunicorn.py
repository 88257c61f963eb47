"""gunicorn's settings for the web container: `gunicorn config.wsgi --config python:config.gunicorn`.

Values come from config.settings, the one module that reads the environment. Arguments on the command line
(for example `--bind` in a test) override these.
"""
from gunicorn.workers import gthread

from config import settings

bind = "0.0.0.0:8000"
workers = settings.WEB_CONCURRENCY
# Threads, not sync workers: a sync worker belongs to one connection until its request is complete, so five clients
# that connect and never finish a request stopped the whole web tier. A gthread worker parks a silent connection in
# its poller and serves the others with its WEB_THREADS threads.
worker_class = "gthread"
threads = settings.WEB_THREADS
# A request whose headers never finish holds its thread for as long as the client keeps the socket open. With
# gunicorn's default of 1,000 connections per worker, one worker accepted a burst of 50 such sockets and queued
# /health behind them. With one connection per thread a worker stops accepting while its threads are all taken, so
# other workers (and the kernel's backlog) take the rest: WEB_CONCURRENCY x WEB_THREADS half-sent sockets are the
# limit, and a buffering proxy in front (README, Security) removes it. gunicorn warns at start that no keep-alive
# connections can be handled: they still are, each counted as one of the worker's connections.
worker_connections = threads
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
