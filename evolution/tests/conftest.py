"""The Evolution sandbox as a pytest fixture.

`evolution_sandbox` (session scope) is one sandbox on 127.0.0.1 for the whole run, with the API key and
instances from Django settings, so code under test only needs `settings.EVOLUTION_API_URL = evolution_sandbox.url`.
Call `evolution_sandbox.reset()` at the start of a test (or use the function-scoped `sandbox` fixture) to forget
earlier sends. `start_sandbox()` starts an extra one with other options; stop it with `.stop()`.
"""
import pytest

from evolution.sandbox.in_thread import RunningSandbox, run_in_thread

# Long enough that a client with a short test timeout always times out on a ...0408 number, short enough that
# a client with the production timeout is not stuck for long.
TEST_HANG_SECONDS = 5.0


def start_sandbox(**options) -> RunningSandbox:
    """Start a sandbox in a background thread; `options` are run_in_thread's (api_key, instances, latency_ms,
    hang_seconds, quiet). Defaults come from Django settings when they are configured."""
    defaults = {"api_key": "sandbox-key", "instances": ["console"], "hang_seconds": TEST_HANG_SECONDS}
    try:
        from django.conf import settings

        defaults["api_key"] = settings.EVOLUTION_API_KEY
        defaults["instances"] = list(settings.EVOLUTION_INSTANCES or [settings.EVOLUTION_INSTANCE_NAME])
    except Exception:  # Django not configured: the plain defaults will do
        pass
    return run_in_thread(**{**defaults, **options})


@pytest.fixture(scope="session")
def evolution_sandbox():
    """One sandbox for the test session: `.url`, `.api_key`, `.instance`, `.reset()`, `.set_state()`,
    `.set_latency()`, `.sent_messages()`, `.inbound()`."""
    running = start_sandbox()
    yield running
    running.stop()


@pytest.fixture
def sandbox(evolution_sandbox):
    """The session's sandbox, reset for this test."""
    evolution_sandbox.reset()
    return evolution_sandbox
