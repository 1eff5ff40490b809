"""Journey overlap: customers inside more than one live journey right now, and the pairs
of journeys that share the most customers. "Inside" = enrolled and not exited (holdouts
included: they walk the journey too). The period and channel filters do not apply; the
journey filter keeps the pairs that include it, the category filter journeys of it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Count

from journeys.models import Journey, JourneyStatus
from orchestrator.dashboards.filters import Filters
from orchestrator.dashboards.panels.base import Chart, Figure, PanelInfo, Series
from orchestrator.dashboards.panels.shared import as_of, shared
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
    return shared(INFO.key, filters, now, compute)


def compute(filters: Filters, now: dt.datetime) -> Overlap:
    names = live_journeys(filters)
    if len(names) < 2:
        return Overlap((), (), now)
    if connection.vendor == "postgresql":
        several, pairs = _overlap_postgres(sorted(names), filters.journey_id)
    else:
        several, pairs = _overlap_portable(sorted(names), filters.journey_id)
    in_several = tuple((f"{k}+" if k == MOST else str(k), several[k]) for k in range(2, MOST + 1)) if several else ()
    return Overlap(in_several, tuple((names[a], names[b], n) for a, b, n in pairs), now)


def _inside(ids: list[int]):
    return Enrollment.objects.filter(journey_id__in=ids, state__in=INSIDE).order_by()


# Each customer's journeys deduplicated by hashing (no sort), then as an array when there
# are two or more; the pairs are unnested from those arrays only.
_POSTGRES = """
    WITH inside AS (
        SELECT customer_id, journey_id FROM {table}
        WHERE journey_id = ANY(%(ids)s) AND state = ANY(%(states)s) GROUP BY customer_id, journey_id
    ), multi AS (
        SELECT array_agg(journey_id) AS js FROM inside GROUP BY customer_id HAVING COUNT(*) >= 2
    )
    (SELECT 0, LEAST(cardinality(js), {most}), 0, COUNT(*) FROM multi GROUP BY 2)
    UNION ALL
    (SELECT 1, a, b, COUNT(*) FROM multi, unnest(js) a, unnest(js) b
     WHERE a < b {focus} GROUP BY a, b ORDER BY 4 DESC, 2, 3 LIMIT {top})
"""


def _overlap_postgres(ids: list[int], journey_id: int | None) -> tuple[Counter, list[tuple[int, int, int]]]:
    focus = "AND (a = %(journey)s OR b = %(journey)s)" if journey_id else ""
    sql = _POSTGRES.format(table=connection.ops.quote_name(Enrollment._meta.db_table), most=MOST, focus=focus,
                           top=TOP_PAIRS)
    with transaction.atomic(), connection.cursor() as cursor:
        # Hashing every enrollment inside by customer needs more than the default 4 MB, or it
        # spills to disk (about three times slower with 400,000 enrollments).
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(sql, {"ids": ids, "states": list(INSIDE), "journey": journey_id})
        rows = cursor.fetchall()
    several = Counter({k: n for kind, k, _, n in rows if kind == 0})
    pairs = sorted(((a, b, n) for kind, a, b, n in rows if kind == 1), key=lambda p: (-p[2], p[0], p[1]))
    return several, pairs


def _overlap_portable(ids: list[int], journey_id: int | None) -> tuple[Counter, list[tuple[int, int, int]]]:
    """SQLite (the embedded default): the same numbers with a self-join."""
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
