"""Ask Evolution API for the connection state of every instance the console may send through."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from evolution.client import EvolutionError
from evolution.instances import instance_state


class Command(BaseCommand):
    help = "Print the connection state of each configured Evolution instance; exit 1 unless all are open."

    def handle(self, *args, **options):
        self.stdout.write(f"Evolution API at {settings.EVOLUTION_API_URL}")
        not_open = []
        for instance in settings.EVOLUTION_INSTANCES:
            try:
                state = instance_state(instance)
            except EvolutionError as error:
                state = f"unreachable ({error})"
            if state != "open":
                not_open.append(instance)
            self.stdout.write(f"  {instance}: {state}")
        if not_open:
            raise CommandError(f"not open: {', '.join(not_open)} (see Troubleshooting in the README)")
