"""Point every configured Evolution instance's webhook at the console (POST /webhook/set/{instance})."""
from django.core.management.base import BaseCommand, CommandError

from inbound import services


class Command(BaseCommand):
    help = (
        "Register <CONSOLE_PUBLIC_URL>/webhooks/evolution/<instance> as the webhook of every instance in "
        "EVOLUTION_INSTANCES (or those named), with the events the console reads and the instance's secret."
    )

    def add_arguments(self, parser):
        parser.add_argument("instances", nargs="*", help="Only these instances (default: EVOLUTION_INSTANCES)")

    def handle(self, *args, instances, **options):
        results = services.register_webhooks(instances_to_register=instances or None)
        for result in results:
            if result.ok:
                self.stdout.write(f"{result.instance}: webhook registered at {result.detail}")
            else:
                self.stderr.write(f"{result.instance}: not registered: {result.detail}")
        if not all(result.ok for result in results):
            raise CommandError("Some webhooks were not registered (see above).")
