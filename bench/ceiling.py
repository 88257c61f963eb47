"""The web tier's ceiling: requests/s that gunicorn and Django answer when the console does none of its work.

    .venv/bin/python bench/ceiling.py [--runs 3] [--connections 32] [--duration 10]

wrk GETs a path no route matches, served as in production (the same gunicorn settings as bench/ingest.py), 32
connections 10 s: the API's JSON 404 goes through every middleware that POST /messages goes through, with no
authentication, no database and no Redis. No request of the console can be answered faster on the same machine,
so this is what ingest's figure is read against (README, Performance). Checks: every answer is that 404, and no
socket errors.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.ingest import serve, wrk  # noqa: E402

PATH = "/no-such-path"


def one_run(index: int, *, connections: int, duration: float) -> dict:
    with harness.processes(f"ceiling-{index}") as group:
        port = serve(group, "gunicorn")
        wrk(port, token=None, body=None, path=PATH, connections=connections, duration=2)  # warm-up
        result = wrk(port, token=None, body=None, path=PATH, connections=connections, duration=duration)
    seconds = result["duration_us"] / 1e6
    socket_errors = result["connect_errors"] + result["read_errors"] + result["write_errors"] + result["timeouts"]
    return {
        "answers_per_s": round(result["requests"] / seconds, 1),
        "seconds": seconds,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "answers_2xx": result["ok"],
        "socket_errors": socket_errors,
        # every answer is the 404 (wrk's "non-2xx"), none lost
        "checks_ok": result["ok"] == 0 and result["non_2xx"] == result["requests"] > 0 and socket_errors == 0,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10)
    args = parser.parse_args(argv)
    harness.setup_django()
    harness.prepare_database()
    runs = []
    for index in range(args.runs):
        runs.append(one_run(index, connections=args.connections, duration=args.duration))
        time.sleep(1)
    return harness.summarise(
        f"web tier ceiling: GET {PATH} (the JSON 404, no database or Redis)",
        runs,
        [("answers_per_s", "answers/s"), ("p50_ms", "p50 latency ms"), ("p99_ms", "p99 latency ms"),
         ("socket_errors", "socket errors")],
        checks_ok=all(run["checks_ok"] for run in runs),
    )


if __name__ == "__main__":
    summary = main()
    sys.exit(0 if summary["checks_ok"] else 1)
