"""Governor activity: suppressions and deferrals by rule, channel and journey; quiet-hour
deferrals; and how long deferred sends waited (from the verdict to the moment it named).
Read index-only from orchestrator.governor.models.GovernorVerdict (verdict_dashboard_idx:
by time, covering every column grouped or filtered here; 100,000 verdicts a month in
about 100 ms, half the heap's time, so no rollup is kept)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.db.models import Case, Count, F, IntegerField, Q, Value, When

from customers.enums import Channel
from journeys.models import Journey
from orchestrator.dashboards.filters import Filters
from orchestrator.dashboards.panels.base import Chart, Figure, PanelInfo, Series, channel_label
from orchestrator.governor.models import GovernorVerdict

INFO = PanelInfo("governor", "Governor activity")
D = GovernorVerdict.Decision
QUIET_PREFIX = "quiet hours"
TOP = 12
# Upper bounds of the wait buckets (until - at); the last bucket is open.
WAITS = (("under 1 h", dt.timedelta(hours=1)), ("1–4 h", dt.timedelta(hours=4)), ("4–12 h", dt.timedelta(hours=12)),
         ("12–24 h", dt.timedelta(hours=24)), ("1–3 days", dt.timedelta(days=3)))
OVER = "over 3 days"


@dataclass(frozen=True)
class Governor:
    by_rule: tuple[tuple[str, int, int], ...]  # (rule, deferred, suppressed), busiest first
    by_channel: tuple[tuple[str, int, int], ...]
    by_journey: tuple[tuple[str, int, int], ...]
    quiet_by_channel: tuple[tuple[str, int], ...]
    waits: tuple[tuple[str, int], ...]  # (bucket, deferrals), in bucket order

    def figures(self) -> list[Figure]:
        return [
            self._decisions("by-rule", "By rule", "rule", self.by_rule),
            self._decisions("by-channel", "By channel", "channel", self.by_channel),
            self._decisions("by-journey", "By journey", "journey", self.by_journey),
            Figure("quiet", "Quiet-hour deferrals", ("channel", "deferrals"), self.quiet_by_channel,
                   Chart("bar", tuple(c for c, _ in self.quiet_by_channel),
                         (Series("deferrals", tuple(n for _, n in self.quiet_by_channel)),), y_title="deferrals")),
            Figure("waits", "How long deferred sends waited", ("waited", "deferrals"), self.waits,
                   Chart("bar", tuple(b for b, _ in self.waits), (Series("deferrals", tuple(n for _, n in self.waits)),),
                         y_title="deferrals"),
                   note="From the verdict to the moment it deferred the send to."),
        ]

    @staticmethod
    def _decisions(key: str, title: str, noun: str, rows) -> Figure:
        chart = Chart("bar", tuple(r[0] for r in rows),
                      (Series("deferred", tuple(r[1] for r in rows), key="deferred"),
                       Series("suppressed", tuple(r[2] for r in rows), key="suppressed")),
                      stacked=True, horizontal=True, y_title="verdicts")
        return Figure(key, title, (noun, "deferred", "suppressed"), rows, chart)


def verdicts(filters: Filters):
    return filters.narrow(GovernorVerdict.objects.filter(at__gte=filters.since_at, at__lt=filters.until_at)).order_by()


def load(filters: Filters, now: dt.datetime) -> Governor:
    """One pass over the period's verdicts, grouped by everything the figures split by."""
    grouped = list(
        verdicts(filters).annotate(bucket=_wait_bucket())
        .values_list("rule", "channel", "journey_id", "decision", "bucket").annotate(n=Count("*"))
    )
    rules, channels, journeys, quiet, waits = Counter(), Counter(), Counter(), Counter(), Counter()
    for rule, channel, journey, decision, bucket, n in grouped:
        rules[(rule, decision)] += n
        channels[(channel, decision)] += n
        journeys[(journey or 0, decision)] += n
        if decision == D.DEFER and rule.startswith(QUIET_PREFIX):
            quiet[channel] += n
        if bucket is not None:
            waits[bucket] += n
    names = dict(Journey.objects.filter(pk__in=[j for j, _ in journeys if j]).values_list("pk", "name"))
    labels = [label for label, _ in WAITS] + [OVER]
    return Governor(
        by_rule=_split(rules, str, TOP),
        by_channel=_split(channels, channel_label),
        by_journey=_split(journeys, lambda j: names.get(j, f"Journey {j}") if j else "Not from a journey", TOP),
        quiet_by_channel=tuple((channel_label(c), quiet[c]) for c in Channel.values if quiet[c]),
        waits=tuple((label, waits[i]) for i, label in enumerate(labels)) if waits else (),
    )


def _split(counts: Counter, name, limit: int | None = None) -> tuple[tuple[str, int, int], ...]:
    keys = {k for k, _ in counts}
    rows = [(k, counts[(k, D.DEFER)], counts[(k, D.SUPPRESS)]) for k in keys]
    rows.sort(key=lambda r: (-(r[1] + r[2]), str(r[0])))
    return tuple((name(k), d, s) for k, d, s in rows[:limit])


def _wait_bucket() -> Case:
    """The index of the deferral's wait in WAITS (len(WAITS): longer); NULL for the rest."""
    deferred = Q(decision=D.DEFER, until__isnull=False)
    return Case(
        *(When(deferred & Q(until__lt=F("at") + bound), then=Value(i)) for i, (_, bound) in enumerate(WAITS)),
        When(deferred, then=Value(len(WAITS))),
        default=None, output_field=IntegerField(),
    )
