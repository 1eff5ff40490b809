"""Fatigue signals: opt-outs, unsubscribes, STOP replies and complaints per channel (consent
changes), bounces per channel (messages queued in the period that bounced, from the
rollups), and how many messages each person had received in the 7 days before they first
opted out in the period: counted messages on the 7 UTC days before the day they opted out,
from the rollups (dashboards.models.CustomerDay), all channels.

The journey filter does not apply: a consent change belongs to a customer, not a journey.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.db.models import (
    Count,
    DateField,
    Exists,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce, TruncDate

from customers.enums import Channel, ConsentStatus
from customers.models import ConsentChange
from orchestrator.dashboards.filters import Filters
from orchestrator.dashboards.models import BounceCount, CustomerDay
from orchestrator.dashboards.panels.base import Chart, Figure, PanelInfo, Series, channel_label

INFO = PanelInfo("fatigue", "Fatigue signals", applies=("period", "channel", "category"))
# The customer's own "no more": bounces are a mailbox's, counted from the ledger instead.
OPT_OUTS = (ConsentStatus.OPTED_OUT, ConsentStatus.UNSUBSCRIBED, ConsentStatus.STOPPED, ConsentStatus.COMPLAINED)
LOOKBACK = dt.timedelta(days=7)
MOST = 10  # the last bucket of the "messages before opting out" histogram is "10 or more"


@dataclass(frozen=True)
class Fatigue:
    signals: tuple[tuple[str, dict[str, int]], ...]  # (channel label, signal -> count)
    before_opt_out: tuple[tuple[str, int], ...]  # (messages in the 7 days before, people)

    def figures(self) -> list[Figure]:
        kinds = [*(s.label for s in OPT_OUTS), "Bounced"]
        rows = tuple((ch, kind, counts[kind]) for ch, counts in self.signals for kind in kinds if counts.get(kind))
        chart = Chart("bar", tuple(ch for ch, _ in self.signals),
                      tuple(Series(kind, tuple(c.get(kind, 0) for _, c in self.signals), key=kind.lower())
                            for kind in kinds), stacked=True, y_title="people / messages")
        return [
            Figure("signals", "Opt-outs, complaints and bounces by channel", ("channel", "signal", "count"), rows, chart),
            Figure("before-opt-out", "Messages received in the 7 days before opting out", ("messages", "people"),
                   self.before_opt_out,
                   Chart("bar", tuple(k for k, _ in self.before_opt_out),
                         (Series("people", tuple(n for _, n in self.before_opt_out)),), y_title="people"),
                   note="Each person once, at their first opt-out in the period: messages received on every channel "
                        "in the 7 UTC days before that day."),
        ]


def opt_outs(filters: Filters):
    qs = ConsentChange.objects.filter(changed_at__gte=filters.since_at, changed_at__lt=filters.until_at,
                                      status__in=OPT_OUTS)
    return filters.narrow(qs, journey=None).order_by()


def load(filters: Filters, now: dt.datetime) -> Fatigue:
    changes = opt_outs(filters)
    counts: dict[str, Counter] = {c: Counter() for c in Channel.values}
    for channel, status, n in changes.values_list("channel", "status").annotate(n=Count("id")):
        counts[channel][ConsentStatus(status).label] += n
    for channel, n in _bounces(filters):
        counts[channel]["Bounced"] += n
    signals = tuple((channel_label(c), dict(counts[c])) for c in Channel.values if counts[c])
    return Fatigue(signals, _before_opt_out(changes))


def _bounces(filters: Filters):
    qs = filters.narrow(BounceCount.objects.filter(day__gte=filters.since, day__lte=filters.until), journey=None)
    return [(c, n) for c, n in qs.order_by().values_list("channel").annotate(n=Sum("count")) if n]


def _before_opt_out(changes) -> tuple[tuple[str, int], ...]:
    earlier = changes.filter(customer_id=OuterRef("customer_id")).filter(
        Q(changed_at__lt=OuterRef("changed_at")) | Q(changed_at=OuterRef("changed_at"), id__lt=OuterRef("id"))
    )
    day = TruncDate("changed_at", tzinfo=dt.UTC)
    received = (
        CustomerDay.objects.filter(
            customer_id=OuterRef("customer_id"), day__lt=OuterRef("opted_day"),
            day__gte=ExpressionWrapper(OuterRef("opted_day") - LOOKBACK, output_field=DateField()),
        ).order_by().values("customer_id").annotate(n=Sum("count")).values("n")
    )
    firsts = changes.filter(~Exists(earlier)).annotate(opted_day=day).annotate(
        received=Coalesce(Subquery(received, output_field=IntegerField()), 0)
    )
    people = Counter(min(n, MOST) for n in firsts.values_list("received", flat=True))
    if not people:
        return ()
    return tuple((f"{k}+" if k == MOST else str(k), people.get(k, 0)) for k in range(MOST + 1))
