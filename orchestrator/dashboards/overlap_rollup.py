"""The journey overlap rollup (``models.CustomerJourneys``): which live journeys each
customer inside two or more is in, as "3,8,12".

On PostgreSQL a trigger on the enrollments keeps it exact (migration
dashboards/0002_customer_journeys_rollup): after each insert, delete, or update that moves
an enrollment into or out of "exited" (or to another customer or journey), it recomputes
that customer's row from their enrollments under a per-customer advisory lock. A trigger
rather than a call from the engine because enrollments are written in many places (one
entry, bulk segment inserts in SQL, the runner's exits, stopping a journey, deletions
cascading from a customer or a journey) and every one of them must count. Its cost is one
indexed read of the customer's enrollments per entry or exit, none per ordinary step.

``rebuild_customer_journeys`` recounts it set-based (after a COPY with the trigger
disabled, as bench/dashboards.py does); ``recount`` is what tests compare it with.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import connection

from orchestrator.dashboards.models import CustomerJourneys
from orchestrator.engine.models import Enrollment, EnrollmentState

_REBUILD = """
    LOCK TABLE {enrollment} IN SHARE MODE;
    DELETE FROM {rollup};
    INSERT INTO {rollup} (customer_id, journeys)
    SELECT customer_id, string_agg(journey_id::text, ',' ORDER BY journey_id)
    FROM (SELECT DISTINCT customer_id, journey_id FROM {enrollment} WHERE state <> 'exited') AS inside
    GROUP BY customer_id HAVING COUNT(*) >= 2
"""


def stored() -> dict[int, str]:
    return dict(CustomerJourneys.objects.values_list("customer_id", "journeys"))


def recount() -> dict[int, str]:
    """The rollup recounted from the enrollments, in Python."""
    inside: defaultdict[int, set[int]] = defaultdict(set)
    for customer_id, journey_id in Enrollment.objects.exclude(state=EnrollmentState.EXITED).values_list(
        "customer_id", "journey_id"
    ).iterator(chunk_size=5000):
        inside[customer_id].add(journey_id)
    return {c: ",".join(str(j) for j in sorted(js)) for c, js in inside.items() if len(js) >= 2}


def rebuild_customer_journeys() -> None:
    """Replace the rollup with a recount, inside the caller's transaction (PostgreSQL only:
    elsewhere the panel reads the enrollments and nothing keeps the rollup)."""
    if connection.vendor != "postgresql":
        return
    qn = connection.ops.quote_name
    sql = _REBUILD.format(enrollment=qn(Enrollment._meta.db_table), rollup=qn(CustomerJourneys._meta.db_table))
    with connection.cursor() as cursor:
        for statement in filter(str.strip, sql.split(";")):
            cursor.execute(statement)
