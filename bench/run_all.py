"""`make bench`: ingest, bulk ingest, drain (sandbox at 0 ms and 50 ms) and the webhook receiver, three runs each, then
one table.

    .venv/bin/python bench/run_all.py [--runs 3] [--memory]

--memory adds the long drain (50,000 messages, one run) that samples the workers' RSS.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bulk, drain, harness, ingest, webhooks  # noqa: E402

# (summary, key, label, target as shown, is the median on target?)
ROWS = [
    ("ingest POST /messages", "accepted_per_s", "accepted/s", ">= 1,000", lambda v: v >= 1000),
    ("ingest POST /messages", "p99_ms", "p99 ms", "<= 60", lambda v: v <= 60),
    ("ingest POST /messages", "non_2xx", "non-2xx", "0", lambda v: v == 0),
    ("bulk", "messages_per_s", "bulk messages accepted/s", ">= 10,000", lambda v: v >= 10000),
    ("drain 0 ms", "msgs_per_s", "drain msgs/s, sandbox 0 ms", ">= 500", lambda v: v >= 500),
    ("drain 50 ms", "msgs_per_s", "drain msgs/s, sandbox 50 ms", ">= 300", lambda v: v >= 300),
    ("webhooks", "accepted_per_s", "webhook events accepted/s", "-", None),
    ("webhooks", "p99_ms", "webhook p99 ms, 32 senders", "< 50", lambda v: v < 50),
    ("memory", "rss_growth_pct", "worker RSS growth %, 50k msgs", "< 10", lambda v: v < 10),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args(argv)
    runs = ["--runs", str(args.runs)]
    started = time.strftime("%Y-%m-%d %H:%M")
    load_before = harness.load_average()
    summaries = {
        "ingest POST /messages": ingest.main(runs),
        "bulk": bulk.main(runs),
        "drain 0 ms": drain.main(runs + ["--latency-ms", "0"]),
        "drain 50 ms": drain.main(runs + ["--latency-ms", "50"]),
        "webhooks": webhooks.main(runs),
    }
    if args.memory:
        summaries["memory"] = drain.main(["--runs", "1", "--messages", "50000", "--memory"])
    print(f"\nAll benchmarks ({started}, load average before {load_before}, after {harness.load_average()};"
          f" workers: {harness.WORKER_PROCESSES} x {harness.WORKER_POOL} {harness.WORKER_CONCURRENCY};"
          f" gunicorn {' '.join(harness.GUNICORN_ARGS)})")
    print(f"| {'figure':<32} | {'min':>9} | {'median':>9} | {'max':>9} | {'target':<10} | met | checks |")
    print(f"|{'-' * 34}|{'-' * 11}|{'-' * 11}|{'-' * 11}|{'-' * 12}|-----|--------|")
    for name, key, label, target, on_target in ROWS:
        summary = summaries.get(name)
        if not summary or key not in summary:
            continue
        s = summary[key]
        print(f"| {label:<32} | {s['min']:>9,.1f} | {s['median']:>9,.1f} | {s['max']:>9,.1f} | {target:<10} |"
              f" {'-' if on_target is None else 'yes' if on_target(s['median']) else 'no':<3} | {'OK' if summary['checks_ok'] else 'FAILED':<6} |")
    print(json.dumps({name: {k: v for k, v in s.items() if k != "runs"} for name, s in summaries.items()}))
    return 0 if all(s["checks_ok"] for s in summaries.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
