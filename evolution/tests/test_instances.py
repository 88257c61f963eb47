"""What the console knows about its Evolution instances: `manage.py evolution_status` and the dashboard's states,
asked of the sandbox over HTTP."""
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError

from evolution.instances import instance_states


@pytest.fixture
def evolution(sandbox_settings, evolution_sandbox):
    """The console's sandbox with both of its instances configured, both open, and no state remembered."""
    sandbox_settings.EVOLUTION_INSTANCES = [evolution_sandbox.instance, evolution_sandbox.other_instance]
    cache.clear()
    yield evolution_sandbox
    cache.clear()


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- evolution_status -----------------------------------------------------------------------------------------


def test_it_prints_each_instance_state_and_succeeds_when_all_are_open(evolution):
    output = run("evolution_status")

    assert "console: open" in output and "sales: open" in output


def test_it_fails_naming_the_instances_that_are_not_open(evolution):
    evolution.set_state("close", instance="sales")
    out = StringIO()

    with pytest.raises(CommandError, match="not open: sales"):
        call_command("evolution_status", stdout=out)
    assert "sales: close" in out.getvalue()


def test_an_unreachable_evolution_is_reported_not_raised(settings):
    settings.EVOLUTION_API_URL = "http://127.0.0.1:1"  # nothing listens there
    settings.EVOLUTION_INSTANCES = ["console"]
    out = StringIO()

    with pytest.raises(CommandError, match="not open: console"):
        call_command("evolution_status", stdout=out)
    assert "console: unreachable (connection_error" in out.getvalue()


# --- instance_states (the dashboard's) ------------------------------------------------------------------------


def test_the_states_of_all_instances_come_back_in_settings_order(evolution):
    evolution.set_state("connecting", instance="sales")

    states = instance_states()

    assert [(s["name"], s["state"], s["ok"]) for s in states] == [("console", "open", True), ("sales", "connecting", False)]


def test_states_are_remembered_for_a_few_seconds_so_reloads_do_not_ask_again(evolution):
    instance_states()
    evolution.set_state("close", instance="console")

    assert instance_states()[0]["state"] == "open"  # from the cache
    cache.clear()
    assert instance_states()[0]["state"] == "close"
