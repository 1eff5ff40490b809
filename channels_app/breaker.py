"""A circuit breaker per provider config: stop calling a provider that is down.

closed → open after ``CHORUS_BREAKER_FAILURES`` consecutive failures (transient errors
and ambiguous outcomes; a permanent refusal proves the provider is up) → half-open once
``CHORUS_BREAKER_COOLDOWN_SECONDS`` have passed, when exactly one caller gets to probe:
a success closes the circuit, a failure opens it for another cool-down.

State lives in Django's cache, so with Redis configured (REDIS_URL) every worker
process shares it; with the local-memory cache each process keeps its own breaker,
which only means each process probes a dead provider once per cool-down. Every call
takes ``now`` (the caller's clock) so tests move time explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache

# Longer than any cool-down: a forgotten breaker expires instead of lingering.
STATE_TTL = 24 * 3600


@dataclass(frozen=True)
class Breaker:
    key: str  # the provider config: "name:config_id"

    @classmethod
    def for_provider(cls, provider) -> Breaker:
        return cls(f"{provider.name}:{provider.config.config_id or 0}")

    @property
    def _failures(self) -> str:
        return f"breaker:{self.key}:failures"

    @property
    def _opened(self) -> str:
        return f"breaker:{self.key}:opened_at"

    @property
    def _probe(self) -> str:
        return f"breaker:{self.key}:probe"

    def state(self, now: datetime) -> str:
        opened_at = cache.get(self._opened)
        if opened_at is None:
            return "closed"
        return "open" if now.timestamp() < opened_at + _cooldown() else "half_open"

    def healthy(self) -> bool:
        """No failure since the last success: callers may send a whole batch in one call.
        Otherwise they send one at a time, asking allow() before each."""
        return not cache.get(self._failures)

    def allow(self, now: datetime) -> bool:
        """May the caller send through this provider now? Half-open: one caller only."""
        state = self.state(now)
        if state == "closed":
            return True
        if state == "open":
            return False
        # cache.add is atomic (Redis SET NX): of all concurrent callers one wins the probe.
        return cache.add(self._probe, 1, timeout=_cooldown())

    def record_success(self) -> None:
        cache.delete_many([self._failures, self._opened, self._probe])

    def record_failure(self, now: datetime) -> None:
        cache.add(self._failures, 0, timeout=STATE_TTL)
        failures = cache.incr(self._failures)
        # A failed probe (the circuit was open) re-opens it at once.
        if failures >= settings.CHORUS_BREAKER_FAILURES or cache.get(self._opened) is not None:
            cache.set(self._opened, now.timestamp(), timeout=STATE_TTL)
            cache.delete(self._probe)


def _cooldown() -> int:
    return settings.CHORUS_BREAKER_COOLDOWN_SECONDS
