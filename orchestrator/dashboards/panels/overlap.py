"""Journey overlap: customers inside more than one live journey right now, and the pairs
of journeys that share the most customers. "Inside" = enrolled and not exited (holdouts
included: they walk the journey too). The period and channel filters do not apply; the
journey filter keeps the pairs that include it, the category filter journeys of it.

It reads the live enrollments themselves, no rollup: one index-only pass over
enrollment_inside_idx (customer, journey; only the enrollments inside) folds each
customer's live journeys into a bit mask, and the database counts customers per mask.
There are few masks (the combinations people are actually in: about 2,300 on the bench's
400,000 enrollments in 12 journeys), and the pairs and the "in several" counts are read
off them here: 140 ms on the bench, where a self-join on the customer took a second.
(A rollup kept by a trigger on the enrollments was tried before and removed: its
per-customer lock, taken while the engine holds customer rows, deadlocked segment entry
against the workers.)"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.urls import reverse

from customers.models import Customer
from journeys.models import Journey, JourneyStatus, JourneyVersion
from orchestrator.dashboards.filters import Filters
from orchestrator.dashboards.panels.base import Chart, Figure, Link, PanelInfo, Series, as_of
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
    pair_ids: tuple[tuple[int, int], ...] = ()  # the pairs' journey ids, in the same order

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
            Figure("pairs", "Journeys that collide most", ("journey", "journey", "customers in both"),
                   tuple((a, b, Link(f"{n:,}", reverse("dashboards:overlap", args=ids)))
                         for (a, b, n), ids in zip(self.pairs, self.pair_ids, strict=True)),
                   Chart("bar", tuple(f"{a} + {b}" for a, b, _ in self.pairs),
                         (Series("customers in both", tuple(n for *_, n in self.pairs)),), horizontal=True,
                         y_title="customers", links=tuple(reverse("dashboards:overlap", args=ids) for ids in self.pair_ids)),
                   empty="No two live journeys share a customer.",
                   note="Click a bar (or a count in the table) for the customers inside both journeys now."),
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
    return Overlap(in_several, tuple((names[a], names[b], n) for a, b, n in pairs), now, tuple((a, b) for a, b, _ in pairs))


def node_labels(customers: list[Customer]) -> None:
    """Each customer's ``first_at`` and ``second_at``: the name on the canvas of the node
    they are at in each journey (its id when it has none), from those versions' graphs."""
    versions = {c.first_version for c in customers} | {c.second_version for c in customers}
    labels = {
        (pk, node["id"]): node.get("label") or node["id"]
        for pk, graph in JourneyVersion.objects.filter(pk__in=versions).values_list("pk", "graph")
        for node in graph.get("nodes", [])
    }
    for c in customers:
        c.first_at = labels.get((c.first_version, c.first_node), c.first_node)
        c.second_at = labels.get((c.second_version, c.second_node), c.second_node)


def inside_both(first: int, second: int) -> QuerySet[Customer]:
    """The customers inside both journeys now, with where they are in each (the node they
    are at or waiting on, and when they entered), latest entry into the first first."""
    inside = Enrollment.objects.filter(state__in=INSIDE, customer=OuterRef("pk")).order_by("-entered_at")
    where = {}
    for prefix, journey_id in (("first", first), ("second", second)):
        mine = inside.filter(journey_id=journey_id)
        where[f"{prefix}_node"] = Subquery(mine.values("current_node")[:1])
        where[f"{prefix}_version"] = Subquery(mine.values("version_id")[:1])
        where[f"{prefix}_entered"] = Subquery(mine.values("entered_at")[:1])
    return (
        Customer.objects.filter(Exists(inside.filter(journey_id=first)), Exists(inside.filter(journey_id=second)))
        .annotate(**where).order_by("-first_entered", "pk")
    )


MASK_BITS = 63  # bits per mask column: a bigint, sign bit left alone


def _overlap(ids: list[int], journey_id: int | None) -> tuple[Counter, list[tuple[int, int, int]]]:
    """Customers inside several of these journeys, and the pairs that share most."""
    several: Counter = Counter()
    shared: Counter = Counter()
    for combination, customers in _combinations(ids):
        if len(combination) < 2:
            continue
        several[min(len(combination), MOST)] += customers
        for pair in itertools.combinations(combination, 2):
            if journey_id is None or journey_id in pair:
                shared[pair] += customers
    pairs = sorted(((a, b, n) for (a, b), n in shared.items()), key=lambda p: (-p[2], p[0], p[1]))
    return several, pairs[:TOP_PAIRS]


def _combinations(ids: list[int]) -> list[tuple[tuple[int, ...], int]]:
    """(the live journeys a customer is inside, sorted; how many customers are inside
    exactly those), one row per combination that occurs. Each journey is a bit, its
    place in ``ids``, spread over as many bigint masks as ``ids`` needs."""
    table = connection.ops.quote_name(Enrollment._meta.db_table)
    # SQLite has no BIT_OR; the sum of the distinct bit values is the same mask.
    fold = "BIT_OR({})" if connection.vendor == "postgresql" else "SUM(DISTINCT {})"
    chunks = [ids[k:k + MASK_BITS] for k in range(0, len(ids), MASK_BITS)]
    masks = ", ".join(
        fold.format(
            "CAST(CASE journey_id "
            + " ".join(f"WHEN {int(pk)} THEN {1 << bit}" for bit, pk in enumerate(chunk))
            + " ELSE 0 END AS BIGINT)"
        ) + f" AS m{k}"
        for k, chunk in enumerate(chunks)
    )
    names = ", ".join(f"m{k}" for k in range(len(chunks)))
    marks = ", ".join(["%s"] * len(ids))
    states = ", ".join(["%s"] * len(INSIDE))
    sql = (
        f"SELECT {names}, COUNT(*) FROM ("
        f" SELECT {masks} FROM {table} WHERE state IN ({states}) AND journey_id IN ({marks}) GROUP BY customer_id"
        f") customers GROUP BY {names}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*INSIDE, *ids])
        rows = cursor.fetchall()
    return [(_members(ids, row[:-1]), row[-1]) for row in rows]


def _members(ids: list[int], masks: tuple[int, ...]) -> tuple[int, ...]:
    members = []
    for k, mask in enumerate(masks):
        while mask:
            low = mask & -mask
            members.append(ids[k * MASK_BITS + low.bit_length() - 1])
            mask ^= low
    return tuple(members)
