"""Retention: delete send attempts (and, if asked, finished messages) older than a given age, in batches."""
import re
import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from messaging.models import FINAL_STATUSES, OutboundMessage, SendAttempt

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
        attempts = SendAttempt.objects.filter(started_at__lt=cutoff)
        finished = OutboundMessage.objects.filter(status__in=FINAL_STATUSES, finished_at__lt=cutoff)
        if dry_run:
            self.stdout.write(f"would delete {attempts.count()} attempts started before {cutoff.isoformat()}")
            if messages:
                self.stdout.write(f"would delete {finished.count()} messages finished before {cutoff.isoformat()}")
            return
        deleted = self._in_batches(SendAttempt, attempts, batch_size, pause)
        self.stdout.write(f"deleted {deleted} attempts started before {cutoff.isoformat()}")
        if messages:
            deleted = self._in_batches(OutboundMessage, finished, batch_size, pause)
            self.stdout.write(f"deleted {deleted} messages finished before {cutoff.isoformat()}")

    @staticmethod
    def _in_batches(model, rows, batch_size: int, pause: float) -> int:
        """Delete `rows` a batch at a time, oldest ids first; each batch commits on its own."""
        total = 0
        while True:
            # Ordered by primary key: old rows have low ids, so each batch is an early-stopping index scan.
            ids = list(rows.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not ids:
                return total
            # Deleting by id (not re-running the filter) bounds the batch even as the cutoff's rows keep coming.
            deleted = model.objects.filter(pk__in=ids).delete()[1].get(model._meta.label, 0)
            total += deleted
            if len(ids) < batch_size or not deleted:
                return total
            if pause:
                time.sleep(pause)
