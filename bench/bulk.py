"""Bulk ingest: POST /messages/bulk with 1,000 messages per request, served as in production, driven by wrk.

    .venv/bin/python bench/bulk.py [--runs 3] [--connections 4] [--duration 10] [--batch 1000]

Reports messages accepted per second (1,000 x 2xx answers / duration) and the latency of one bulk request.
Checks afterwards, with no worker running: rows == messages in the 2xx answers (plus whole requests cut off in
flight when wrk stopped) and every row waits in the queue exactly once, in one send task's arguments.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.ingest import measure  # noqa: E402


def bulk_body(size: int) -> dict:
    # Distinct phones, as a real campaign would send; the last 4 digits stay clear of the sandbox's scripted ones.
    return {"messages": [
        {"phone": f"+55 11 9{(i // 9000):04d}-{1000 + i % 9000:04d}", "message": f"Your code is {i:06d}."}
        for i in range(size)
    ]}


def one_run(index: int, *, connections: int, duration: float, batch: int) -> dict:
    run = measure(
        f"bulk-{index}", path="/messages/bulk", body=bulk_body(batch), connections=connections, duration=duration,
        messages_per_request=batch,
    )
    return {
        "messages_per_s": round(run["answers_2xx"] * batch / run["seconds"], 1),
        "requests_per_s": round(run["answers_2xx"] / run["seconds"], 2),
        **run,
    }


def main(argv=None) -> dict:
    parser = harness.load_options(__doc__, connections=4)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    runs = harness.repeat(one_run, args.runs, connections=args.connections, duration=args.duration, batch=args.batch)
    return harness.summarise(
        f"bulk ingest POST /messages/bulk ({args.batch} per request)",
        runs,
        [("messages_per_s", "messages accepted/s"), ("p50_ms", "p50 latency ms (one request)"),
         ("p99_ms", "p99 latency ms (one request)"), ("non_2xx", "non-2xx answers")],
        checks_ok=all(run["checks_ok"] for run in runs),
    )


if __name__ == "__main__":
    summary = main()
    sys.exit(0 if summary["checks_ok"] else 1)
