"""python manage.py evolution_sandbox: serve the Evolution-compatible sandbox (see evolution/sandbox/server.py)."""
import argparse
import asyncio
import socket
import time
from urllib.parse import urlsplit

from aiohttp import web
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from evolution.sandbox.server import DELIVERED_AFTER_SECONDS, READ_AFTER_SECONDS, build_app


def seconds_or_never(value: str) -> float | None:
    if value.strip().lower() in ("never", "none", "off"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds (or 'never')")
    return seconds


def seconds(value: str) -> float:
    parsed = seconds_or_never(value)
    if parsed is None:
        raise argparse.ArgumentTypeError("a delivery receipt always comes: give a number of seconds")
    return parsed


class Command(BaseCommand):
    help = "Serve an in-memory Evolution-API-compatible sandbox with scripted failures (evolution/sandbox/server.py)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8081)
        parser.add_argument("--api-key", default=None, help="global apikey (default: settings.EVOLUTION_API_KEY)")
        parser.add_argument(
            "--instances", default=None, help="comma-separated instance names (default: settings.EVOLUTION_INSTANCES)"
        )
        parser.add_argument("--latency-ms", type=int, default=0, help="added before every sendText answer")
        parser.add_argument("--hang-seconds", type=float, default=30.0, help="how long ...0408 numbers hang")
        parser.add_argument(
            "--delivered-after", type=seconds, default=DELIVERED_AFTER_SECONDS, metavar="SECONDS",
            help=f"from a send to its DELIVERY_ACK receipt (default {DELIVERED_AFTER_SECONDS:g})",
        )
        parser.add_argument(
            "--read-after", type=seconds_or_never, default=READ_AFTER_SECONDS, metavar="SECONDS|never",
            help=f"from the DELIVERY_ACK to the READ receipt (default {READ_AFTER_SECONDS:g}; 'never': no READ)",
        )
        parser.add_argument("--quiet", action="store_true", help="log only non-2xx requests (for benchmarks)")
        parser.add_argument(
            "--register-webhooks", action="store_true",
            help="once listening, register the console's webhook (CONSOLE_PUBLIC_URL) on every instance, as "
            "`manage.py evolution_webhooks` does, when EVOLUTION_API_URL is this sandbox (make dev: the sandbox "
            "forgets its webhooks when it stops)",
        )

    def handle(self, *args, **options):
        api_key = options["api_key"] or settings.EVOLUTION_API_KEY
        if options["instances"]:
            instances = [name.strip() for name in options["instances"].split(",") if name.strip()]
        else:
            instances = list(getattr(settings, "EVOLUTION_INSTANCES", None) or [settings.EVOLUTION_INSTANCE_NAME])
        if not instances:
            raise CommandError("give at least one instance name")
        app = build_app(
            api_key=api_key,
            instances=instances,
            latency_ms=options["latency_ms"],
            hang_seconds=options["hang_seconds"],
            quiet=options["quiet"],
            delivered_after=options["delivered_after"],
            read_after=options["read_after"],
        )
        host, port = options["host"], options["port"]
        if options["register_webhooks"]:
            background: set[asyncio.Task] = set()

            async def register_once_listening(_app):
                task = asyncio.get_running_loop().create_task(
                    asyncio.to_thread(self.register_console_webhooks, host, port, instances)
                )
                background.add(task)
                task.add_done_callback(background.discard)

            app.on_startup.append(register_once_listening)
        self.stdout.write(
            f"Evolution sandbox listening on http://{host}:{port} (instances: {', '.join(instances)}; "
            f"latency {options['latency_ms']} ms; receipts: delivered after {options['delivered_after']:g} s, "
            + ("never read)" if options["read_after"] is None else f"read {options['read_after']:g} s later)")
        )
        self.stdout.flush()
        # aiohttp's own access log is off: the sandbox logs one cheaper line per request itself.
        web.run_app(app, host=host, port=port, access_log=None, print=None, shutdown_timeout=1.0, backlog=1024)

    def register_console_webhooks(self, host: str, port: int, instances: list[str]) -> None:
        """Point this sandbox's instances at the console, the console's way (inbound.services, which keeps each
        instance's secret in the database). In a thread: the ORM is synchronous."""
        from django.db import connections

        from inbound import services  # the console's side of the webhook; the sandbox itself needs none of it

        evolution = urlsplit(settings.EVOLUTION_API_URL)
        this_sandbox = evolution.port == port and evolution.hostname in {host, "127.0.0.1", "localhost", "::1"}
        if not this_sandbox:
            self.say(f"not registering webhooks: EVOLUTION_API_URL is {settings.EVOLUTION_API_URL}, not this sandbox")
            return
        if not settings.CONSOLE_PUBLIC_URL:
            self.say("not registering webhooks: CONSOLE_PUBLIC_URL is not set")
            return
        deadline = time.monotonic() + 30
        while not _answers(evolution.hostname, port):
            if time.monotonic() > deadline:
                self.say(f"not registering webhooks: nothing answers on {settings.EVOLUTION_API_URL}")
                return
            time.sleep(0.1)
        try:
            for result in services.register_webhooks(instances_to_register=instances):
                self.say(f"{result.instance}: webhook {'registered at' if result.ok else 'NOT registered:'} {result.detail}")
        except Exception as error:  # noqa: BLE001 (a dev convenience: say why, keep serving)
            self.say(f"webhooks not registered: {error!r}; run `python manage.py evolution_webhooks`")
        finally:
            connections.close_all()

    def say(self, line: str) -> None:
        self.stdout.write(f"[evolution-sandbox] {line}")
        self.stdout.flush()


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
