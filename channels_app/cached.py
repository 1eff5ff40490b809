"""A value read from the database by every send, cached per process and shared-invalidated.

Each process keeps the last value for ``ttl`` seconds without any I/O. When that expires
it reads one small shared value (a *generation*, in the Django cache: Redis in
production) and goes back to the database only when the generation moved, i.e. when an
admin saved since. ``forget()``, run by the admin on commit, clears this process at once
and moves the generation, so every other process follows within ``ttl``.

A missing generation (never set, evicted, or a per-process cache such as LocMemCache in
development, where the admin's process cannot reach the worker's) proves nothing, so the
rows are read again: staleness stays bounded by ``ttl`` whatever the cache.

Used by the governor's policy (``orchestrator.governor.loading``) and the channel
content rules (``channels_app.content_rules_loading``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.core.cache import cache

T = TypeVar("T")


@dataclass(frozen=True)
class Memo(Generic[T]):
    value: T
    generation: str | None
    fresh_until: float  # on the loader's clock


class GenerationCached(Generic[T]):
    def __init__(self, generation_key: str, read: Callable[[], T], *, ttl: float = 5.0):
        self.generation_key = generation_key
        self.read = read
        self.ttl = ttl
        self.memo: Memo[T] | None = None
        self.clock: Callable[[], float] = time.monotonic  # an attribute so tests can move it
        self._lock = threading.Lock()

    def load(self) -> T:
        memo, now = self.memo, self.clock()
        if memo is not None and now < memo.fresh_until:
            return memo.value
        generation = cache.get(self.generation_key)  # read before the rows: a change after this moves it again
        if memo is not None and generation is not None and memo.generation == generation:
            value = memo.value
        else:
            value = self.read()
        with self._lock:
            self.memo = Memo(value, generation, now + self.ttl)
        return value

    def forget(self) -> None:
        """Drop the cached value here and, through a new generation, in every process."""
        with self._lock:
            self.memo = None
        cache.set(self.generation_key, uuid.uuid4().hex, timeout=None)
