"""kombu's Redis transport, with one Redis client per channel instead of one per command.

kombu's Redis channel builds a new ``redis.Redis`` for every publish and every ack (``conn_or_acquire``), and with
redis-py 8 each costs about half a millisecond of CPU (a 250-entry case-insensitive callback table): on the web
tier one per POST /messages, on a worker one per task. A ``redis.Redis`` is safe to reuse: it takes a connection
from the channel's pool per command, as before. Used only when the broker is Redis (config/settings.py); every
other broker keeps its own transport.
"""
from contextlib import contextmanager

from kombu.transport import redis


class Channel(redis.Channel):
    _reused_client = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        reused = self._reused_client
        if reused is None or reused.connection_pool is not self.pool:  # a new pool after a reconnect
            reused = self._reused_client = self._create_client()
        yield reused


class RedisTransport(redis.Transport):
    Channel = Channel
