"""Django's Redis cache, with one redis client per connection pool instead of one per cache call.

Django 5.2's RedisCacheClient.get_client() builds a new ``redis.Redis`` for every get, set or incr. With redis-py 8
that costs about half a millisecond of CPU (each client fills a case-insensitive table of ~250 response callbacks),
and an API request makes three cache calls (permission set, throttle, idempotency), so it was the largest single
cost of POST /messages after the database. A ``redis.Redis`` is safe to share: it takes a connection from its pool
per command. Django keeps one cache object per thread, so this is one client per pool per thread.
"""
from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ReusedClientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
