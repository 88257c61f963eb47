"""The benchmarks' environment: what `make bench` measures must not depend on the shell it is run from."""
from bench import harness


def test_benchmarks_run_with_pacing_off_whatever_the_callers_environment_says(monkeypatch):
    monkeypatch.setenv("EVOLUTION_RATE_LIMIT", "20/m")
    monkeypatch.setenv("EVOLUTION_RATE_LIMITS", "console=1/s")
    monkeypatch.setenv("EVOLUTION_SEND_JITTER_SECONDS", "2")

    env = harness.child_env()

    assert (env["EVOLUTION_RATE_LIMIT"], env["EVOLUTION_RATE_LIMITS"], env["EVOLUTION_SEND_JITTER_SECONDS"]) == ("", "", "0")
