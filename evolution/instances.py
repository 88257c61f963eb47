"""The state of the Evolution instances the console sends through: asked one at a time (health, evolution_status)
or all at once for a page (the dashboard)."""
import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait

from django.conf import settings
from django.core.cache import cache

from evolution.client import EvolutionClient, EvolutionError, get_client
from evolution.shared_state import redis_client

log = logging.getLogger(__name__)

INSTANCE_STATE_TIMEOUT_SECONDS = 2.0
INSTANCE_STATE_CACHE_SECONDS = 15


def instance_state(instance: str, *, timeout: float | None = None, connect_timeout: float | None = None) -> str:
    """Evolution's connectionState for one instance ("open", "close", "connecting"), raising EvolutionError.

    With ``timeout`` (GET /health's short budget) it asks on a client of its own: the sends' client waits up to
    EVOLUTION_TIMEOUT_SECONDS."""
    if timeout is None:
        return get_client().connection_state(instance=instance)
    with EvolutionClient(
        base_url=settings.EVOLUTION_API_URL, api_key=settings.EVOLUTION_API_KEY,
        timeout=timeout, connect_timeout=connect_timeout or timeout,
    ) as client:
        return client.connection_state(instance=instance)


def instance_states() -> list[dict]:
    """``{"name", "state", "ok", "detail"}`` for each configured instance.

    Asked in parallel and given at most INSTANCE_STATE_TIMEOUT_SECONDS, so a hung gateway cannot hang the page
    that asks; cached briefly because operators reload dashboards.
    """
    names = list(settings.EVOLUTION_INSTANCES)
    key = f"evolution:instance-states:{settings.EVOLUTION_API_URL}:{','.join(names)}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    pool = ThreadPoolExecutor(max_workers=min(8, len(names)) or 1, thread_name_prefix="instance-state")
    futures = {name: pool.submit(instance_state, name) for name in names}
    wait(futures.values(), timeout=INSTANCE_STATE_TIMEOUT_SECONDS)
    pool.shutdown(wait=False, cancel_futures=True)  # a late answer is dropped, not waited for
    states = []
    for name, future in futures.items():
        if not future.done():
            states.append({"name": name, "state": "no answer", "ok": False,
                           "detail": f"no answer within {INSTANCE_STATE_TIMEOUT_SECONDS:g} s"})
        elif future.exception() is not None:
            error = future.exception()
            states.append({"name": name, "state": "unreachable", "ok": False, "detail": str(error)[:200]})
        else:
            state = future.result()
            states.append({"name": name, "state": state, "ok": state == "open", "detail": ""})
    cache.set(key, states, INSTANCE_STATE_CACHE_SECONDS)
    return states


# --- paused instances --------------------------------------------------------------------------------------------
# An instance whose WhatsApp connection is down would turn every send into a failed attempt. Once a send fails
# and connectionState confirms the instance is not open, it is paused: its sends wait, no attempt spent, until
# beat's check (check_paused_instances) finds it open again; until then each check renews it, so it lasts as long
# as the outage. The pause lives in Redis, for every worker on every host, with a TTL so that it lifts by itself
# PAUSE_TTL_SECONDS after beat's last check if beat stops running.

PAUSE_TTL_SECONDS = 300
PAUSE_RECHECK_SECONDS = 10.0  # how long a send for a paused instance waits before it looks again
_PAUSE_CACHE_SECONDS = 1.0  # a worker reads the pause flag at most once a second per instance


def _pause_key(instance: str) -> str:
    return f"{settings.PACING_KEY_PREFIX}:paused:{instance}"


def pause(instance: str, reason: str) -> None:
    client = redis_client()
    if client is not None:
        client.set(_pause_key(instance), reason[:200], ex=PAUSE_TTL_SECONDS)
        _pause_cache.pop(instance, None)
        log.warning("instance=%s paused: %s", instance, reason)


def resume(instance: str) -> bool:
    client = redis_client()
    resumed = bool(client is not None and client.delete(_pause_key(instance)))
    _pause_cache.pop(instance, None)
    if resumed:
        log.warning("instance=%s resumed: it is open again", instance)
    return resumed


def paused_reason(instance: str) -> str | None:
    """Why ``instance`` is paused, or None. Read from Redis at most once a second per process."""
    now = time.monotonic()
    cached = _pause_cache.get(instance)
    if cached is not None and now - cached[0] < _PAUSE_CACHE_SECONDS:
        return cached[1]
    client = redis_client()
    try:
        raw = client.get(_pause_key(instance)) if client is not None else None
    except Exception as error:  # a Redis outage must not stop sends on its own; the broker is down then anyway
        log.warning("instance=%s pause flag not read: %s", instance, error)
        raw = None
    reason = raw.decode() if raw is not None else None
    _pause_cache[instance] = (now, reason)
    return reason


def pause_if_disconnected(instance: str) -> bool:
    """After a temporary send error: ask connectionState, and pause the instance if it is not open."""
    try:
        state = instance_state(instance)
    except EvolutionError as error:
        state = f"unreachable ({error.kind})"
    if state == "open":
        return False
    pause(instance, f"connectionState is {state}")
    return True


def _renew(instance: str, reason: str) -> None:
    """Extend a pause that is still there (``xx``: one resumed meanwhile stays resumed) by a full TTL."""
    client = redis_client()
    if client is not None and client.set(_pause_key(instance), reason[:200], ex=PAUSE_TTL_SECONDS, xx=True):
        _pause_cache.pop(instance, None)
        log.info("instance=%s still paused: %s", instance, reason)


def check_paused_instances() -> list[str]:
    """Resume every paused instance that is open again, and renew the pause of the others (still not open, or
    Evolution not answering) so that it does not lift mid-outage; return the ones resumed (beat runs this)."""
    resumed = []
    for instance in settings.EVOLUTION_INSTANCES:
        if paused_reason(instance) is None:
            continue
        try:
            state = instance_state(instance)
        except EvolutionError as error:
            _renew(instance, f"connectionState is unreachable ({error.kind})")
            continue
        if state != "open":
            _renew(instance, f"connectionState is {state}")
        elif resume(instance):
            resumed.append(instance)
    return resumed


_pause_cache: dict[str, tuple[float, str | None]] = {}
