"""The Redis where pacing and instance pauses are kept, so every worker on every host sees the same."""
import threading

from django.conf import settings

_clients: dict[str, object] = {}
_lock = threading.Lock()


def redis_client():
    """A client for REDIS_URL (short timeouts: a sick Redis must not hang a send), or None in embedded mode."""
    url = settings.REDIS_URL
    if not url:
        return None
    with _lock:
        if url not in _clients:
            import redis

            _clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        return _clients[url]
