"""The web tier's ceiling: requests/s that gunicorn and Django answer when the console does none of its work.

    .venv/bin/python bench/ceiling.py [--runs 3] [--connections 32] [--duration 10]

wrk GETs a path no route matches, served as in production (the same gunicorn settings as bench/ingest.py), 32
connections 10 s: the API's JSON 404 goes through every middleware that POST /messages goes through, with no
authentication, no database and no Redis. No request of the console can be answered faster on the same machine,
so this is what ingest's figure is read against (README, Performance). Checks: every answer is that 404, and no
socket errors.
"""
from __future__ import annotations

import sys
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
    run = {**harness.wrk_timings(result), "answers_2xx": result["ok"]}
    run["answers_per_s"] = round(result["requests"] / run["seconds"], 1)
    # every answer is the 404 (wrk's "non-2xx"), none lost
    run["checks_ok"] = result["ok"] == 0 and result["non_2xx"] == result["requests"] > 0 and run["socket_errors"] == 0
    return run


def main(argv=None) -> dict:
    parser = harness.load_options(__doc__, connections=32)
    args = parser.parse_args(argv)
    runs = harness.repeat(one_run, args.runs, connections=args.connections, duration=args.duration)
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
