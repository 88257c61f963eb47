"""Run the sandbox on 127.0.0.1 in a background thread of the current process (tests, benchmarks, demos).

    sandbox = run_in_thread(instances=["console"])
    ... EvolutionClient(base_url=sandbox.url, api_key=sandbox.api_key) ...
    sandbox.stop()

The tests steer it (reset, states, latency, inbound) with tests_support.SandboxControl, the same client they use
for the sandbox started as a process.
"""
from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from evolution.sandbox.server import DELIVERED_AFTER_SECONDS, READ_AFTER_SECONDS, build_app

START_TIMEOUT_SECONDS = 10.0


class RunningSandbox:
    """A sandbox serving in a background thread: where it listens, and how to stop it."""

    def __init__(self, *, url: str, api_key: str, instances: list[str], loop, thread):
        self.url = url
        self.api_key = api_key
        self.instances = instances
        self.instance = instances[0]  # the default instance
        self._loop, self._thread = loop, thread

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=START_TIMEOUT_SECONDS + 5)


def run_in_thread(
    *,
    api_key: str = "sandbox-key",
    instances: list[str] | tuple[str, ...] = ("console",),
    latency_ms: int = 0,
    hang_seconds: float = 30.0,
    port: int = 0,
    quiet: bool = True,
    delivered_after: float = DELIVERED_AFTER_SECONDS,
    read_after: float | None = READ_AFTER_SECONDS,
) -> RunningSandbox:
    """Start the sandbox on 127.0.0.1 (port 0 picks a free one) and return once it accepts connections."""
    instances = list(instances)
    app = build_app(
        api_key=api_key, instances=instances, latency_ms=latency_ms, hang_seconds=hang_seconds, quiet=quiet,
        delivered_after=delivered_after, read_after=read_after,
    )
    # A request still hanging (the ...0408 numbers) must not hold up stop() for long.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start())
        except BaseException as error:  # reported to the starting thread below
            failure.append(error)
            loop.run_until_complete(runner.cleanup())
            loop.close()
            started.set()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    thread = threading.Thread(target=serve, name="evolution-sandbox", daemon=True)
    thread.start()
    if not started.wait(START_TIMEOUT_SECONDS):
        raise RuntimeError(f"the Evolution sandbox did not start within {START_TIMEOUT_SECONDS}s")
    if failure:
        raise RuntimeError(f"the Evolution sandbox failed to start: {failure[0]!r}") from failure[0]
    host, bound_port = runner.addresses[0][:2]
    url = f"http://{host}:{bound_port}"
    return RunningSandbox(url=url, api_key=api_key, instances=instances, loop=loop, thread=thread)
