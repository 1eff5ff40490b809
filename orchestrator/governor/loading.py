"""The policy rows as the frozen ``Policy`` the decision reads, cached because every send reads it.

Each process keeps the last ``Policy`` for ``TTL_SECONDS`` without any I/O. When that
expires it reads one small shared value (the policy's *generation*, in the Django cache:
Redis in production) and goes back to the database only when the generation moved, i.e.
when an admin saved the policy since. ``forget_policy()``, run by the admin on commit,
clears this process at once and moves the generation, so every other process follows
within ``TTL_SECONDS``.

A missing generation (never set, evicted, or a per-process cache such as LocMemCache in
development, where the admin's process cannot reach the worker's) proves nothing, so the
rows are read again: staleness stays bounded by ``TTL_SECONDS`` whatever the cache.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from dataclasses import dataclass

from django.core.cache import cache

from orchestrator.governor.models import FrequencyRule, GovernorSettings, QuietHoursRule
from orchestrator.governor.policy import CapRule, Policy, QuietHours, Scope

TTL_SECONDS = 5.0
GENERATION_KEY = "chorus:governor:policy-generation"


@dataclass(frozen=True)
class _Memo:
    policy: Policy
    generation: str | None
    fresh_until: float  # _clock()


_memo: _Memo | None = None
_lock = threading.Lock()
_clock = time.monotonic  # a module attribute so tests can move it


def load_policy() -> Policy:
    """The current policy: enabled rules and quiet hours, and the settings (3 queries at most)."""
    global _memo
    memo, now = _memo, _clock()
    if memo is not None and now < memo.fresh_until:
        return memo.policy
    generation = cache.get(GENERATION_KEY)  # read before the rows: a change after this moves it again
    if memo is not None and generation is not None and memo.generation == generation:
        policy = memo.policy
    else:
        policy = read_policy()
    with _lock:
        _memo = _Memo(policy, generation, now + TTL_SECONDS)
    return policy


def forget_policy() -> None:
    """Drop the cached policy here and, through a new generation, in every process."""
    global _memo
    with _lock:
        _memo = None
    cache.set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)


def read_policy() -> Policy:
    """The policy straight from the database, uncached."""
    row = GovernorSettings.objects.filter(pk=GovernorSettings.SINGLETON_PK).first() or GovernorSettings()
    rules = tuple(_cap_rule(r) for r in FrequencyRule.objects.filter(enabled=True).order_by("pk"))
    quiet = tuple(
        QuietHours(channel=q.channel, start=q.start, end=q.end)
        for q in QuietHoursRule.objects.filter(enabled=True).order_by("channel")
    )
    return Policy(
        rules=rules,
        min_spacing=dt.timedelta(minutes=row.min_spacing_minutes) if row.min_spacing_minutes else None,
        quiet_hours=quiet,
        fallback_timezone=row.fallback_timezone or "UTC",
        in_app_counts=row.in_app_counts,
        defer_horizon=dt.timedelta(hours=row.defer_horizon_hours),
    )


def _cap_rule(rule: FrequencyRule) -> CapRule:
    return CapRule(
        name=rule.name,
        scope=Scope(rule.scope),
        max_count=rule.max_count,
        window=dt.timedelta(minutes=rule.window_minutes),
        channels=frozenset(rule.channels or ()),
        tag=rule.tag,
        counts_transactional=rule.counts_transactional,
    )
