"""Message pressure: how many messages each customer gets per day and per week, how many
reach the caps, and who gets the most. Read from the rollups (dashboards.models).

The journey filter does not apply: pressure is what a customer receives from every journey
together, which is what the caps limit. Days and weeks are UTC calendar days and weeks
(from Monday); the caps count rolling windows, so the cap figures read a 24 h cap on
calendar days and a 7-day cap on calendar weeks.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass

from django.db.models import Sum
from django.urls import reverse

from customers.enums import Category, Channel
from customers.models import Customer
from orchestrator.dashboards.filters import Filters
from orchestrator.dashboards.models import CustomerDay, PressureBucket, Span
from orchestrator.dashboards.panels.base import (
    Chart,
    Figure,
    Link,
    PanelInfo,
    Series,
    channel_label,
    share,
)
from orchestrator.dashboards.rollups import ALL, week_of
from orchestrator.governor.models import FrequencyRule, ScopeChoices

INFO = PanelInfo("pressure", "Message pressure", applies=("period", "channel", "category"))
HEAVIEST = 20
SPAN_OF_WINDOW = {24 * 60: Span.DAY, 7 * 24 * 60: Span.WEEK}


@dataclass(frozen=True)
class CapShare:
    rule: str
    described: str
    span: str  # "d" / "w", or "" when the cap's window or scope is not a calendar day or week
    at: int  # customer-days (or -weeks) exactly at the cap
    over: int  # customer-days (or -weeks) over it (the governor should leave none)
    of: int  # customer-days (or -weeks) with any counted message in scope

    @property
    def at_or_over(self) -> int:
        return self.at + self.over


@dataclass(frozen=True)
class Heavy:
    customer_id: int
    name: str
    peak_day: dt.date
    peak: int  # counted messages that day, all channels
    period_total: int  # counted messages in the period, all channels


@dataclass(frozen=True)
class Pressure:
    # (channel or "" for all) -> ((messages, customer-days), ...) ascending messages
    per_day: dict[str, tuple[tuple[int, int], ...]]
    per_week: dict[str, tuple[tuple[int, int], ...]]
    caps: tuple[CapShare, ...]
    heaviest: tuple[Heavy, ...]
    channel: str
    category: str

    def figures(self) -> list[Figure]:
        return [
            self._distribution("per-day", "Messages per customer per day", self.per_day, "customer-days"),
            self._distribution("per-week", "Messages per customer per week", self.per_week, "customer-weeks"),
            self._caps_figure(),
            self._heaviest_figure(),
        ]

    def _distribution(self, key: str, title: str, dist: dict, unit: str) -> Figure:
        scopes = [s for s in (ALL, *Channel.values) if s in dist and (not self.channel or s == self.channel)]
        counts = sorted({k for s in scopes for k, _ in dist[s]})
        series = tuple(
            Series(channel_label(s), tuple(dict(dist[s]).get(k, 0) for k in counts), key=s or "all") for s in scopes
        )
        rows = tuple((channel_label(s), k, n) for s in scopes for k, n in dist[s])
        chart = Chart("bar", tuple(str(k) for k in counts), series, y_title=unit)
        return Figure(key, title, ("scope", "messages", unit), rows, chart,
                      note=f"How many {unit} had each number of counted messages.")

    def _caps_figure(self) -> Figure:
        shown = [c for c in self.caps if c.span]
        rows = tuple(
            (c.rule, c.described, {"d": "day", "w": "week"}.get(c.span, "not measured"), c.at, c.over, c.of,
             _percent(c.at_or_over, c.of) if c.span else None)
            for c in self.caps
        )
        chart = Chart("bar", tuple(c.rule for c in shown),
                      (Series("at the cap", tuple(_percent(c.at, c.of) for c in shown), key="deferred"),
                       Series("over the cap", tuple(_percent(c.over, c.of) for c in shown), key="suppressed")),
                      stacked=True, horizontal=True, y_title="% of customer-days (or -weeks) with a message in scope")
        return Figure("caps", "Share at or over each cap",
                      ("rule", "cap", "counted per", "at the cap", "over the cap", "of", "percent at or over"),
                      rows, chart, empty="No frequency caps are enabled.",
                      note="Calendar days for 24 h caps, calendar weeks for 7-day caps; other windows and tag "
                           "scopes cannot be read from daily counts and are listed as not measured.")

    def _heaviest_figure(self) -> Figure:
        timelines = tuple(reverse("customers:profile", args=[h.customer_id]) for h in self.heaviest)
        rows = tuple(
            (Link(h.name, url), h.peak_day.isoformat(), h.peak, h.period_total)
            for h, url in zip(self.heaviest, timelines, strict=True)
        )
        chart = Chart("bar", tuple(h.name for h in self.heaviest),
                      (Series("busiest day", tuple(h.peak for h in self.heaviest), key="all"),
                       Series("whole period", tuple(h.period_total for h in self.heaviest), key="email")),
                      horizontal=True, y_title="messages", links=timelines)
        return Figure("heaviest", "Heaviest-messaged customers",
                      ("customer", "busiest day", "messages that day", "messages in period"), rows, chart,
                      note="Ranked by their busiest day; all channels and categories. Click a bar (or a name) for "
                           "the timeline, which shows every message.")


def _percent(part: int, whole: int) -> float:
    return round(100 * share(part, whole), 2)


def load(filters: Filters, now: dt.datetime) -> Pressure:
    hist = _histograms(filters)
    category = filters.category or ALL
    return Pressure(
        per_day=_dist(hist, Span.DAY, category), per_week=_dist(hist, Span.WEEK, category),
        caps=tuple(_cap_shares(hist)), heaviest=_heaviest(filters),
        channel=filters.channel, category=filters.category,
    )


def _histograms(filters: Filters) -> dict[tuple[str, str, str], Counter]:
    """(span, channel, category) -> Counter(messages -> customer-spans) over the period."""
    rows = (
        PressureBucket.objects.filter(span=Span.DAY, start__gte=filters.since, start__lte=filters.until)
        | PressureBucket.objects.filter(span=Span.WEEK, start__gte=week_of(filters.since), start__lte=filters.until)
    ).values_list("span", "channel", "category", "messages").annotate(n=Sum("customers")).order_by()
    hist: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    for span, channel, category, messages, n in rows:
        if n:
            hist[(span, channel, category)][messages] += n
    return hist


def _dist(hist, span: str, category: str) -> dict[str, tuple[tuple[int, int], ...]]:
    return {
        channel: tuple(sorted(counts.items()))
        for (s, channel, cat), counts in hist.items()
        if s == span and cat == category and counts
    }


def _cap_shares(hist) -> list[CapShare]:
    shares = []
    for rule in FrequencyRule.objects.filter(enabled=True).order_by("name"):
        span = SPAN_OF_WINDOW.get(rule.window_minutes, "")
        channel = {ScopeChoices.ALL: ALL, ScopeChoices.CHANNEL: (rule.channels or [""])[0]}.get(rule.scope)
        if channel is None:
            span = ""
        category = ALL if rule.counts_transactional else Category.MARKETING
        counts = hist.get((span, channel, category), Counter()) if span else Counter()
        over = sum(n for k, n in counts.items() if k > rule.max_count)
        shares.append(CapShare(rule.name, rule.describe(), span, counts[rule.max_count], over, sum(counts.values())))
    return shares


def _heaviest(filters: Filters) -> tuple[Heavy, ...]:
    in_period = CustomerDay.objects.filter(day__gte=filters.since, day__lte=filters.until)
    top = list(in_period.order_by("-count", "day", "customer_id").values_list("customer_id", "day", "count")[: HEAVIEST * 4])
    peaks: dict[int, tuple[dt.date, int]] = {}
    for customer_id, day, count in top:  # a customer's busiest day only
        peaks.setdefault(customer_id, (day, count))
    found = Customer.objects.filter(pk__in=list(peaks)).only("email", "external_id")
    names = {c.pk: c.email or c.external_id or f"#{c.pk}" for c in found}
    ids = [c for c in peaks if c in names][:HEAVIEST]  # an erased customer's counts outlive them until a rebuild
    totals = dict(in_period.filter(customer_id__in=ids).order_by().values_list("customer_id").annotate(n=Sum("count")))
    return tuple(Heavy(c, names[c], peaks[c][0], peaks[c][1], totals.get(c, 0)) for c in ids)
