"""Channel mix: counted messages per day stacked by channel, and by journey and team tag.
Read from the rollups (dashboards.models.MixCount)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.db.models import Sum

from customers.enums import Channel
from journeys.models import Journey
from orchestrator.dashboards.filters import Filters
from orchestrator.dashboards.models import MixCount
from orchestrator.dashboards.panels.base import Chart, Figure, PanelInfo, Series, channel_label

INFO = PanelInfo("mix", "Channel mix")
NO_JOURNEY = "Not from a journey"
UNTAGGED = "(untagged)"
TOP_JOURNEYS = 15


@dataclass(frozen=True)
class Mix:
    days: tuple[dt.date, ...]
    per_day: dict[str, tuple[int, ...]]  # channel -> count per day, in ``days`` order
    by_journey: tuple[tuple[str, dict[str, int]], ...]  # (journey name, channel -> count), busiest first
    by_tag: tuple[tuple[str, dict[str, int]], ...]

    def figures(self) -> list[Figure]:
        channels = [c for c in Channel.values if c in self.per_day]
        day_rows = tuple((d.isoformat(), c, self.per_day[c][i]) for i, d in enumerate(self.days) for c in channels
                         if self.per_day[c][i])
        over_time = Chart("bar", tuple(d.strftime("%d %b") for d in self.days),
                          tuple(Series(channel_label(c), self.per_day[c], key=c) for c in channels),
                          stacked=True, y_title="messages")
        return [
            Figure("per-day", "Messages per day by channel", ("day", "channel", "messages"), day_rows, over_time),
            self._grouped("by-journey", "By journey", "journey", self.by_journey),
            self._grouped("by-tag", "By team tag", "tag", self.by_tag,
                          note="A journey with several tags counts under each of them."),
        ]

    def _grouped(self, key: str, title: str, noun: str, groups, note: str = "") -> Figure:
        channels = [c for c in Channel.values if any(c in counts for _, counts in groups)]
        rows = tuple((name, c, counts[c]) for name, counts in groups for c in channels if counts.get(c))
        chart = Chart("bar", tuple(name for name, _ in groups),
                      tuple(Series(channel_label(c), tuple(counts.get(c, 0) for _, counts in groups), key=c)
                            for c in channels), stacked=True, horizontal=True, y_title="messages")
        return Figure(key, title, (noun, "channel", "messages"), rows, chart, note=note)


def load(filters: Filters, now: dt.datetime) -> Mix:
    qs = filters.narrow(MixCount.objects.filter(day__gte=filters.since, day__lte=filters.until))
    rows = [(d, c, j, n) for d, c, j, n in qs.values_list("day", "channel", "journey_id").annotate(n=Sum("count")).order_by() if n]
    days = tuple(filters.days)
    index = {d: i for i, d in enumerate(days)}
    per_day: dict[str, list[int]] = {}
    by_journey: dict[int, Counter] = {}
    for day, channel, journey, n in rows:
        per_day.setdefault(channel, [0] * len(days))[index[day]] += n
        by_journey.setdefault(journey, Counter())[channel] += n
    journeys = {j.pk: j for j in Journey.objects.filter(pk__in=[j for j in by_journey if j]).only("name", "tags")}
    return Mix(days, {c: tuple(v) for c, v in per_day.items()}, _journeys(by_journey, journeys), _tags(by_journey, journeys))


def _busiest(groups: dict[str, Counter], limit: int | None = None) -> tuple[tuple[str, dict[str, int]], ...]:
    ordered = sorted(groups.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return tuple((name, dict(counts)) for name, counts in ordered[:limit])


def _journeys(by_journey: dict[int, Counter], journeys: dict[int, Journey]):
    named = {(journeys[j].name if j in journeys else f"Journey {j}") if j else NO_JOURNEY: c for j, c in by_journey.items()}
    return _busiest(named, TOP_JOURNEYS)


def _tags(by_journey: dict[int, Counter], journeys: dict[int, Journey]):
    tags: dict[str, Counter] = {}
    for j, counts in by_journey.items():
        names = ([str(t) for t in journeys[j].tags or []] or [UNTAGGED]) if j in journeys else [NO_JOURNEY if not j else UNTAGGED]
        for name in names:
            tags.setdefault(name, Counter()).update(counts)
    return _busiest(tags)
