"""The rollups rebuilt inside PostgreSQL: a few set-based statements instead of streaming
millions of ledger rows through Python (bench/dashboards.py rebuilds 5 million)."""

from __future__ import annotations

from django.db import connection

from channels_app.models import Message
from orchestrator.dashboards.models import BounceCount, CustomerDay, MixCount, PressureBucket


def _tables() -> dict[str, str]:
    qn = connection.ops.quote_name
    return {
        "message": qn(Message._meta.db_table),
        "day": qn(CustomerDay._meta.db_table),
        "bucket": qn(PressureBucket._meta.db_table),
        "mix": qn(MixCount._meta.db_table),
        "bounce": qn(BounceCount._meta.db_table),
    }


# Counted messages with their UTC day and week; each histogram scope is one grouping set.
_COUNTED = """
    CREATE TEMP TABLE dash_counted ON COMMIT DROP AS
    SELECT customer_id, (queued_at AT TIME ZONE 'UTC')::date AS day, channel, category,
           COALESCE(journey_id, 0) AS journey_id
    FROM {message} WHERE status = ANY(%s)
"""
_PER_CUSTOMER = """
    SELECT span, start, COALESCE(channel, '') AS channel, COALESCE(category, '') AS category, n
    FROM (
        SELECT 'd' AS span, day AS start, channel, category, customer_id, COUNT(*) AS n FROM dash_counted
        GROUP BY GROUPING SETS ((day, channel, category, customer_id), (day, channel, customer_id),
                                (day, category, customer_id), (day, customer_id))
        UNION ALL
        SELECT 'w', date_trunc('week', day)::date, channel, category, customer_id, COUNT(*) FROM dash_counted
        GROUP BY GROUPING SETS ((date_trunc('week', day)::date, channel, category, customer_id),
                                (date_trunc('week', day)::date, channel, customer_id),
                                (date_trunc('week', day)::date, category, customer_id),
                                (date_trunc('week', day)::date, customer_id))
    ) AS per_customer
"""


def rebuild_in_database() -> None:
    """Inside the caller's transaction: the ledger is share-locked (moves wait) meanwhile."""
    from orchestrator.dashboards.rollups import COUNTED

    t = _tables()
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {t['message']} IN SHARE MODE")
        cursor.execute("SET LOCAL work_mem = '256MB'")  # the grouping sets hash in memory, not on disk
        cursor.execute(f"TRUNCATE {t['day']}, {t['bucket']}, {t['mix']}, {t['bounce']}")
        cursor.execute("DROP TABLE IF EXISTS dash_counted")  # a second rebuild in one transaction
        cursor.execute(_COUNTED.format(**t), [sorted(COUNTED)])
        cursor.execute(
            f"INSERT INTO {t['day']} (customer_id, day, count)"
            " SELECT customer_id, day, COUNT(*) FROM dash_counted GROUP BY customer_id, day"
        )
        cursor.execute(
            f"INSERT INTO {t['mix']} (day, channel, category, journey_id, count)"
            " SELECT day, channel, category, journey_id, COUNT(*) FROM dash_counted"
            " GROUP BY day, channel, category, journey_id"
        )
        cursor.execute(
            f"INSERT INTO {t['bucket']} (span, start, channel, category, messages, customers)"
            f" SELECT span, start, channel, category, n, COUNT(*) FROM ({_PER_CUSTOMER}) AS c"
            " GROUP BY span, start, channel, category, n"
        )
        cursor.execute(
            f"INSERT INTO {t['bounce']} (day, channel, category, count)"
            f" SELECT (queued_at AT TIME ZONE 'UTC')::date, channel, category, COUNT(*) FROM {t['message']}"
            " WHERE status = 'bounced' GROUP BY 1, 2, 3"
        )
        cursor.execute("DROP TABLE dash_counted")
        for table in (t["day"], t["bucket"], t["mix"], t["bounce"]):
            cursor.execute(f"ANALYZE {table}")
