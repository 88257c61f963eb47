"""Time the operator console's pages on a seeded database: p50/p95 over several loads of each page.

    # once: a database of a million messages and three million attempts (a few minutes on two cores)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/console_bench python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/console_bench python manage.py seed_fake_data \
        --messages 1000000 --attempts-per-message 3 --instances console,loja-sp,suporte
    # then, as often as you like
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/console_bench python bench/admin_bench.py --loads 20

Each page is fetched through Django's test Client, logged in as a superuser, in this process: the figures are
the server's time to build the page (SQL, Python and templates), without a browser or network. The dashboard is
timed with its small cache cleared before every load, so each load runs every query (the instance states are
asked to EVOLUTION_API_URL; with nothing listening there they come back "unreachable" at once).
This is a benchmark, not a test: it asserts nothing.
"""
import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from messaging.models import OutboundMessage  # noqa: E402

CHANGELIST = "/admin/messaging/outboundmessage/"


def pages() -> list[tuple[str, str]]:
    """(name, url) of the pages to time, chosen from the data so every search and filter finds something."""
    newest = OutboundMessage.objects.order_by("-created_at", "-id").first()
    failed = OutboundMessage.objects.filter(status="failed", attempt_count__gt=1).order_by("-created_at").first()
    if newest is None or failed is None:
        sys.exit("The database has no messages: run `manage.py seed_fake_data` first.")
    digits = newest.phone.lstrip("+")  # 5511987654321
    typed = f"+{digits[:2]} {digits[2:4]} {digits[4:9]}-{digits[9:]}"  # +55 11 98765-4321
    partial = f"{digits[-8:-4]} {digits[-4:]}"  # 8765 4321: the end of a number, as a person reads it
    local = timezone.localtime(newest.created_at)
    week_ago = (timezone.now() - timezone.timedelta(days=7)).isoformat()
    return [
        ("changelist", CHANGELIST),
        ("changelist page 5", f"{CHANGELIST}?p=5"),
        ("filter status=failed", f"{CHANGELIST}?status=failed"),
        (f"filter instance={newest.instance}", f"{CHANGELIST}?instance={newest.instance}"),
        ("filter has failed attempts", f"{CHANGELIST}?failed_attempts=yes"),
        ("filter failure reason", f"{CHANGELIST}?status=failed&last_error_kind={failed.last_error_kind}"),
        ("filter created past 7 days", f"{CHANGELIST}?{urlencode({'created_at__gte': week_ago})}"),
        ("date hierarchy: a month", f"{CHANGELIST}?created_at__year={local.year}&created_at__month={local.month}"),
        ("date hierarchy: a day", f"{CHANGELIST}?created_at__year={local.year}&created_at__month={local.month}&created_at__day={local.day}"),
        (f"search phone '{typed}'", f"{CHANGELIST}?{urlencode({'q': typed})}"),
        (f"search digits '{partial}'", f"{CHANGELIST}?{urlencode({'q': partial})}"),
        ("search text 'entrega'", f"{CHANGELIST}?q=entrega"),
        ("search Evolution id", f"{CHANGELIST}?q={newest.evolution_message_id or failed.phone}"),
        ("message page (with attempts)", f"{CHANGELIST}{failed.pk}/change/"),
        ("dashboard", f"{CHANGELIST}dashboard/"),
    ]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=20, help="timed loads per page (after 2 warm-up loads)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    messages = OutboundMessage.objects.count()
    print(f"{messages:,} messages, {connection.vendor}, {args.loads} loads per page after 2 warm-up loads\n")
    print(f"{'page':<44} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}  count shown")
    results = []
    for name, url in pages():
        timings, queries, shown = [], 0, ""
        for load in range(args.loads + 2):
            cache.clear()
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                sys.exit(f"{url} answered {response.status_code}")
            if load >= 2:
                timings.append(elapsed)
            queries = len(captured)
            found = re.search(rb'<p class="paginator">.*?((?:about )?[\d,]+) outbound message', response.content, re.S)
            shown = found.group(1).decode() if found else ""
        row = {"page": name, "url": url, "p50_ms": round(statistics.median(timings), 1),
               "p95_ms": round(percentile(timings, 0.95), 1), "max_ms": round(max(timings), 1),
               "queries": queries, "count_shown": shown}
        results.append(row)
        print(f"{name[:44]:<44} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['max_ms']:>8} {queries:>8}  {shown}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"messages": messages, "loads": args.loads, "pages": results}, indent=2))


if __name__ == "__main__":
    # Without collectstatic the admin's CSS is served from the apps (as in development), not a manifest.
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}):
        main()
