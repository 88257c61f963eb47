"""Put stuck work back on the queue now, instead of waiting for beat's next sweep."""
from django.conf import settings
from django.core.management.base import BaseCommand

from messaging import maintenance


class Command(BaseCommand):
    help = (
        "Re-publish messages left queued or retrying by a lost publish, and recover sends whose worker died "
        "(the same sweep celery-beat runs every minute)."
    )

    def handle(self, *args, **options):
        counts = maintenance.requeue_stuck_messages()
        self.stdout.write(
            f"stuck for more than {settings.MESSAGING_STUCK_AFTER_SECONDS}s: "
            + ", ".join(f"{what} {count}" for what, count in counts.items())
        )
