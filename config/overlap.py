"""Database work on a second connection, one piece at a time, while the caller prepares the next piece.

The campaign fan-out builds 1,000 messages in Python, then waits while PostgreSQL stores them (COPY plus the
upkeep of about twenty indexes): the two took turns, each about half of the run's time. With ``Overlapped``, the
rows of chunk N are stored by one background thread on its own connection while the caller builds chunk N+1.

At most one piece is in flight: ``submit`` first waits for the previous one, so pieces are stored in order and an
error in one is raised in the caller at its next ``submit`` or at the end of the ``with`` block. A second
connection sees only committed rows, so inside a caller's transaction (an atomic block, a test's) the work runs
inline, as it does on SQLite (one writer at a time).
"""
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import DEFAULT_DB_ALIAS, connections


class Overlapped:
    def __init__(self, using: str = DEFAULT_DB_ALIAS):
        connection = connections[using]
        self.inline = connection.in_atomic_block or connection.vendor != "postgresql"
        self._executor = None if self.inline else ThreadPoolExecutor(1, thread_name_prefix="overlapped-db")
        self._pending: Future | None = None

    def submit(self, work, /, *args, **kwargs) -> None:
        if self.inline:
            work(*args, **kwargs)
            return
        self.wait()
        self._pending = self._executor.submit(work, *args, **kwargs)

    def wait(self) -> None:
        """Until the piece in flight is stored; raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> "Overlapped":
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.wait()
        finally:
            if self._executor is not None:
                # Django's connections belong to the thread that opened them: close the worker thread's own.
                self._executor.submit(connections.close_all).result()
                self._executor.shutdown()
