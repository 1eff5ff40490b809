"""Journey overlap: customers inside more than one live journey right now, and the pairs
of journeys that share the most customers. "Inside" = enrolled and not exited (holdouts
included: they walk the journey too). The period and channel filters do not apply; the
journey filter keeps the pairs that include it, the category filter journeys of it.

It reads the live enrollments directly: on the 5M-message bench (400,000 enrollments
inside) that is over the 300 ms aim. A rollup kept by a trigger on the enrollments was
tried and removed: its per-customer lock, taken while the engine holds customer rows,
deadlocked segment entry against the workers, and it cost a bulk entry 0.36 ms a row."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count

from journeys.models import Journey, JourneyStatus
from orchestrator.dashboards.filters import Filters
from orchestrator.dashboards.panels.base import Chart, Figure, PanelInfo, Series, as_of
from orchestrator.engine.models import Enrollment, EnrollmentState

INFO = PanelInfo("overlap", "Journey overlap", applies=("journey", "category"))
TOP_PAIRS = 10
MOST = 5  # "5 or more journeys at once"
INSIDE = (EnrollmentState.ACTIVE, EnrollmentState.WAITING)


@dataclass(frozen=True)
class Overlap:
    in_several: tuple[tuple[str, int], ...]  # (journeys at once, customers): 2, 3, 4, 5+
    pairs: tuple[tuple[str, str, int], ...]  # (journey, journey, customers in both), most first
    computed_at: dt.datetime

    @property
    def customers_in_several(self) -> int:
        return sum(n for _, n in self.in_several)

    def figures(self) -> list[Figure]:
        return [
            Figure("in-several", "Customers in more than one live journey", ("live journeys at once", "customers"),
                   self.in_several,
                   Chart("bar", tuple(k for k, _ in self.in_several), (Series("customers", tuple(n for _, n in self.in_several)),),
                         y_title="customers"),
                   empty="Nobody is inside more than one live journey.", note=as_of(self.computed_at)),
            Figure("pairs", "Journeys that collide most", ("journey", "journey", "customers in both"), self.pairs,
                   Chart("bar", tuple(f"{a} + {b}" for a, b, _ in self.pairs),
                         (Series("customers in both", tuple(n for *_, n in self.pairs)),), horizontal=True,
                         y_title="customers"),
                   empty="No two live journeys share a customer."),
        ]


def live_journeys(filters: Filters) -> dict[int, str]:
    qs = Journey.objects.filter(status=JourneyStatus.LIVE)
    if filters.category:
        qs = qs.filter(category=filters.category)
    return dict(qs.values_list("pk", "name"))


def load(filters: Filters, now: dt.datetime) -> Overlap:
    names = live_journeys(filters)
    if len(names) < 2:
        return Overlap((), (), now)
    several, pairs = _overlap(sorted(names), filters.journey_id)
    in_several = tuple((f"{k}+" if k == MOST else str(k), several[k]) for k in range(2, MOST + 1)) if several else ()
    return Overlap(in_several, tuple((names[a], names[b], n) for a, b, n in pairs), now)


def _inside(ids: list[int]):
    return Enrollment.objects.filter(journey_id__in=ids, state__in=INSIDE).order_by()


def _overlap(ids: list[int], journey_id: int | None) -> tuple[Counter, list[tuple[int, int, int]]]:
    """Customers inside several journeys, and the pairs that share most, from the live
    enrollments themselves (a self-join on the customer)."""
    several = Counter(
        min(n, MOST) for n in _inside(ids).values("customer_id").annotate(n=Count("journey_id", distinct=True))
        .filter(n__gte=2).values_list("n", flat=True)
    )
    table = connection.ops.quote_name(Enrollment._meta.db_table)
    marks = ", ".join(["%s"] * len(ids))
    states = ", ".join(["%s"] * len(INSIDE))
    focus = " AND (a.journey_id = %s OR b.journey_id = %s)" if journey_id else ""
    sql = (
        f"SELECT a.journey_id, b.journey_id, COUNT(DISTINCT a.customer_id) AS n"
        f" FROM {table} a JOIN {table} b ON b.customer_id = a.customer_id AND b.journey_id > a.journey_id"
        f" WHERE a.journey_id IN ({marks}) AND b.journey_id IN ({marks})"
        f" AND a.state IN ({states}) AND b.state IN ({states}){focus}"
        f" GROUP BY a.journey_id, b.journey_id ORDER BY n DESC, a.journey_id, b.journey_id LIMIT {TOP_PAIRS}"
    )
    params = [*ids, *ids, *INSIDE, *INSIDE, *([journey_id, journey_id] if journey_id else [])]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return several, list(cursor.fetchall())
