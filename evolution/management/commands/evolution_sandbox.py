"""python manage.py evolution_sandbox: serve the Evolution-compatible sandbox (see evolution/sandbox/server.py)."""
from aiohttp import web
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from evolution.sandbox.server import build_app


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
        parser.add_argument("--quiet", action="store_true", help="log only non-2xx requests (for benchmarks)")

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
        )
        host, port = options["host"], options["port"]
        self.stdout.write(
            f"Evolution sandbox listening on http://{host}:{port} (instances: {', '.join(instances)}; "
            f"latency {options['latency_ms']} ms)"
        )
        self.stdout.flush()
        # aiohttp's own access log is off: the sandbox logs one cheaper line per request itself.
        web.run_app(app, host=host, port=port, access_log=None, print=None, shutdown_timeout=1.0, backlog=1024)
