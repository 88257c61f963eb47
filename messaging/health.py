"""Is each part the console depends on reachable? Used by GET /health and the admin dashboard."""
import time

from celery import current_app
from django.conf import settings
from django.db import connection

from evolution.client import EvolutionError
from evolution.instances import instance_state


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check()
        status = "ok"
    except Exception as error:  # a health check reports failures, it never raises them
        detail, status = f"{type(error).__name__}: {error}", "error"
    return {"status": status, "detail": detail, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _broker() -> str:
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport.driver_type


def _evolution() -> str:
    state = instance_state(settings.EVOLUTION_INSTANCE_NAME)
    if state != "open":
        raise EvolutionError(f'instance "{settings.EVOLUTION_INSTANCE_NAME}" is {state}', kind="not_connected")
    return f'instance "{settings.EVOLUTION_INSTANCE_NAME}" is open'


def system_health() -> dict:
    checks = {"database": _timed(_database), "broker": _timed(_broker), "evolution": _timed(_evolution)}
    return {"status": "ok" if all(c["status"] == "ok" for c in checks.values()) else "error", "checks": checks}
