"""Ingest: POST /messages against the console served as in production (gunicorn, PostgreSQL, Redis), driven by wrk.

    .venv/bin/python bench/ingest.py [--runs 3] [--connections 32] [--duration 10]

No worker runs, so every accepted message must still be waiting in the Redis queue afterwards: the benchmark
checks that rows == 2xx answers and that the queue holds exactly the rows' ids, each once.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402

LUA = harness.ROOT / "bench" / "post.lua"
ONE_MESSAGE = {"phone": "+55 11 98765-4321", "message": "Your order #1234 has shipped."}


def serve(group: harness.Processes, name: str) -> int:
    """Start gunicorn as production runs it; return its port once it answers."""
    port = harness.free_port()
    argv = [str(harness.BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", *harness.GUNICORN_ARGS]
    process = group.start(name, argv)
    harness.wait_for(lambda: process.poll() is None and harness.port_answers(port), timeout=30, what="gunicorn")
    return port


def wrk(port: int, *, token: str | None, body: dict | list | None, path: str, connections: int, duration: float,
        threads: int = 2) -> dict:
    """wrk with bench/post.lua: POST ``body`` with ``token``, or with no body a plain GET (bench/ceiling.py)."""
    env = harness.child_env(BENCH_PATH=path)
    body_file = None
    if body is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as body_file:
            json.dump(body, body_file)
        env.update(BENCH_TOKEN=token, BENCH_BODY_FILE=body_file.name)
    try:
        completed = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s", "--timeout", "10s",
             "-s", str(LUA), f"http://127.0.0.1:{port}{path}"],
            env=env, capture_output=True, text=True, timeout=duration + 60, check=True,
        )
    finally:
        if body_file is not None:
            Path(body_file.name).unlink(missing_ok=True)
    line = next(line for line in completed.stdout.splitlines() if line.startswith("WRK_RESULT "))
    return json.loads(line.removeprefix("WRK_RESULT "))


def check_rows_and_queue(answered_2xx: int, in_flight: int) -> dict:
    """Rows == 2xx answers, and each row waits in the queue exactly once (in one task's arguments).

    wrk stops with up to one request per connection in flight; the server still completes those (gunicorn is
    stopped gracefully before the check), so rows may exceed the 2xx answers wrk counted by at most that many.
    """
    from messaging.models import OutboundMessage

    message_ids = list(OutboundMessage.objects.values_list("pk", flat=True))
    queued = harness.queued_message_ids()
    return {
        "rows": len(message_ids),
        "queued_tasks": len(queued),
        "in_flight_at_stop": in_flight,
        "rows_match_2xx": answered_2xx <= len(message_ids) <= answered_2xx + in_flight,
        "every_row_enqueued_once": sorted(message_ids) == sorted(queued),
    }


def measure(label: str, *, path: str, body: dict, connections: int, duration: float, messages_per_request: int = 1) -> dict:
    """One warmed-up wrk run against gunicorn, then the checks. Shared by the single and the bulk benchmark."""
    harness.reset_state()
    token = harness.bench_token()
    with harness.processes(label) as group:
        port = serve(group, "gunicorn")
        warm_up = wrk(port, token=token, body=body, path=path, connections=connections, duration=2)
        harness.wait_until_answered(group.log("gunicorn"), path=path, sent=warm_up["sent"])
        harness.reset_state()
        result = wrk(port, token=token, body=body, path=path, connections=connections, duration=duration)
    in_flight = result["sent"] - result["ok"] - result["non_2xx"]
    run = {
        **harness.wrk_timings(result),
        "non_2xx": result["non_2xx"],
        "answers_2xx": result["ok"],
        **check_rows_and_queue(result["ok"] * messages_per_request, in_flight * messages_per_request),
    }
    run["checks_ok"] = run["rows_match_2xx"] and run["every_row_enqueued_once"] and run["non_2xx"] == 0
    return run


def one_run(index: int, *, connections: int, duration: float) -> dict:
    run = measure(f"ingest-{index}", path="/messages", body=ONE_MESSAGE, connections=connections, duration=duration)
    return {"accepted_per_s": round(run["answers_2xx"] / run["seconds"], 1), **run}


def main(argv=None) -> dict:
    parser = harness.load_options(__doc__, connections=32)
    args = parser.parse_args(argv)
    runs = harness.repeat(one_run, args.runs, connections=args.connections, duration=args.duration)
    return harness.summarise(
        "ingest POST /messages",
        runs,
        [("accepted_per_s", "accepted/s"), ("p50_ms", "p50 latency ms"), ("p99_ms", "p99 latency ms"),
         ("non_2xx", "non-2xx answers"), ("socket_errors", "socket errors")],
        checks_ok=all(run["checks_ok"] for run in runs),
    )


if __name__ == "__main__":
    summary = main()
    sys.exit(0 if summary["checks_ok"] else 1)
