"""`make bench-compare PEER_DIR=../shared/peer`: the peer's benchmarks and the console's, back to back, in one table.

    .venv/bin/python bench/compare.py --peer-dir ../shared/peer [--runs 1] [--memory]

The peer (the FastAPI + Celery design the console replaces) is measured by its own scripts, unchanged: ingest with
its durable variant (B2: row + enqueue, 2 uvicorn workers) and its async enqueue-only one (S2), and the drain of
its durable variant with a prefork-2 and a threads-16 worker, gateway at 0 ms and 50 ms. Then the console's
`make bench` figures, and the web tier's ceiling (bench/ceiling.py: the same server answering a JSON 404, no work),
which bounds ingest's figure. This machine's speed varies from day to day, so only the ratios of one run mean anything;
the goals (issue 14) are ratios to the best peer configuration measured in the same run.

The peer's scripts wait for an idle machine and redo a run that other processes disturbed: run this with nothing
else busy. Their venv, logs and results go to PEER_WORK (default /tmp/peer-bench).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bulk, ceiling, drain, harness, ingest  # noqa: E402

PEER_WORK = Path(os.environ.get("PEER_WORK", "/tmp/peer-bench"))


def run_peer(peer_dir: Path, script: str, runs: int, **knobs: str) -> list[dict]:
    """Run one of the peer's scripts; return the last attempt of each of its runs (what its summary keeps)."""
    env = dict(os.environ, PEER_WORK=str(PEER_WORK), RUNS=str(runs), **knobs)
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"):  # ours, not the peer's
        env.pop(name, None)
    subprocess.run([str(peer_dir / script)], env=env, check=True)
    kind = "ingest" if "ingest" in script else "e2e"
    records = [json.loads(line) for line in (PEER_WORK / "results" / f"{kind}.jsonl").read_text().splitlines() if line]
    last = {}
    for record in records:
        key = record["config"] if kind == "ingest" else (record["pool"], record["latency_ms"])
        last[(key, record["run"])] = record
    return list(last.values())


def median_of(records: list[dict], field: str, **where) -> float | None:
    values = [r[field] for r in records if all(r.get(k) == v for k, v in where.items())]
    return statistics.median(values) if values else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-dir", required=True, type=Path)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--memory", action="store_true", help="also the console's 50,000-message drain (RSS)")
    args = parser.parse_args(argv)
    peer_dir = args.peer_dir.resolve()
    started = time.strftime("%Y-%m-%d %H:%M")

    peer_ingest = run_peer(peer_dir, "bench_ingest.sh", args.runs, CONFIGS="B2 S2")
    peer_drain = run_peer(peer_dir, "bench_e2e.sh", args.runs, VARIANTS="B", LATENCIES="0 50",
                          POOLS="prefork:2 threads:16", N="2000")
    runs = ["--runs", str(args.runs)]
    console = {
        "ingest": ingest.main(runs),
        "ceiling": ceiling.main(runs),  # what the same web tier answers doing no work: ingest's bound
        "bulk": bulk.main(runs),
        "drain0": drain.main(runs + ["--latency-ms", "0"]),
        "drain50": drain.main(runs + ["--latency-ms", "50"]),
    }
    if args.memory:
        console["memory"] = drain.main(["--runs", "1", "--messages", "50000", "--memory"])

    def ours(name: str, key: str) -> float | None:
        return console[name][key]["median"] if name in console and key in console[name] else None

    def best_drain(latency: int) -> tuple[float | None, str]:
        figures = {pool: median_of(peer_drain, "msgs_per_s", pool=pool, latency_ms=latency)
                   for pool in ("prefork:2", "threads:16")}
        pool, value = max(((p, v) for p, v in figures.items() if v is not None), key=lambda pv: pv[1], default=(None, None))
        return value, f"peer B, {pool}" if pool else "-"

    s2_rps, s2_p99 = median_of(peer_ingest, "rps", config="S2"), median_of(peer_ingest, "p99_ms", config="S2")
    b2_rps = median_of(peer_ingest, "rps", config="B2")
    drain0, drain0_by = best_drain(0)
    drain50, drain50_by = best_drain(50)
    # (figure, console, peer, peer's config, goal as text, is it met?)
    rows = [
        ("POST /messages accepted/s", ours("ingest", "accepted_per_s"), s2_rps, "peer S2 (async, no row)",
         ">= 1.0x", lambda c, p: c / p >= 1.0),
        ("POST /messages accepted/s (durable peer)", ours("ingest", "accepted_per_s"), b2_rps, "peer B2 (row + enqueue)",
         "-", None),
        ("POST /messages p99 ms", ours("ingest", "p99_ms"), s2_p99, "peer S2", "<= peer", lambda c, p: c <= p),
        ("web tier doing no work (JSON 404) answers/s", ours("ceiling", "answers_per_s"), s2_rps,
         "peer S2 (async, no row)", "-", None),
        ("web tier doing no work (JSON 404) p99 ms", ours("ceiling", "p99_ms"), s2_p99, "peer S2", "-", None),
        ("POST /messages/bulk messages/s", ours("bulk", "messages_per_s"), None, "-", ">= 20,000",
         lambda c, p: c >= 20000),
        ("drain msgs/s, gateway 0 ms", ours("drain0", "msgs_per_s"), drain0, drain0_by, ">= 1.0x",
         lambda c, p: c / p >= 1.0),
        ("drain msgs/s, gateway 50 ms", ours("drain50", "msgs_per_s"), drain50, drain50_by, ">= 1.5x",
         lambda c, p: c / p >= 1.5),
    ]
    if args.memory:
        rows.append(("worker RSS growth %, 50,000 msgs", ours("memory", "rss_growth_pct"), None, "-", "< 10",
                     lambda c, p: c < 10))

    checks = {name: summary["checks_ok"] for name, summary in console.items()}
    peer_ok = all(not r.get("contaminated") for r in peer_ingest + peer_drain) and all(
        r.get("ok") for r in peer_drain)
    print(f"\nConsole vs peer ({started}; {args.runs} run(s) each, medians; load average now {harness.load_average()};"
          f" console workers: {harness.WORKER_PROCESSES} x {harness.WORKER_POOL} {harness.WORKER_CONCURRENCY})")
    print("| figure | console | peer | peer config | ratio | goal | met |")
    print("|---|---:|---:|---|---:|---|---|")
    for label, mine, peer, config, goal, met in rows:
        if mine is None:
            continue
        ratio = f"{mine / peer:.2f}" if peer else "-"
        verdict = "-" if met is None else ("yes" if met(mine, peer) else "no")
        print(f"| {label} | {mine:,.1f} | {'-' if peer is None else f'{peer:,.1f}'} | {config} | {ratio} | {goal} | {verdict} |")
    print(f"Console checks (rows == answers, each task published once, each message sent once): "
          f"{', '.join(k + (' OK' if v else ' FAILED') for k, v in checks.items())}; peer runs undisturbed and "
          f"all sent: {'yes' if peer_ok else 'NO'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
