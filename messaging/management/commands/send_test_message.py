"""Send one message through the whole path (database, broker, worker, Evolution API) and report what happened."""
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from messaging import services
from messaging.models import MessageStatus


class Command(BaseCommand):
    help = "Accept a test message for PHONE, as POST /messages would, and wait for its final state."

    def add_arguments(self, parser):
        parser.add_argument("phone", help='With country code, e.g. "+55 11 98765-4321".')
        parser.add_argument("--text", default="Test message from the WhatsApp console.")
        parser.add_argument("--instance", default=None, help="Evolution instance; default EVOLUTION_INSTANCE_NAME.")
        parser.add_argument(
            "--wait", type=float, default=30.0, help="Seconds to wait for a final state (0: do not wait)."
        )

    def handle(self, *args, phone, text, instance, wait, **options):
        try:
            message, _ = services.accept_message(phone=phone, text=text, instance=instance)
        except ValidationError as error:
            raise CommandError("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items()))
        self.stdout.write(
            f"message {message.pk} accepted to {message.phone} via instance {message.instance} "
            f"({settings.EVOLUTION_API_URL}); task {message.task_id}"
        )
        if wait <= 0:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            message.refresh_from_db()
            if message.is_final:
                break
            time.sleep(0.5)
        for attempt in message.attempts.order_by("number"):
            error = f" {attempt.error_kind}: {attempt.error_text}" if attempt.error_kind else ""
            self.stdout.write(f"  attempt {attempt.number}: {attempt.outcome}{error}")
        if not message.is_final:
            raise CommandError(
                f"message {message.pk} is still {message.status} after {wait:g}s: is a worker consuming "
                f"the transactional_messages queue? (see Troubleshooting in the README)"
            )
        if message.status != MessageStatus.SENT:
            raise CommandError(f"message {message.pk} {message.status}: {message.last_error_kind} {message.last_error}")
        self.stdout.write(self.style.SUCCESS(f"message {message.pk} sent; WhatsApp id {message.evolution_message_id}"))
