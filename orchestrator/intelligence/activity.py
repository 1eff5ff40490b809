"""Activity profiles written in bulk: one INSERT … ON CONFLICT per batch of moments.

Every ingest request that carries sessions or purchases adds to some customers' 168
hour-of-week counts. Reading, locking and saving each row cost a handful of queries per
customer; here the batch is binned in Python (in each customer's zone) and added to the
stored counts in one statement on PostgreSQL: new rows are inserted, existing ones get
the increments added element by element under the row lock the upsert takes. Rows are
sent sorted by customer so concurrent batches lock them in one order.

Other databases (the embedded SQLite) read the rows in one query and write them back with
the ORM: the demo's scale, not the ingestion hot path.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping

from django.db import connection, transaction
from django.utils import timezone

from customers.models import ActivityProfile
from orchestrator.engine.timing import customer_zone
from orchestrator.intelligence.sendtime import HOURS_PER_WEEK, hour_of_week

Increments = dict[int, tuple[list[float], float]]  # customer → (168 counts to add, their total)

# The existing counts plus the new ones, element by element (a row with no counts yet, or
# counts of another length, takes the new ones as they are).
_UPSERT = """
INSERT INTO {table} (customer_id, counts, total, updated_at)
SELECT r.customer_id, r.counts, r.total, %s FROM jsonb_to_recordset(%s::jsonb)
    AS r(customer_id bigint, counts jsonb, total double precision)
ORDER BY r.customer_id
ON CONFLICT (customer_id) DO UPDATE SET
    counts = CASE WHEN jsonb_array_length(t.counts) = {hours} THEN (
        SELECT jsonb_agg(old.v::double precision + new.v::double precision ORDER BY old.i)
        FROM jsonb_array_elements_text(t.counts) WITH ORDINALITY AS old(v, i)
        JOIN jsonb_array_elements_text(EXCLUDED.counts) WITH ORDINALITY AS new(v, i) USING (i)
    ) ELSE EXCLUDED.counts END,
    total = t.total + EXCLUDED.total,
    updated_at = EXCLUDED.updated_at
"""


def increments(moments: Iterable[tuple[int, dt.datetime, str]]) -> Increments:
    """(customer, moment, the customer's IANA zone) binned per customer in local time."""
    binned: Increments = {}
    for customer_id, at, tz in moments:
        counts, total = binned.get(customer_id) or ([0.0] * HOURS_PER_WEEK, 0.0)
        counts[hour_of_week(at, customer_zone(tz))] += 1.0
        binned[customer_id] = (counts, total + 1.0)
    return binned


def add_activity(binned: Mapping[int, tuple[list[float], float]]) -> None:
    """Add each customer's increments to their stored profile (created when missing)."""
    if not binned:
        return
    if connection.vendor == "postgresql":
        _upsert(binned)
    else:
        _add_with_orm(binned)


def _upsert(binned: Mapping[int, tuple[list[float], float]]) -> None:
    table = f"{connection.ops.quote_name(ActivityProfile._meta.db_table)} AS t"
    rows = [{"customer_id": c, "counts": binned[c][0], "total": binned[c][1]} for c in sorted(binned)]
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT.format(table=table, hours=HOURS_PER_WEEK),
            [timezone.now(), json.dumps(rows, separators=(",", ":"))],
        )


@transaction.atomic
def _add_with_orm(binned: Mapping[int, tuple[list[float], float]]) -> None:
    locked = ActivityProfile.objects.select_for_update().filter(customer_id__in=list(binned))
    existing = {row.customer_id: row for row in locked}
    for customer_id in sorted(binned):
        counts, total = binned[customer_id]
        row = existing.get(customer_id) or ActivityProfile(customer_id=customer_id)
        if len(row.counts) == HOURS_PER_WEEK:
            counts = [float(old) + new for old, new in zip(row.counts, counts, strict=True)]
        row.counts, row.total = counts, row.total + total
        row.save()
