"""Who enters a journey: re-entry policy, entry limit, holdout, and set-based segment entry.

An enrollment starts at the entry node, due now; the runner takes its first steps. Its
``trigger_key`` is unique per (journey, customer): "once" for once-only journeys, so a
second entry cannot be inserted at all, and the event or API request id otherwise, so a
redelivered trigger never enters anyone twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from customers.models import Customer, Segment
from customers.segments import compile_segment
from journeys.graph import entry_node
from journeys.models import Journey, JourneyVersion, ReentryPolicy
from orchestrator.engine.models import Enrollment, EnrollmentState, Phase
from orchestrator.engine.steps import bucket


@dataclass(frozen=True)
class EntryResult:
    entered: bool
    enrollment_id: int | None
    reason: str


def in_holdout(journey: Journey, customer_id: int) -> bool:
    """Deterministic: the same customer is always in (or out of) a journey's control group.
    The SQL twin is ``_HOLDOUT_SQL``; a test keeps them equal."""
    return bucket(journey.pk, customer_id) < journey.holdout_percent * 100


def enrol(
    journey: Journey, customer: Customer, *, trigger_key: str, context: dict, now: datetime,
    entered_at: datetime | None = None,
) -> EntryResult:
    """Enter one customer, honouring status, re-entry, entry limit and holdout.

    ``entered_at`` is when the trigger happened (an event's time, not when a worker got to
    it), so a goal event that follows the trigger in the same batch still converts."""
    if not journey.accepts_entries:
        return EntryResult(False, None, f"journey is {journey.status}")
    # Serialises entry decisions for this customer: two triggers at once cannot both pass
    # the cool-down check.
    Customer.objects.select_for_update().filter(pk=customer.pk).values_list("pk").first()
    refusal = _reentry_refusal(journey, customer, now)
    if refusal:
        return EntryResult(False, None, refusal)
    key = "once" if journey.reentry == ReentryPolicy.ONCE else trigger_key
    try:
        with transaction.atomic():
            if not _take_entry_slot(journey):
                return EntryResult(False, None, "entry limit reached")
            row = new_enrollment(journey, customer.pk, key, context, now)
            enrollment = Enrollment.objects.create(**{**row, "entered_at": entered_at or now})
    except IntegrityError:
        return EntryResult(False, None, "already entered" if key == "once" else "trigger already handled")
    return EntryResult(True, enrollment.pk, "entered")


def _reentry_refusal(journey: Journey, customer: Customer, now: datetime) -> str:
    if journey.reentry != ReentryPolicy.COOLDOWN:
        return ""
    last = (
        Enrollment.objects.filter(journey=journey, customer=customer)
        .order_by("-entered_at")
        .values("entered_at", "state")
        .first()
    )
    if last is None:
        return ""
    if last["state"] != EnrollmentState.EXITED:
        return "already in the journey"
    if last["entered_at"] > now - timedelta(seconds=journey.reentry_cooldown_seconds):
        return "in cool-down since the last entry"
    return ""


def _take_entry_slot(journey: Journey, count: int = 1) -> bool:
    """The entry limit is a counter in the database, taken with a conditional UPDATE.

    Only journeys with a limit count: incrementing a shared row on every entry would
    serialise all entries into a journey on one row lock."""
    if journey.entry_limit is None:
        return True
    return bool(
        Journey.objects.filter(pk=journey.pk, entered_count__lte=journey.entry_limit - count).update(
            entered_count=F("entered_count") + count
        )
    )


def new_enrollment(
    journey: Journey, customer_id: int, key: str, context: dict, now: datetime, version: JourneyVersion | None = None
) -> dict:
    version = version or journey.live_version
    entry = entry_node(version.graph)
    return {
        "journey_id": journey.pk,
        "version_id": version.pk,
        "customer_id": customer_id,
        "state": EnrollmentState.ACTIVE,
        "current_node": entry["id"],
        "phase": Phase.ARRIVE,
        "due_at": now,
        "context": context,
        "holdout": in_holdout(journey, customer_id),
        "trigger_key": key,
        "entered_at": now,
    }


# --- Segment entry -----------------------------------------------------------------------

_HOLDOUT_SQL = "((('x' || substr(md5(%s || ':' || c.id::text), 1, 8))::bit(32)::bigint %% 10000) < %s)"


def enrol_segment(journey: Journey, *, now: datetime) -> int:
    """Enter every member of the entry segment not yet entered: one INSERT … SELECT.

    Run when the journey goes live and every minute after, so customers who newly qualify
    enter. Once-only journeys skip anyone ever entered; cool-down journeys skip anyone
    inside or entered within the cool-down."""
    entry = entry_node(journey.live_version.graph) if journey.live_version_id else None
    if not journey.accepts_entries or not entry or (entry.get("config") or {}).get("trigger") != "segment":
        return 0
    segment = Segment.objects.filter(pk=entry["config"].get("segment_id")).first()
    if segment is None:
        return 0
    members = compile_segment(segment.definition, now=now).exclude(pk__in=_not_eligible(journey, now))
    with transaction.atomic():
        members = members.order_by("id").values("id")
        limit = _remaining_slots(journey)
        if limit == 0:
            return 0
        if limit is not None:
            members = members[:limit]
        if connection.vendor == "postgresql":
            inserted = _insert_members_sql(journey, entry["id"], members, now)
        else:
            inserted = _insert_members_orm(journey, entry["id"], members, now)
        return inserted


def _not_eligible(journey: Journey, now: datetime):
    entered = Enrollment.objects.filter(journey=journey)
    if journey.reentry == ReentryPolicy.COOLDOWN:
        cutoff = now - timedelta(seconds=journey.reentry_cooldown_seconds)
        entered = entered.exclude(state=EnrollmentState.EXITED, entered_at__lte=cutoff)
    return entered.values("customer_id")


def _segment_key(journey: Journey, now: datetime) -> str:
    return "once" if journey.reentry == ReentryPolicy.ONCE else f"segment:{now.isoformat()}"


def _insert_members_sql(journey: Journey, entry_id: str, members, now: datetime) -> int:
    member_sql, member_params = members.query.sql_with_params()
    sql = (
        "INSERT INTO orchestrator_enrollment (journey_id, version_id, customer_id, state, current_node, phase,"
        " due_at, waiting_for, context, holdout, trigger_key, step_seq, entered_at, exit_reason,"
        " touch_sequence, updated_at)"
        f" SELECT %s, %s, c.id, %s, %s, %s, %s, '', '{{}}'::jsonb, {_HOLDOUT_SQL}, %s, 0, %s, '', '[]'::jsonb, %s"
        f" FROM ({member_sql}) AS c"
        " ON CONFLICT (journey_id, customer_id, trigger_key) DO NOTHING"
    )
    params = [
        journey.pk, journey.live_version_id, EnrollmentState.ACTIVE, entry_id, Phase.ARRIVE, now,
        str(journey.pk), journey.holdout_percent * 100, _segment_key(journey, now), now, now,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params + list(member_params))
        inserted = cursor.rowcount
    _count_entries(journey, inserted)
    return inserted


def _remaining_slots(journey: Journey) -> int | None:
    if journey.entry_limit is None:
        return None
    current = Journey.objects.select_for_update().values_list("entered_count", flat=True).get(pk=journey.pk)
    return max(journey.entry_limit - current, 0)


def _count_entries(journey: Journey, inserted: int) -> None:
    if journey.entry_limit is not None and inserted:
        Journey.objects.filter(pk=journey.pk).update(entered_count=F("entered_count") + inserted)


def _insert_members_orm(journey: Journey, entry_id: str, members, now: datetime) -> int:
    """The embedded (SQLite) path: the same rows, built in Python in chunks."""
    ids = [row["id"] for row in members]
    key = _segment_key(journey, now)
    before = Enrollment.objects.filter(journey=journey).count()
    rows = [Enrollment(**new_enrollment(journey, cid, key, {}, now)) for cid in ids]
    Enrollment.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    inserted = Enrollment.objects.filter(journey=journey).count() - before
    _count_entries(journey, inserted)
    return inserted
