"""Campaign fan-out: import 100,000 contacts from a CSV, then time a run of all of them until it is ready to send.

    .venv/bin/python bench/campaign_fanout.py [--contacts 100000] [--runs 1]

Each run starts from empty contact and message tables in the bench database (``console_bench`` unless
BENCH_DATABASE_URL), then times, in this process and through the same service functions the admin, the API and
the workers call:
  - import: the CSV's preview (parse and report) plus the import a worker runs (``contact_import.import_contacts``);
  - fan-out: launch -> beat's due-check (``start_due_runs``) -> the run's preparation a worker runs
    (``prepare_run``) -> beat's first release (``dispatch_due_messages``). The run is then ready to send: one
    message per recipient stored with its send time at the campaign's pace, and the first ones released to the
    bulk queue.
Checks afterwards: as many messages as contacts, the run prepared and counting them, the first release queued.
Peak memory is this process's maximum resident size (the fan-out works in chunks, so it stays flat).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402

TAG = "bench-fanout"


def contacts_csv(count: int) -> str:
    # Distinct Brazilian mobiles; the last 4 digits stay clear of the sandbox's scripted ones.
    lines = ["phone,name,tags,date"]
    lines += [f"+55 11 9{(i // 9000):04d}-{1000 + i % 9000:04d},Person {i},{TAG},{1 + i % 28} May" for i in range(count)]
    return "\n".join(lines) + "\n"


def reset_campaign_state() -> None:
    from django.db import connection

    from campaigns.models import Campaign, CampaignRun, Contact, ContactImport, Tag

    harness.reset_state()
    tables = [CampaignRun, Campaign, Contact.tags.through, Contact, Tag, ContactImport]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(model._meta.db_table for model in tables)} RESTART IDENTITY CASCADE")
        cursor.execute("ANALYZE")


def one_run(index: int, *, contacts: int) -> dict:
    from django.db import connection

    from campaigns import contact_import, services
    from campaigns.models import CampaignRun, ContactImport, ImportStatus, RunStatus
    from messaging import maintenance
    from messaging.models import MessageStatus, OutboundMessage

    reset_campaign_state()
    text = contacts_csv(contacts)

    started = time.perf_counter()
    upload = contact_import.preview_import(csv_text=text, file_name="bench.csv")
    ContactImport.objects.filter(pk=upload.pk).update(status=ImportStatus.QUEUED)  # what start_import does
    contact_import.import_contacts(import_id=upload.pk)
    import_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would after a 100,000-row import

    campaign = services.create_campaign(name="Fan-out", text="Hola {name}, tu cita es el {date}", audience=TAG,
                                        rate_per_minute=20)
    started = time.perf_counter()
    services.launch_campaign(campaign_id=campaign.pk)
    (run,) = services.start_due_runs(campaign_id=campaign.pk)
    run = services.prepare_run(run_id=run.pk)
    prepared = time.perf_counter() - started
    time.sleep(max(0.0, services.FIRST_SEND_DELAY.total_seconds() - prepared))  # the first send time must have come
    released_before = time.perf_counter()
    released = maintenance.dispatch_due_messages()
    release_seconds = time.perf_counter() - released_before
    fan_out_seconds = prepared + release_seconds

    messages = OutboundMessage.objects.filter(source=run.source).count()
    queued = OutboundMessage.objects.filter(source=run.source, status=MessageStatus.QUEUED).count()
    run = CampaignRun.objects.get(pk=run.pk)
    checks_ok = (
        messages == contacts and run.created == contacts and run.recipients == contacts
        and run.status == RunStatus.RUNNING and queued >= 1
    )
    result = {
        "contacts": contacts,
        "import_s": round(import_seconds, 2),
        "prepare_s": round(prepared, 2),
        "first_release_s": round(release_seconds, 3),
        "fan_out_s": round(fan_out_seconds, 2),
        "messages": messages,
        "released": queued,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "checks_ok": checks_ok,
    }
    print(f"run {index}: {result} (dispatch returned {released!r})", flush=True)
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    harness.setup_django()
    harness.prepare_database()
    runs = [one_run(index, contacts=args.contacts) for index in range(args.runs)]
    harness.reset_state()  # leave no released tasks in the bench queues
    return harness.summarise(
        f"campaign fan-out ({args.contacts:,} contacts)",
        runs,
        [("import_s", "CSV import s (preview + import)"), ("fan_out_s", "launch -> ready to send s"),
         ("prepare_s", "  of which the run's messages s"), ("peak_rss_mib", "peak memory MiB")],
        checks_ok=all(run["checks_ok"] for run in runs),
    )


if __name__ == "__main__":
    summary = main()
    sys.exit(0 if summary["checks_ok"] else 1)
