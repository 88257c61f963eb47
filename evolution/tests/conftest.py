"""The sandbox in a thread of the test process, for the tests of the sandbox and the client themselves.

`sandbox_in_thread` (session scope) is one sandbox on 127.0.0.1 with the API key and instances from Django
settings; `sandbox` is that one, reset for the test. Both are tests_support.SandboxControl, like the root
conftest's `evolution_sandbox` (the `manage.py evolution_sandbox` process the console's tests send through).
"""
import pytest
from django.conf import settings

from tests_support import start_sandbox_in_thread

# Long enough that a client with a short test timeout always times out on a ...0408 number, short enough that
# a client with the production timeout is not stuck for long.
TEST_HANG_SECONDS = 5.0


@pytest.fixture(scope="session")
def sandbox_in_thread():
    """One in-thread sandbox for the test session."""
    running = start_sandbox_in_thread(
        api_key=settings.EVOLUTION_API_KEY,
        instances=list(settings.EVOLUTION_INSTANCES or [settings.EVOLUTION_INSTANCE_NAME]),
        hang_seconds=TEST_HANG_SECONDS,
    )
    yield running
    running.stop()


@pytest.fixture
def sandbox(sandbox_in_thread):
    """The session's in-thread sandbox, reset for this test."""
    sandbox_in_thread.reset()
    return sandbox_in_thread
