"""Per-key request counters and revocation flags, shared by every server process.

With ``REDIS_URL`` set they live in Redis and cost one pipelined round trip per request
(INCR + EXPIRE + EXISTS) on a connection pool held for the life of the process. Without
Redis (the embedded default, one web process) Django's local cache holds them.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

WINDOW_TTL_SECONDS = 70  # a one-minute window, kept a little longer than it lasts
REVOKED_TTL_SECONDS = 24 * 3600  # far longer than any process caches a key


@lru_cache(maxsize=1)
def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)


def _counter_key(key_id: int, window: int) -> str:
    return f"chorus:ratelimit:{key_id}:{window}"


def _revoked_key(prefix: str) -> str:
    return f"chorus:revoked:{prefix}"


def hit(key_id: int, prefix: str, window: int) -> tuple[int, bool]:
    """Count one request in the key's window; returns (count so far, revoked elsewhere)."""
    if settings.REDIS_URL:
        try:
            pipe = _redis().pipeline(transaction=False)
            pipe.incr(_counter_key(key_id, window))
            pipe.expire(_counter_key(key_id, window), WINDOW_TTL_SECONDS)
            pipe.exists(_revoked_key(prefix))
            count, _, revoked = pipe.execute()
            return int(count), bool(revoked)
        except Exception:  # noqa: BLE001 - an unreachable Redis must not take ingestion down
            log.warning("rate limiter: Redis unavailable, request not counted", exc_info=True)
            return 0, False
    name = _counter_key(key_id, window)
    if cache.add(name, 1, timeout=WINDOW_TTL_SECONDS):
        return 1, bool(cache.get(_revoked_key(prefix)))
    try:
        count = cache.incr(name)
    except ValueError:  # expired between add and incr
        cache.add(name, 1, timeout=WINDOW_TTL_SECONDS)
        count = 1
    return count, bool(cache.get(_revoked_key(prefix)))


def mark_revoked(prefix: str) -> None:
    if settings.REDIS_URL:
        try:
            _redis().set(_revoked_key(prefix), 1, ex=REVOKED_TTL_SECONDS)
            return
        except Exception:  # noqa: BLE001
            log.warning("could not publish a key revocation to Redis", exc_info=True)
    cache.set(_revoked_key(prefix), 1, timeout=REVOKED_TTL_SECONDS)
