"""Is each part the console depends on reachable? Used by GET /health.

Anyone may ask, so the public answer says only up or down per part; error texts (which name the database's host,
port and role) and latencies are for staff. The parts are asked in parallel and the answer never waits more than
HEALTH_BUDGET_SECONDS: a part that has not answered by then is down.
"""
import time
from concurrent.futures import ThreadPoolExecutor, wait

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user
from django.db import connections
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException
from rest_framework.settings import api_settings

from evolution.client import EvolutionError
from evolution.instances import instance_state, paused_reason

# Under the 1 s a load balancer or the container healthcheck may allow, with room for the request itself: on a
# busy 2-core machine routing, middleware and scheduling took 0.4 s on top of a 0.8 s budget (1.2 s in all).
HEALTH_BUDGET_SECONDS = 0.5
# Connecting to a live broker or Evolution on the same network takes milliseconds; a dead one must not eat the budget.
CONNECT_TIMEOUT_SECONDS = 0.3


def _database() -> str:
    # Its own connection in its own thread, closed here: a thread of this pool never serves a request again.
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        return connections["default"].vendor
    finally:
        connections.close_all()


def _broker() -> str:
    with current_app.connection_for_write(connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
        # One try: kombu's retries wait 2 s between tries, longer than the whole budget.
        conn.ensure_connection(max_retries=0, timeout=CONNECT_TIMEOUT_SECONDS)
        return conn.transport.driver_type


def _evolution() -> str:
    state = instance_state(
        settings.EVOLUTION_INSTANCE_NAME, timeout=HEALTH_BUDGET_SECONDS, connect_timeout=CONNECT_TIMEOUT_SECONDS
    )
    if state != "open":
        raise EvolutionError(f'instance "{settings.EVOLUTION_INSTANCE_NAME}" is {state}', kind="not_connected")
    return f'instance "{settings.EVOLUTION_INSTANCE_NAME}" is open'


CHECKS = {"database": _database, "broker": _broker, "evolution": _evolution}


def _paused_instances() -> list[str]:
    """The instances whose sends wait because their WhatsApp connection was found down (evolution/instances.py)."""
    return [name for name in settings.EVOLUTION_INSTANCES if paused_reason(name) is not None]


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail, status = check(), "ok"
    except Exception as error:  # a health check reports failures, it never raises them
        detail, status = f"{type(error).__name__}: {error}", "error"
    return {"status": status, "detail": detail, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def system_health(request=None) -> dict:
    """``{"status": "ok"|"error", "checks": {part: {"status": ...}}}``, within HEALTH_BUDGET_SECONDS.

    Each check also carries ``detail`` and ``latency_ms`` when ``request`` comes from a staff user (an admin session,
    or the token or API key of a staff user), or when there is no request (the console's own callers)."""
    pool = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="health")
    futures = {name: pool.submit(_timed, check) for name, check in CHECKS.items()}
    paused = pool.submit(_paused_instances)
    wait(futures.values(), timeout=HEALTH_BUDGET_SECONDS)
    pool.shutdown(wait=False, cancel_futures=True)  # a late check finishes on its own; nobody waits for it
    checks = {
        name: future.result() if future.done() else {
            "status": "error", "detail": f"no answer within {HEALTH_BUDGET_SECONDS:g} s",
            "latency_ms": HEALTH_BUDGET_SECONDS * 1000,
        }
        for name, future in futures.items()
    }
    paused = paused.result() if paused.done() and paused.exception() is None else []
    staff = request is None or _is_staff(request)
    if not staff:
        checks = {name: {"status": check["status"]} for name, check in checks.items()}
    return {
        "status": "ok" if all(c["status"] == "ok" for c in checks.values()) else "error",
        "checks": checks,
        # Paused instances do not make the console unhealthy (other instances send), but nothing goes out through
        # them: anyone sees how many, staff see which.
        "paused_instances": paused if staff else len(paused),
    }


def _is_staff(request) -> bool:
    """Whether the caller is an active staff user: by its admin session, or by the API's token and key authenticators.

    A wrong or revoked credential is simply not staff: /health answers everyone, it never says 401."""
    # The session as the admin reads it: DRF has already set request.user to anonymous (the view authenticates nobody).
    user = get_user(getattr(request, "_request", request))
    if user.is_authenticated:
        return user.is_active and user.is_staff
    for authenticator_class in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
        if issubclass(authenticator_class, SessionAuthentication):
            continue
        try:
            result = authenticator_class().authenticate(request)
        except APIException:
            return False
        if result is not None:
            return bool(result[0].is_active and result[0].is_staff)
    return False
