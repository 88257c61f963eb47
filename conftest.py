"""Fixtures shared by every app's tests: the real Celery worker and the Evolution sandbox over HTTP."""
import os
import threading
import uuid

import pytest
from django.conf import settings as django_settings

from tests_support import start_sandbox_process


@pytest.fixture(scope="session", autouse=True)
def _tests_use_the_real_services():
    # The guarantees under test (conditional UPDATEs, on_commit, many workers) are PostgreSQL's and Redis's.
    assert django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), "run the tests with `make test`"
    assert django_settings.CELERY_BROKER_URL.startswith("redis"), "run the tests with `make test`"


@pytest.fixture(scope="session", autouse=True)
def _passwords_hashed_quickly():
    """Django hashes a password it sets or checks with PBKDF2 at a million iterations, ~0.6 s of CPU on this
    machine, which every test that makes a user with a password or signs one in paid: most of a simple test's time.
    The tests check who may do what, not the hash's strength, so new passwords get Django's fast test hasher
    (Django's docs, "Speeding up the tests"); PBKDF2 still reads any hash made before. Production settings, and
    the processes tests start, are untouched."""
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher",
                                             "django.contrib.auth.hashers.PBKDF2PasswordHasher"]):
        yield


@pytest.fixture(scope="session", autouse=True)
def _redis_keys_under_this_runs_own_prefix():
    """Counters, pacing, pauses and cache entries the tests record go under prefixes of this run, never the
    console's (console:metrics, console:pacing, console:cache), also in the processes tests start, and are deleted
    at the end with the broker's queue bindings this run declared: a test run leaves nothing in Redis."""
    import redis
    from django.core.cache import caches

    run = uuid.uuid4().hex
    prefixes = {"METRICS_KEY_PREFIX": f"test:{run}:metrics", "PACING_KEY_PREFIX": f"test:{run}:pacing"}
    previous = {name: (getattr(django_settings, name), os.environ.get(name)) for name in prefixes}
    for name, prefix in prefixes.items():
        setattr(django_settings, name, prefix)
        os.environ[name] = prefix
    # The cache's prefix is in CACHES, built when settings were read: set there, and in the environment for the
    # processes tests start.
    cache, cache_prefix = django_settings.CACHES["default"], f"test:{run}:cache"
    previous_cache_prefix, previous_cache_variable = cache.get("KEY_PREFIX"), os.environ.get("CACHE_KEY_PREFIX")
    cache["KEY_PREFIX"] = os.environ["CACHE_KEY_PREFIX"] = cache_prefix
    for made in caches.all(initialized_only=True):
        made.key_prefix = cache_prefix
    stores = {django_settings.METRICS_REDIS_URL, django_settings.CELERY_BROKER_URL, cache.get("LOCATION")}
    stores = {url for url in stores if url and url.startswith("redis")}
    bindings_before = {url: _kombu_keys(redis, url) for url in stores}
    yield prefixes
    for name, (setting, variable) in previous.items():
        setattr(django_settings, name, setting)
        if variable is None:
            del os.environ[name]
        else:
            os.environ[name] = variable
    cache["KEY_PREFIX"] = previous_cache_prefix
    if previous_cache_variable is None:
        del os.environ["CACHE_KEY_PREFIX"]
    else:
        os.environ["CACHE_KEY_PREFIX"] = previous_cache_variable
    for url in stores:
        with redis.Redis.from_url(url) as store:
            # Kombu's bindings are the broker's record of the queues this run declared: only those it added go.
            for key in [*store.scan_iter(match=f"test:{run}:*"), *(_kombu_keys(redis, url) - bindings_before[url])]:
                store.delete(key)


def _kombu_keys(redis, url: str) -> set[bytes]:
    with redis.Redis.from_url(url) as store:
        return set(store.scan_iter(match="_kombu.*"))


@pytest.fixture(scope="session")
def evolution_sandbox():
    """The Evolution sandbox started the way users start it (`manage.py evolution_sandbox`), on 127.0.0.1, for the
    whole session, with a second instance for multi-instance behaviour. Reset it (or use sandbox_settings) per test."""
    sandbox = start_sandbox_process(api_key="test-key", instances=["console", "sales"], hang_seconds=3)
    yield sandbox
    sandbox.stop()


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

    from config.celery import BULK_QUEUE, MAINTENANCE_QUEUE, TRANSACTIONAL_QUEUE, app

    app.control.purge()
    with start_worker(
        app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        queues=[TRANSACTIONAL_QUEUE, BULK_QUEUE, MAINTENANCE_QUEUE],
        shutdown_timeout=15,
    ) as worker:
        yield worker
    _close_the_database_connections_of(worker.pool)
    app.control.purge()


def _close_the_database_connections_of(pool) -> None:
    """Celery leaves a stopped worker's threads running, each holding its connection to the test database, and
    PostgreSQL then refuses to drop that database at the end of the run. Close them in their own threads."""
    from django.db import connections

    threads = pool.executor._max_workers
    everyone_has_one = threading.Barrier(threads)

    def close() -> None:
        everyone_has_one.wait(timeout=10)  # each of the pool's threads takes exactly one of these jobs
        connections.close_all()

    for _ in range(threads):
        pool.executor.submit(close)
    pool.executor.shutdown(wait=True)

