"""A test run leaves nothing behind: no keys in Redis, and a test database PostgreSQL lets it drop.

Checked by running pytest itself, with this repository's fixtures, on a small test that sends one message through
the real worker (whose threads then hold connections to the test database and whose queues the broker records),
records a counter and uses the cache.
"""
import os
import re
import subprocess
import sys
from urllib.parse import urlparse, urlunparse

import redis
from django.conf import settings
from django.db import connection

from tests_support import ROOT

A_TEST_THAT_SENDS_AND_COUNTS = '''
import pytest
from django.conf import settings
from django.core.cache import cache

from messaging import metrics, services
from messaging.models import OutboundMessage
from tests_support import wait_for


@pytest.mark.django_db(transaction=True)
def test_one_message_through_the_worker(celery_worker):
    message, _ = services.accept_message(phone="+5511987654321", text="hi")
    wait_for(lambda: OutboundMessage.objects.get(pk=message.pk).is_final)
    metrics.message_accepted(instance="console")
    cache.set("a-cached-value", 1)
    print("METRICS_KEY_PREFIX=" + settings.METRICS_KEY_PREFIX)
    print("CACHE_KEY_PREFIX=" + settings.CACHES["default"]["KEY_PREFIX"])
'''


def test_a_test_run_keeps_its_keys_under_its_own_prefixes_leaves_nothing_in_redis_and_drops_its_database(tmp_path):
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(A_TEST_THAT_SENDS_AND_COUNTS)
    # Its own database (pytest-django adds test_), beside this run's; the same Redis.
    database = urlparse(os.environ.get("DATABASE_URL", ""))._replace(path=f"/{connection.settings_dict['NAME']}_inner")
    env = {**os.environ, "DATABASE_URL": urlunparse(database)}
    for name in ("METRICS_KEY_PREFIX", "PACING_KEY_PREFIX", "CACHE_KEY_PREFIX"):
        env.pop(name, None)  # as `make test` starts it: the console's default prefixes
    with redis.Redis.from_url(settings.CELERY_BROKER_URL) as store:
        before = set(store.scan_iter())

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(ROOT), "-p", "conftest",
         "-s", str(test_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )

    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "teardown test databases" not in output
    metrics_prefix = re.search(r"METRICS_KEY_PREFIX=(\S+)", run.stdout).group(1)
    cache_prefix = re.search(r"CACHE_KEY_PREFIX=(\S+)", run.stdout).group(1)
    assert not metrics_prefix.startswith("console:") and not cache_prefix.startswith("console:")
    with redis.Redis.from_url(settings.METRICS_REDIS_URL) as store:
        assert list(store.scan_iter(match=f"{metrics_prefix}*")) == []
    with redis.Redis.from_url(settings.CELERY_BROKER_URL) as store:  # the tests' one Redis database
        # Worker heartbeats outlive the run by their 20 s TTL, as in production; anything else it made is gone.
        left = sorted(key for key in set(store.scan_iter()) - before if store.ttl(key) == -1)
    assert left == []
