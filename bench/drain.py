"""Drain: N messages queued, then workers started the way the README says send them all to the sandbox.

    .venv/bin/python bench/drain.py [--runs 3] [--messages 5000] [--latency-ms 0]
    .venv/bin/python bench/drain.py --runs 1 --messages 50000 --memory     # worker RSS over a long drain

The messages are accepted (rows + tasks in Redis) while no worker runs; then the workers start and the rate is
messages / (last message finished - first attempt started), read from the rows themselves. Every message must
end `sent` with exactly one attempt row, and the sandbox must have received each exactly once.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402


def start_sandbox(group: harness.Processes, latency_ms: int) -> str:
    port = harness.free_port()
    process = group.start(
        "sandbox",
        [harness.PYTHON, "manage.py", "evolution_sandbox", "--host", "127.0.0.1", "--port", str(port),
         "--api-key", harness.API_KEY, "--instances", harness.INSTANCE, "--latency-ms", str(latency_ms), "--quiet"],
    )
    harness.wait_for(lambda: process.poll() is None and harness.port_answers(port), timeout=30, what="sandbox")
    return f"http://127.0.0.1:{port}"


def worker_argv(index: int) -> list[str]:
    """The README's worker command (one of BENCH_WORKER_PROCESSES), with a unique node name."""
    return [
        str(harness.BIN / "celery"), "-A", "config", "worker", "-Q", "transactional_messages,bulk_messages,maintenance",
        "--pool", harness.WORKER_POOL, "--concurrency", str(harness.WORKER_CONCURRENCY),
        "--loglevel", "INFO", "-n", f"bench{index}@%h",
    ]


def phone(i: int) -> str:
    """A distinct Brazilian mobile per message whose last 4 digits (1000-9999) avoid the sandbox's scripted failures."""
    return f"+55119{(i // 9000) % 10000:04d}{1000 + i % 9000:04d}"


def queue_messages(count: int) -> None:
    """Accept `count` messages through the service (rows committed, tasks published after commit)."""
    from messaging import services

    batch = 1000
    for start in range(0, count, batch):
        size = min(batch, count - start)
        if hasattr(services, "accept_messages"):
            items = [{"phone": phone(start + i), "text": f"drain {start + i}"} for i in range(size)]
            services.accept_messages(items=items)
        else:
            for i in range(size):
                services.accept_message(phone=phone(start + i), text=f"drain {start + i}")


def finished_count() -> int:
    from messaging.models import FINAL_STATUSES, OutboundMessage

    return OutboundMessage.objects.filter(status__in=FINAL_STATUSES).count()


def check(count: int, sandbox_url: str) -> dict:
    from django.db.models import Count, Max, Min

    from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage, SendAttempt

    span = OutboundMessage.objects.aggregate(last=Max("finished_at"))
    first = SendAttempt.objects.aggregate(first=Min("started_at"))["first"]
    seconds = (span["last"] - first).total_seconds() if span["last"] and first else None
    per_message = SendAttempt.objects.values("message_id").annotate(n=Count("id"))
    sandbox_received = len(httpx.get(f"{sandbox_url}/_sandbox/messages", timeout=60).json())
    result = {
        "messages": count,
        "sent": OutboundMessage.objects.filter(status=MessageStatus.SENT).count(),
        "attempt_rows": SendAttempt.objects.count(),
        "attempts_sent": SendAttempt.objects.filter(outcome=AttemptOutcome.SENT).count(),
        "messages_with_more_than_one_attempt": per_message.filter(n__gt=1).count(),
        "sandbox_received": sandbox_received,
        "drain_seconds": round(seconds, 3) if seconds else None,
        "msgs_per_s": round(count / seconds, 1) if seconds else None,
    }
    result["checks_ok"] = (
        result["sent"] == result["attempt_rows"] == result["attempts_sent"] == sandbox_received == count
        and result["messages_with_more_than_one_attempt"] == 0
    )
    return result


def one_run(index: int, *, count: int, latency_ms: int, memory: bool) -> dict:
    harness.reset_state()
    with harness.processes(f"drain-{latency_ms}ms-{index}") as group:
        sandbox_url = start_sandbox(group, latency_ms)
        from django.conf import settings

        settings.EVOLUTION_API_URL = sandbox_url
        queue_started = time.monotonic()
        queue_messages(count)
        queue_seconds = time.monotonic() - queue_started
        started = time.monotonic()
        workers = [group.start(f"worker{i}", worker_argv(i), EVOLUTION_API_URL=sandbox_url)
                   for i in range(harness.WORKER_PROCESSES)]
        pids = [worker.pid for worker in workers]
        deadline = started + max(120.0, count / 20)
        rss_samples: list[tuple[int, int]] = []  # (messages finished, worker RSS KiB)
        done = 0
        while done < count and time.monotonic() < deadline:
            if any(worker.poll() is not None for worker in workers):
                raise RuntimeError("a worker exited during the drain; see bench/results/")
            time.sleep(0.5)
            done = finished_count()
            if memory:
                rss_samples.append((done, harness.rss_kib(pids)))
        wall = time.monotonic() - started
        result = check(count, sandbox_url)
    result.update(latency_ms=latency_ms, queue_seconds=round(queue_seconds, 2), wall_seconds_incl_startup=round(wall, 2))
    if memory and rss_samples:
        warm = next((rss for finished, rss in rss_samples if finished >= count * 0.1), rss_samples[0][1])
        end = rss_samples[-1][1]
        result.update(rss_warm_mib=round(warm / 1024, 1), rss_end_mib=round(end / 1024, 1),
                      rss_growth_pct=round(100 * (end - warm) / warm, 1))
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--memory", action="store_true", help="sample the workers' RSS during the drain")
    args = parser.parse_args(argv)
    harness.setup_django()
    harness.prepare_database()
    runs = [one_run(i, count=args.messages, latency_ms=args.latency_ms, memory=args.memory) for i in range(args.runs)]
    figures = [("msgs_per_s", "messages/s")]
    if args.memory:
        figures += [("rss_warm_mib", "worker RSS at 10% (MiB)"), ("rss_end_mib", "worker RSS at end (MiB)"),
                    ("rss_growth_pct", "RSS growth %")]
    name = f"drain {args.messages} messages, sandbox {args.latency_ms} ms, pacing off"
    return harness.summarise(name, runs, figures, checks_ok=all(run["checks_ok"] for run in runs))


if __name__ == "__main__":
    summary = main()
    sys.exit(0 if summary["checks_ok"] else 1)
