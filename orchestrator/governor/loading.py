"""The policy rows as the frozen ``Policy`` the decision reads, cached because every send reads it.

Cached per process for ``TTL_SECONDS`` and invalidated everywhere through a shared
generation (see ``channels_app.cached``): ``forget_policy()``, run by the admin on commit,
clears this process at once and every other one within ``TTL_SECONDS``.
"""

from __future__ import annotations

import datetime as dt

from channels_app.cached import GenerationCached
from orchestrator.governor.models import FrequencyRule, GovernorSettings, QuietHoursRule
from orchestrator.governor.policy import CapRule, Policy, QuietHours, Scope

TTL_SECONDS = 5.0
GENERATION_KEY = "chorus:governor:policy-generation"


def load_policy() -> Policy:
    """The current policy (one small read at most, and usually none)."""
    return _cached.load()


def forget_policy() -> None:
    """Drop the cached policy here and, through a new generation, in every process."""
    _cached.forget()


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
        marketing_opt_in_channels=frozenset(row.marketing_opt_in_channels or ()),
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


_cached = GenerationCached(GENERATION_KEY, read_policy, ttl=TTL_SECONDS)
