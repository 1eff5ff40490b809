"""Upcoming load: sends due in the next 24 hours and 7 days, by channel, so a pile-up shows
before it lands. An enrollment will send when it is due at a send node (a send that was
deferred waits there too) or due at a delay or wait whose next node is a send. Holdout
enrollments send nothing and are left out. Read from Enrollment.due_at (enrollment_due_idx)
and the versions' graphs."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.db.models import Case, Count, IntegerField, Q, Value, When
from django.db.models.functions import TruncDate

from customers.enums import Channel
from journeys.models import JourneyVersion
from orchestrator.dashboards.filters import Filters
from orchestrator.dashboards.panels.base import (
    Chart,
    Figure,
    PanelInfo,
    Series,
    as_of,
    channel_label,
)
from orchestrator.engine.models import Enrollment, EnrollmentState

INFO = PanelInfo("upcoming", "Upcoming load", applies=("journey", "channel", "category"))
BEST = "best"
AT_SEND = "due at a send"
AFTER_WAIT = "after a delay or wait"
HORIZON = dt.timedelta(days=7)
SOON = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Upcoming:
    now: dt.datetime
    days: tuple[dt.date, ...]
    per_day: dict[str, tuple[int, ...]]  # channel -> sends due per UTC day in ``days``
    by_channel: tuple[tuple[str, str, int, int], ...]  # (channel, how, next 24 h, next 7 days)

    def figures(self) -> list[Figure]:
        channels = [c for c in (*Channel.values, BEST) if c in self.per_day]
        daily = Chart("bar", tuple(d.strftime("%a %d %b") for d in self.days),
                      tuple(Series(_label(c), self.per_day[c], key=c) for c in channels), stacked=True,
                      y_title="sends due")
        rows = tuple((_label(c), how, soon, week) for c, how, soon, week in self.by_channel)
        return [
            Figure("by-day", "Sends due per day, next 7 days", ("day", "channel", "sends due"),
                   tuple((d.isoformat(), _label(c), self.per_day[c][i]) for i, d in enumerate(self.days)
                         for c in channels if self.per_day[c][i]), daily,
                   empty="Nothing is due in the next 7 days.", note=as_of(self.now)),
            Figure("by-channel", "Next 24 hours and 7 days by channel", ("channel", "how", "next 24 h", "next 7 days"),
                   rows, _totals_chart(self.by_channel), empty="Nothing is due in the next 7 days."),
        ]


def _label(channel: str) -> str:
    return "Best channel" if channel == BEST else channel_label(channel)


def _totals_chart(rows) -> Chart:
    soon, week = Counter(), Counter()
    for channel, _, s, w in rows:
        soon[channel] += s
        week[channel] += w
    channels = [c for c in (*Channel.values, BEST) if week[c]]
    return Chart("bar", tuple(_label(c) for c in channels),
                 (Series("next 24 h", tuple(soon[c] for c in channels)),
                  Series("next 7 days", tuple(week[c] for c in channels))), y_title="sends due")


def load(filters: Filters, now: dt.datetime) -> Upcoming:
    # Written as enrollment_upcoming_idx's condition so PostgreSQL proves the index applies.
    qs = Enrollment.objects.filter(
        Q(due_at__isnull=False, holdout=False) & ~Q(state=EnrollmentState.EXITED),
        due_at__gte=now, due_at__lt=now + HORIZON,
    )
    qs = filters.narrow(qs, channel=None, category="journey__category")  # channel: decided below, per node
    soon = Case(When(due_at__lt=now + SOON, then=Value(1)), default=Value(0), output_field=IntegerField())
    grouped = list(
        qs.annotate(soon=soon, day=TruncDate("due_at", tzinfo=dt.UTC)).order_by()
        .values_list("version_id", "current_node", "state", "day", "soon").annotate(n=Count("*"))
    )
    graphs = dict(JourneyVersion.objects.filter(pk__in={g[0] for g in grouped}).values_list("pk", "graph"))
    days = tuple(now.date() + dt.timedelta(days=i) for i in range(8))
    per_day: dict[str, list[int]] = {}
    totals: Counter[tuple[str, str, int]] = Counter()
    for version, node, state, day, is_soon, n in grouped:
        target = next_send(graphs.get(version) or {}, node, state)
        if target is None or (filters.channel and target[0] != filters.channel):
            continue
        per_day.setdefault(target[0], [0] * len(days))[days.index(day)] += n
        totals[(*target, is_soon)] += n
    by_channel = sorted({(c, how) for c, how, _ in totals}, key=lambda k: ((*Channel.values, BEST).index(k[0]), k[1]))
    return Upcoming(now, days, {c: tuple(v) for c, v in per_day.items()},
                    tuple((c, how, totals[(c, how, 1)], totals[(c, how, 1)] + totals[(c, how, 0)]) for c, how in by_channel))


def next_send(graph: dict, node_id: str, state: str) -> tuple[str, str] | None:
    """(channel, how) of the send an enrollment due at ``node_id`` makes next, or None."""
    nodes = {n.get("id"): n for n in graph.get("nodes", [])}
    node = nodes.get(node_id)
    if node is None:
        return None
    if node.get("kind") == "send":
        return _channel(node), AT_SEND
    port = "timed_out" if state == EnrollmentState.WAITING else "out"
    if node.get("kind") not in ("delay", "wait_for_event", "entry"):
        return None
    to = next((e.get("to") for e in graph.get("edges", []) if e.get("from") == node_id and e.get("port") == port), None)
    after = nodes.get(to)
    if after is not None and after.get("kind") == "send":
        return _channel(after), AFTER_WAIT
    return None


def _channel(node: dict) -> str:
    channel = str((node.get("config") or {}).get("channel") or "")
    return channel if channel in Channel.values else BEST
