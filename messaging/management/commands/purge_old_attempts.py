"""Retention by hand: delete send attempts (and, if asked, finished messages) older than a given age, in batches.

Beat runs the same deletion daily with MESSAGING_RETENTION_DAYS (messaging.maintenance.purge_old_records)."""
import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from messaging import maintenance

_AGE = re.compile(r"^(\d+)\s*([dh]?)$")


def parse_age(text: str) -> timedelta:
    """ "90d" -> 90 days, "12h" -> 12 hours, "30" -> 30 days."""
    match = _AGE.match(text.strip().lower())
    if not match:
        raise ValueError(f'"{text}" is not an age like 90d or 12h')
    amount, unit = int(match.group(1)), match.group(2) or "d"
    return timedelta(hours=amount) if unit == "h" else timedelta(days=amount)


class Command(BaseCommand):
    help = (
        "Delete send attempts that started before --older-than (e.g. 90d, 12h), a batch per transaction so the "
        "tables stay usable while it runs. With --messages, also delete messages that finished before then."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="An age: 90d (days) or 12h (hours).")
        parser.add_argument("--messages", action="store_true", help="Also delete sent/failed/cancelled messages.")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--pause", type=float, default=0.0, help="Seconds to sleep between batches.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")

    def handle(self, *args, older_than, messages, batch_size, pause, dry_run, **options):
        try:
            age = parse_age(older_than)
        except ValueError as error:
            raise CommandError(str(error))
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        cutoff = timezone.now() - age
        if dry_run:
            attempts, finished = maintenance.old_records(cutoff)
            self.stdout.write(f"would delete {attempts.count()} attempts started before {cutoff.isoformat()}")
            if messages:
                self.stdout.write(f"would delete {finished.count()} messages finished before {cutoff.isoformat()}")
            return
        deleted = maintenance.purge_old_records(cutoff=cutoff, messages=messages, batch_size=batch_size, pause=pause)
        self.stdout.write(f"deleted {deleted['attempts']} attempts started before {cutoff.isoformat()}")
        if messages:
            self.stdout.write(f"deleted {deleted['messages']} messages finished before {cutoff.isoformat()}")
