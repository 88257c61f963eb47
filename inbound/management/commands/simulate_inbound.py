"""Make a contact "write" to an instance through the Evolution sandbox, which posts `messages.upsert` to the console.

    python manage.py simulate_inbound --phone +5511987654321 --text "hola"
    python manage.py simulate_inbound --phone +5511987654321 --text "hola" --count 3 --every 1   # one batch of 3
    python manage.py simulate_inbound --phone +5511987654321 --text "quiero cambiar la cita" --text STOP

It drives the sandbox's `POST /_sandbox/inbound` at EVOLUTION_API_URL (the sandbox answers once its webhook POST
to the console is done), so the message takes the path a real one takes: Evolution's webhook, the console's
receiver, the task, the contact's batch. A real Evolution API has no such endpoint: the command refuses to run
against anything but the sandbox.
"""
import time

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

TIMEOUT_SECONDS = 15.0  # the sandbox answers after the console's receiver did (it waits up to 10 s for it)


class Command(BaseCommand):
    help = (
        "Simulate a customer writing to an instance: the Evolution sandbox at EVOLUTION_API_URL posts each message "
        "to the console's webhook as messages.upsert (sandbox only)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--phone", required=True, help="the contact's number, e.g. +5511987654321")
        parser.add_argument(
            "--text", action="append", required=True,
            help="what the contact writes; repeat it for several messages (they are sent in turn)",
        )
        parser.add_argument("--instance", default=None, help="default: EVOLUTION_INSTANCE_NAME")
        parser.add_argument("--push-name", default="", help="the contact's WhatsApp name")
        parser.add_argument(
            "--count", type=int, default=None,
            help="how many messages (default: one per --text; more repeat the texts in turn)",
        )
        parser.add_argument("--every", type=float, default=1.0, help="seconds between two messages (default 1)")

    def handle(self, *args, phone, text, instance, push_name, count, every, **options):
        instance = instance or settings.EVOLUTION_INSTANCE_NAME
        count = len(text) if count is None else count
        if count < 1:
            raise CommandError("--count must be at least 1")
        if every < 0:
            raise CommandError("--every must not be negative")
        if not phone.strip():
            raise CommandError("--phone must not be empty")
        url = settings.EVOLUTION_API_URL
        with httpx.Client(base_url=url, timeout=TIMEOUT_SECONDS) as sandbox:
            self.make_sure_it_is_the_sandbox(sandbox, url)
            undelivered = 0
            for index in range(count):
                if index:
                    time.sleep(every)
                body = {"instance": instance, "number": phone, "text": text[index % len(text)], "push_name": push_name}
                answer = self.post(sandbox, body)
                status = answer.get("webhook_status")
                whatsapp_id = answer["data"]["key"]["id"]
                if status is not None and 200 <= status < 300:
                    self.stdout.write(f"{index + 1}/{count} {phone} -> {instance}: {body['text']!r} "
                                      f"({whatsapp_id}; the console answered {status})")
                else:
                    undelivered += 1
                    told = "no webhook is set for it" if status is None else f"the webhook answered {status}"
                    self.stderr.write(f"{index + 1}/{count} {phone} -> {instance}: {body['text']!r} "
                                      f"({whatsapp_id}) did not reach the console: {told}")
        if undelivered:
            raise CommandError(
                f"{undelivered} of {count} messages did not reach the console. Register its webhook on the sandbox "
                "(`python manage.py evolution_webhooks` with CONSOLE_PUBLIC_URL set; `make dev` does it) and "
                "check that the console is running."
            )
        self.stdout.write(
            f"The console batches them: the batch is processed once {phone} has been quiet for "
            f"{settings.INBOUND_DEBOUNCE_SECONDS:g} s (INBOUND_DEBOUNCE_SECONDS)."
        )

    def make_sure_it_is_the_sandbox(self, sandbox: httpx.Client, url: str) -> None:
        """Only the sandbox has /_sandbox/ routes; Evolution API answers them 404."""
        try:
            probe = sandbox.get("/_sandbox/receipts")
        except httpx.HTTPError as error:
            raise CommandError(f"EVOLUTION_API_URL ({url}) does not answer: {error}. Is the sandbox running?")
        try:
            is_sandbox = probe.status_code == 200 and "delivered_after" in probe.json()
        except ValueError:
            is_sandbox = False
        if not is_sandbox:
            raise CommandError(
                f"EVOLUTION_API_URL ({url}) is not the Evolution sandbox (GET /_sandbox/receipts answered "
                f"{probe.status_code}): simulate_inbound only drives the sandbox. With a real Evolution API, write "
                "to the instance's number from a phone."
            )

    def post(self, sandbox: httpx.Client, body: dict) -> dict:
        try:
            answer = sandbox.post("/_sandbox/inbound", json=body)
        except httpx.HTTPError as error:
            raise CommandError(f"the sandbox did not answer: {error}")
        if answer.status_code == 404:
            raise CommandError(f"the sandbox has no instance {body['instance']!r}: {answer.text}")
        if answer.status_code != 200:
            raise CommandError(f"the sandbox refused the message ({answer.status_code}): {answer.text}")
        return answer.json()
