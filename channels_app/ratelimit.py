"""The send rate per provider config (``options["rate_per_second"]``; unset: unlimited).

A fixed one-second window counted in Django's cache: ``INCR`` on a key named by the
second, so with Redis configured the limit holds across every worker process (with the
local-memory cache, per process: document the account's rate divided by the processes).
A delivery over the limit is not dropped: the caller puts it back in the queue for the
next window. ``now`` comes from the caller so tests move the clock explicitly.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.core.cache import cache


def rate_of(provider) -> float | None:
    rate = provider.config.options.get("rate_per_second")
    # Whole seconds are the window: a rate below one still lets one send a second through.
    return max(1.0, float(rate)) if rate else None


def take(provider, now: datetime) -> bool:
    """One send's token for this provider in the current second; False when none is left."""
    rate = rate_of(provider)
    if rate is None:
        return True
    window = math.floor(now.timestamp())
    key = f"rate:{provider.name}:{provider.config.config_id or 0}:{window}"
    cache.add(key, 0, timeout=5)  # a few seconds: the key only matters within its second
    return cache.incr(key) <= rate


def next_window(now: datetime) -> datetime:
    """The start of the next one-second window: when a rate-limited send may try again."""
    return now + timedelta(seconds=math.floor(now.timestamp()) + 1 - now.timestamp())
