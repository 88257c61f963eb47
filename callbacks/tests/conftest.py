import pytest


@pytest.fixture(autouse=True)
def private_networks_allowed(settings):
    """These tests' integrator endpoints listen on 127.0.0.1, which callbacks refuse by default (SSRF); the tests
    of that refusal set CALLBACK_ALLOW_PRIVATE_NETWORKS back to False."""
    settings.CALLBACK_ALLOW_PRIVATE_NETWORKS = True
    return settings
