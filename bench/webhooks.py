"""Webhook receiver: Evolution's `messages.upsert` POSTed to /webhooks/evolution/{instance} under gunicorn as in
production, by wrk with 32 connections (32 concurrent senders) for a bounded time.

    .venv/bin/python bench/webhooks.py [--runs 3] [--connections 32] [--duration 10] [--contacts 2000] [--rate N]

Every request is a valid, signed (the instance's secret header) customer message from one of `--contacts`
contacts, with its own WhatsApp id; every tenth one is a retry of the connection's previous event (Evolution
retries webhooks), which must be answered 2xx as a duplicate and stored once. No worker runs, so afterwards:
rows == first-time 2xx answers (+ at most one per connection cut off in flight), every stored event is a distinct
WhatsApp message, and each row's `process_webhook_event` task waits in the queue exactly once.

By default each sender posts its next event as soon as the last is answered (saturation: the p99 is then set by
how many events per second the machine can take). With `--rate N` the senders offer about N events/s in all: each
waits a random pause (uniform, mean connections/N seconds) after an answer before its next post, so the p99 is the
answer time at that load. The pause is random because a fixed one keeps the 32 senders, started together, posting
in lockstep: 32 events at once, then silence, which measured the burst (p99 52-103 ms at 100/s) and not the load.
"""
from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness, ingest  # noqa: E402

QUEUE = "maintenance"  # inbound's tasks (config/celery.py's default queue)
TASK = "process_webhook_event"

# wrk builds each request itself: a new event per request (a contact, a WhatsApp id, a time), every tenth a
# retry of the previous one. Counts 2xx, duplicates (2xx with "duplicate": true) and non-2xx.
LUA = r"""
local secret = os.getenv("BENCH_SECRET")
local instance = os.getenv("BENCH_INSTANCE")
local contacts = tonumber(os.getenv("BENCH_CONTACTS"))
local retry_every = tonumber(os.getenv("BENCH_RETRY_EVERY"))
local nonce = tonumber(os.getenv("BENCH_NONCE"))  -- new ids for each wrk run: the warm-up's cannot collide
local pause_ms = tonumber(os.getenv("BENCH_PAUSE_MS"))  -- after each answer, before the next post (--rate)
if pause_ms > 0 then
  -- A random pause (uniform, mean pause_ms), not a fixed one: with a fixed pause the 32 senders, started together,
  -- keep posting in lockstep (32 events within a few ms, then silence), which is no webhook source's pattern.
  function delay() return math.random(0, 2 * pause_ms) end
end
local path = "/webhooks/evolution/" .. instance
local headers = {["Content-Type"] = "application/json", ["x-console-webhook-secret"] = secret}
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(nonce * 1000 + tid)
  ok, dup, bad, sent, n = 0, 0, 0, 0, 0
  previous = nil
end

local template = '{"event":"messages.upsert","instance":"%s","data":{"key":{"remoteJid":"%d@s.whatsapp.net",' ..
  '"fromMe":false,"id":"3EB0%04X%02X%010X"},"pushName":"Contact %d","status":"DELIVERY_ACK","message":' ..
  '{"conversation":"hola, message %d of thread %d"},"messageType":"conversation","messageTimestamp":%d,' ..
  '"instanceId":"bench","source":"android"},"destination":"http://console/webhooks","date_time":' ..
  '"2026-11-30T12:00:00.%03dZ","sender":"5511900000001@s.whatsapp.net","server_url":"http://evolution:8080",' ..
  '"apikey":null}'

function request()
  sent = sent + 1
  n = n + 1
  if previous ~= nil and n % retry_every == 0 then
    return previous  -- Evolution retrying the event it just posted: same bytes
  end
  local contact = (n * 7919 + tid * 104729) % contacts
  local body = string.format(template, instance, 5511980000000 + contact, nonce, tid, n, contact, n, tid,
                             1764500000 + n, n % 1000)
  previous = wrk.format("POST", path, headers, body)
  return previous
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    if string.find(body, '"duplicate":%s*true') then dup = dup + 1 end
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total_ok, total_dup, total_bad, total_sent = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_dup = total_dup + thread:get("dup")
    total_bad = total_bad + thread:get("bad")
    total_sent = total_sent + thread:get("sent")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"duration_us":%d,"requests":%d,"sent":%d,"ok":%d,"duplicates":%d,"non_2xx":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d}\n',
    summary.duration, summary.requests, total_sent, total_ok, total_dup, total_bad, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def reset_inbound() -> str:
    """Empty inbound's tables and the maintenance queue; return the instance's webhook secret (kept)."""
    from django.db import connection

    from inbound import services
    from inbound.models import Batch, InboundMessage, Receipt, WebhookEvent

    tables = [m._meta.db_table for m in (InboundMessage, Batch, Receipt, WebhookEvent)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    harness.redis_client().delete(QUEUE, "unacked", "unacked_index", "unacked_mutex")
    return services.secret_for(harness.INSTANCE)


def wrk(port: int, *, secret: str, connections: int, duration: float, contacts: int, retry_every: int,
        rate: float | None = None) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    env = harness.child_env(BENCH_NONCE=str(secrets.randbelow(0x10000)), BENCH_SECRET=secret, BENCH_INSTANCE=harness.INSTANCE, BENCH_CONTACTS=str(contacts),
                            BENCH_RETRY_EVERY=str(retry_every),
                            BENCH_PAUSE_MS=str(round(1000 * connections / rate) if rate else 0))
    try:
        completed = subprocess.run(
            ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration:g}s", "--timeout", "10s", "-s", script.name,
             f"http://127.0.0.1:{port}/"],
            env=env, capture_output=True, text=True, timeout=duration + 60, check=True,
        )
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next(line for line in completed.stdout.splitlines() if line.startswith("WRK_RESULT "))
    return json.loads(line.removeprefix("WRK_RESULT "))


def queued_event_ids() -> list[int]:
    """The event ids of the process_webhook_event tasks waiting in the maintenance queue."""
    import base64

    client = harness.redis_client()
    ids: list[int] = []
    for start in range(0, client.llen(QUEUE), 5000):
        for raw in client.lrange(QUEUE, start, start + 4999):
            message = json.loads(raw)
            if message["headers"]["task"] != TASK:
                continue
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            ids.append(int(args[0]))
    return ids


def check(first_time_2xx: int, in_flight: int) -> dict:
    from inbound.models import WebhookEvent

    rows = list(WebhookEvent.objects.values_list("pk", "event", "body__data__key__id"))
    whatsapp_ids = Counter(whatsapp_id for _, _, whatsapp_id in rows)
    queued = Counter(queued_event_ids())
    return {
        "rows": len(rows),
        "queued_tasks": sum(queued.values()),
        "in_flight_at_stop": in_flight,
        "rows_match_2xx": first_time_2xx <= len(rows) <= first_time_2xx + in_flight,
        "no_duplicate_rows": all(count == 1 for count in whatsapp_ids.values())
        and {event for _, event, _ in rows} <= {"messages.upsert"},
        "every_row_queued_once": queued == Counter(pk for pk, _, _ in rows),
    }


def warm_up(port: int, **load) -> tuple[list[float], int]:
    """Load gunicorn until it answers at a steady rate. Its port answers as soon as the arbiter listens, but each of
    its workers then imports Django on its own, which on a busy 2-core machine takes many seconds: a run measured
    from there counts the boot. Steady: two 3-second rounds within 15 % of each other (at most 8 rounds). Returns
    the rounds' rates and how many requests they sent."""
    rates: list[float] = []
    sent = 0
    for _ in range(8):
        result = wrk(port, duration=3, **load)
        sent += result["sent"]
        rates.append(round(result["ok"] / (result["duration_us"] / 1e6), 1))
        if len(rates) >= 2 and rates[-1] > 0 and abs(rates[-1] - rates[-2]) <= 0.15 * rates[-1]:
            break
    return rates, sent


