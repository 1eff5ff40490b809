"""Panels of the present moment (what is due, who is inside which journey) read the
enrollments, which grow with the audience rather than with time and have no rollup of
their own (the engine writes them in many places). They are computed at most once every
``TTL_SECONDS`` per filter set and shared by every viewer through the cache (Redis in
production): a dashboard open on several screens costs one computation a minute."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

from orchestrator.dashboards.filters import Filters

TTL_SECONDS = 60
T = TypeVar("T")


def shared(panel: str, filters: Filters, now: dt.datetime, compute: Callable[[Filters, dt.datetime], T]) -> T:
    key = f"chorus:dashboards:{panel}:{filters.journey_id or ''}:{filters.channel}:{filters.category}"
    found = cache.get(key)
    if found is not None:
        return found
    value = compute(filters, now)
    cache.set(key, value, TTL_SECONDS)
    return value


def as_of(moment: dt.datetime) -> str:
    return f"As of {moment.astimezone(dt.UTC):%H:%M} UTC; recomputed at most once a minute."
