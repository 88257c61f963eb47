"""Put stuck work back on the queue now, instead of waiting for beat's next sweep."""
from django.core.management.base import BaseCommand

from messaging import maintenance


class Command(BaseCommand):
    help = (
        "Re-publish messages left queued or retrying by a lost publish, and recover sends whose worker died "
        "(the same sweep celery-beat runs every MESSAGING_SWEEP_INTERVAL_SECONDS)."
    )

    def handle(self, *args, **options):
        counts = maintenance.requeue_stuck_messages()
        self.stdout.write(
            "requeued: "
            + ", ".join(f"{what} {count}" for what, count in counts.items())
        )