def one_run(index: int, *, connections: int, duration: float, contacts: int, retry_every: int,
            rate: float | None = None) -> dict:
    with harness.processes(f"webhooks-{index}") as group:
        secret = reset_inbound()
        port = ingest.serve(group, "gunicorn")
        warm_up_rates, sent = warm_up(port, secret=secret, connections=connections, contacts=contacts,
                                      retry_every=retry_every)
        harness.wait_until_answered(group.log("gunicorn"), path=f"/webhooks/evolution/{harness.INSTANCE}", sent=sent)
        secret = reset_inbound()
        result = wrk(port, secret=secret, connections=connections, duration=duration, contacts=contacts,
                     retry_every=retry_every, rate=rate)
    in_flight = result["sent"] - result["ok"] - result["non_2xx"]
    timings = harness.wrk_timings(result)
    run = {
        "accepted_per_s": round((result["ok"] - result["duplicates"]) / timings["seconds"], 1),
        "answered_per_s": round(result["ok"] / timings["seconds"], 1),
        **timings,
        "warm_up_answers_per_s": warm_up_rates,
        "p90_ms": result["p90_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "answers_2xx": result["ok"],
        "duplicates_answered": result["duplicates"],
        "non_2xx": result["non_2xx"],
        **check(result["ok"] - result["duplicates"], in_flight),
    }
    run["checks_ok"] = (
        run["rows_match_2xx"] and run["no_duplicate_rows"] and run["every_row_queued_once"] and run["non_2xx"] == 0
        and run["duplicates_answered"] > 0
    )
    return run


def main(argv=None) -> dict:
    parser = harness.load_options(__doc__, connections=32)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--retry-every", type=int, default=10, help="every Nth request repeats the previous event")
    parser.add_argument("--rate", type=float, default=None,
                        help="events/s the senders offer in all (default: as fast as they are answered)")
    args = parser.parse_args(argv)
    runs = harness.repeat(one_run, args.runs, connections=args.connections, duration=args.duration,
                          contacts=args.contacts, retry_every=args.retry_every, rate=args.rate)
    return harness.summarise(
        "webhooks POST /webhooks/evolution" + (f" at {args.rate:g} events/s offered" if args.rate else ""),
        runs,
        [("accepted_per_s", "events accepted/s"), ("p50_ms", "p50 latency ms"), ("p99_ms", "p99 latency ms"),
         ("non_2xx", "non-2xx answers"), ("socket_errors", "socket errors")],
        checks_ok=all(run["checks_ok"] for run in runs),
    )


if __name__ == "__main__":
    summary = main()
    sys.exit(0 if summary["checks_ok"] else 1)
