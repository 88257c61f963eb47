"""The state of the Evolution instances the console sends through: asked one at a time (health, evolution_status)
or all at once for a page (the dashboard)."""
from concurrent.futures import ThreadPoolExecutor, wait

from django.conf import settings
from django.core.cache import cache

from evolution.client import get_client

INSTANCE_STATE_TIMEOUT_SECONDS = 2.0
INSTANCE_STATE_CACHE_SECONDS = 15


def instance_state(instance: str) -> str:
    """Evolution's connectionState for one instance ("open", "close", "connecting"), raising EvolutionError."""
    return get_client().connection_state(instance=instance)


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
