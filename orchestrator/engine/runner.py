"""Claiming due enrollments in batches and advancing each one as far as it can go.

A batch is one transaction: ``SELECT … FOR UPDATE SKIP LOCKED`` ordered by ``due_at``
claims up to N enrollments that no other worker holds, each is advanced node by node
until it sleeps (a delay or wait) or exits, and the step log, the enrollments and any
messages are written before the commit. A worker killed mid-batch rolls all of it back;
the next claim replays the same steps with the same step numbers, so a send's
idempotency key (``enrollment:<id>:step:<n>``) finds the message a committed run wrote
and never writes a second. Providers are called only after commit (see dispatch).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from customers.bulk_sql import update_by_pk
from customers.models import Customer, Segment
from journeys.graph import next_node_id, nodes_by_id
from journeys.models import Journey, JourneyStatus, JourneyVersion
from journeys.nodes import NodeKind
from orchestrator.dispatch import DispatchBatch
from orchestrator.engine.models import (
    Enrollment,
    EnrollmentState,
    EnrollmentStep,
    ExitReason,
    Phase,
    StepOutcome,
)
from orchestrator.engine.steps import RUNTIME, Step, Visit

log = logging.getLogger(__name__)

# A published graph has no cycle without a delay or wait, but a date-trait delay whose date
# is past takes no time: a visit that arrives at a node twice is stopped (see advance), so an
# enrollment blocks or exits within as many steps as the graph has nodes. This bound only
# guards against a bug.
MAX_STEPS_PER_VISIT = 200

_SPINNING = "a loop with no delay or wait that takes time"

_ENROLLMENT_FIELDS = [
    "state", "current_node", "phase", "due_at", "waiting_for", "wait_message_id",
    "context", "step_seq", "exited_at", "exit_reason", "updated_at",
]


@dataclass
class RunStats:
    enrollments: int = 0
    steps: int = 0
    messages: int = 0
    batches: int = 0

    def add(self, other: RunStats) -> None:
        self.enrollments += other.enrollments
        self.steps += other.steps
        self.messages += other.messages
        self.batches += other.batches


def run_due(*, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None) -> RunStats:
    """Advance everything due at ``now`` (default: the current time), batch after batch."""
    size = batch_size or settings.CHORUS_ENGINE_BATCH_SIZE
    total = RunStats()
    while max_batches is None or total.batches < max_batches:
        stats = run_batch(now=now or timezone.now(), batch_size=size)
        total.add(stats)
        if stats.enrollments < size:
            break
    return total


def advance(enrollment_ids: Iterable[int], *, now: datetime | None = None, live_only: bool = True) -> RunStats:
    """Advance these enrollments now if they are due (event wake-ups, new entries)."""
    ids = list(enrollment_ids)
    if not ids:
        return RunStats()
    return run_batch(now=now or timezone.now(), batch_size=len(ids), ids=ids, live_only=live_only)


def run_batch(*, now: datetime, batch_size: int, ids: list[int] | None = None, live_only: bool = True) -> RunStats:
    """One claim, one transaction. If any enrollment's step raises, the batch is rolled
    back and run again with each enrollment in its own savepoint, so the one that fails
    exits with the error on its step log and the rest go on: claims are in due order, and
    a failing enrollment left due would otherwise head, and sink, every batch after it."""
    try:
        return _run_batch(now, batch_size, ids, live_only, isolate=False)
    except (OperationalError, InterfaceError):
        raise  # the database, not a step: the next claim retries everything
    except Exception:
        log.exception("a journey step failed; retrying the batch one enrollment at a time")
        return _run_batch(now, batch_size, ids, live_only, isolate=True)


def _run_batch(now: datetime, batch_size: int, ids: list[int] | None, live_only: bool, *, isolate: bool) -> RunStats:
    with transaction.atomic():
        enrollments = _claim(now, batch_size, ids, live_only)
        if not enrollments:
            return RunStats()
        batch = _Batch(enrollments, now, careful=isolate)
        # In customer order: an update-profile step locks its customer's row, and two
        # workers that lock customers in one order cannot deadlock.
        # Within one customer, higher-priority journeys first: when they compete for the
        # last slot under a cap, the higher priority takes it.
        for enrollment in sorted(enrollments, key=lambda e: (e.customer_id, -batch.priority(e), e.pk)):
            if isolate:
                batch.advance_isolated(enrollment)
            else:
                batch.advance(enrollment)
        batch.write()
        return RunStats(enrollments=len(enrollments), steps=batch.steps_taken, messages=batch.messages, batches=1)


# Steps that fell due in the last few seconds are claimed before an older backlog, the
# most recently due first: a launch that enters 100,000 people at once must not make every
# timed step elsewhere (a 45-minute delay ending now, a 09:00 send) wait behind it, not
# even during the launch's own first seconds. The backlog drains with the capacity left
# over, oldest first; under overload a step waits at most FRESH before it joins it.
FRESH = timedelta(seconds=5)


def _claim(now: datetime, limit: int, ids: list[int] | None, live_only: bool) -> list[Enrollment]:
    qs = Enrollment.objects.filter(due_at__lte=now)
    if live_only:
        # A paused journey holds its people where they are: they are not claimed.
        qs = qs.filter(journey__status=JourneyStatus.LIVE)
    if ids is not None:
        return _locked(qs.filter(pk__in=ids), limit)
    claimed = _locked(qs.filter(due_at__gt=now - FRESH), limit, newest_first=True)
    if len(claimed) < limit:
        claimed += _locked(qs.filter(due_at__lte=now - FRESH), limit - len(claimed))
    return claimed


def _locked(qs: QuerySet[Enrollment], limit: int, *, newest_first: bool = False) -> list[Enrollment]:
    order = ("-due_at", "-id") if newest_first else ("due_at", "id")
    return list(qs.order_by(*order).select_for_update(skip_locked=True, of=("self",))[:limit])


class _Batch:
    """The enrollments of one claim, with what they read loaded once."""

    def __init__(self, enrollments: list[Enrollment], now: datetime, *, careful: bool = False):
        self.now = now
        self.steps: list[EnrollmentStep] = []
        self.steps_taken = 0
        self.messages = 0
        self.versions = JourneyVersion.objects.in_bulk({e.version_id for e in enrollments})
        self.journeys = Journey.objects.in_bulk({e.journey_id for e in enrollments})
        self.customers = Customer.objects.in_bulk({e.customer_id for e in enrollments})
        self.graphs = {pk: nodes_by_id(v.graph) for pk, v in self.versions.items()}
        self.segments = Segment.objects.in_bulk(_segment_ids(self.versions.values()))
        self.enrollments = enrollments
        self.sends = DispatchBatch(self.customers, now=now, careful=careful, enrollment_ids=[e.pk for e in enrollments])

    def priority(self, enrollment: Enrollment) -> int:
        return self.journeys[enrollment.journey_id].priority

    def advance(self, enrollment: Enrollment) -> None:
        version = self.versions[enrollment.version_id]
        nodes = self.graphs[version.pk]
        arrived: set[str] = set()
        for _ in range(MAX_STEPS_PER_VISIT):
            node = nodes.get(enrollment.current_node)
            if node is None:
                self._exit(enrollment, None, ExitReason.ERROR, f"node {enrollment.current_node!r} is not in version {version.number}")
                return
            if enrollment.phase == Phase.ARRIVE and node["id"] in arrived:
                # A loop went round without sleeping (a date-trait delay whose date is past
                # continues at once): going on would repeat its sends without end.
                self._exit(enrollment, node, ExitReason.ERROR, f"back at {node['id']} with no time passed: {_SPINNING}")
                return
            if enrollment.phase == Phase.ARRIVE:
                arrived.add(node["id"])
            step = self._run(enrollment, node)
            if not self._follow(enrollment, node, step, version):
                return
        enrollment.due_at = self.now  # pragma: no cover - see MAX_STEPS_PER_VISIT

    def advance_isolated(self, enrollment: Enrollment) -> None:
        """advance() in a savepoint: a step that raises rolls back only this enrollment's
        work (its messages included), which then exits with the error logged."""
        logged = len(self.steps)
        try:
            with transaction.atomic():
                self.advance(enrollment)
        except (OperationalError, InterfaceError):
            raise
        except Exception as error:
            log.exception("enrollment %s failed at %s", enrollment.pk, enrollment.current_node)
            failed_at = enrollment.current_node
            del self.steps[logged:]
            enrollment.refresh_from_db()
            # The steps before the failure rolled back with it; the exit names where it failed.
            enrollment.current_node = failed_at
            node = self.graphs[enrollment.version_id].get(failed_at)
            self._exit(enrollment, node, ExitReason.ERROR, f"step failed: {type(error).__name__}: {error}")

    def _run(self, enrollment: Enrollment, node: dict) -> Step:
        arrive, resume = RUNTIME[NodeKind(node["kind"])]
        visit = Visit(
            enrollment=enrollment, node=node, customer=self.customers[enrollment.customer_id],
            journey=self.journeys[enrollment.journey_id], now=self.now, segments=self.segments, sends=self.sends,
        )
        step = arrive(visit) if enrollment.phase == Phase.ARRIVE else resume(visit)
        self.steps_taken += 1
        if step.log:
            self._log(enrollment, node, step)
        if step.outcome == StepOutcome.SENT:
            self.messages += 1
        return step

    def _follow(self, enrollment: Enrollment, node: dict, step: Step, version: JourneyVersion) -> bool:
        """Apply a step's result; True when the enrollment moves on to another node."""
        if step.exit_reason:
            self._finish(enrollment, step.exit_reason)
            return False
        if step.retry_at is not None:
            # The same node again later (a deferred send): arriving anew, with a new step number.
            enrollment.phase, enrollment.state, enrollment.due_at = Phase.ARRIVE, EnrollmentState.ACTIVE, step.retry_at
            return False
        if step.sleep_until is not None:
            enrollment.phase = Phase.RESUME
            enrollment.due_at = step.sleep_until
            enrollment.state = EnrollmentState.WAITING if step.waiting else EnrollmentState.ACTIVE
            return False
        target = next_node_id(version.graph, node["id"], step.port or "out")
        if target is None:
            self._exit(enrollment, node, ExitReason.COMPLETED, f"end of path after {step.port or 'out'}")
            return False
        enrollment.current_node, enrollment.phase = target, Phase.ARRIVE
        enrollment.state, enrollment.due_at = EnrollmentState.ACTIVE, self.now
        return True

    def _log(self, enrollment: Enrollment, node: dict | None, step: Step) -> None:
        enrollment.step_seq += 1
        row = EnrollmentStep(
            enrollment_id=enrollment.pk, journey_id=enrollment.journey_id, version_id=enrollment.version_id,
            node_id=node["id"] if node else enrollment.current_node, kind=node["kind"] if node else "",
            outcome=step.outcome, port=step.port or "", detail=step.detail[:500], at=self.now,
        )
        if step.sent is not None:
            step.sent.fill(row, "message_id")
        self.steps.append(row)

    def _exit(self, enrollment: Enrollment, node: dict | None, reason: str, detail: str) -> None:
        self._log(enrollment, node, Step(StepOutcome.EXITED, detail=detail))
        self._finish(enrollment, reason)

    def _finish(self, enrollment: Enrollment, reason: str) -> None:
        finish(enrollment, reason, self.now)

    def write(self) -> None:
        # Messages first: their ids fill the steps and the enrollments' contexts.
        self.sends.flush()
        EnrollmentStep.objects.bulk_create(self.steps)
        for enrollment in self.enrollments:
            enrollment.updated_at = self.now
        # One UPDATE … FROM jsonb_to_recordset on PostgreSQL: bulk_update's CASE per field
        # grows with the batch and cost more than the rest of the batch together.
        update_by_pk(Enrollment, [{"pk": e.pk, **{f: getattr(e, f) for f in _ENROLLMENT_FIELDS}} for e in self.enrollments])


def finish(enrollment: Enrollment, reason: str, now: datetime) -> None:
    """Mark an enrollment exited (in memory; the caller saves it)."""
    enrollment.state = EnrollmentState.EXITED
    enrollment.exit_reason = reason
    enrollment.exited_at = now
    enrollment.due_at = None
    enrollment.waiting_for, enrollment.wait_message_id = "", None


def _segment_ids(versions: Iterable[JourneyVersion]) -> set[int]:
    ids: set[int] = set()
    for version in versions:
        for node in version.graph.get("nodes", []):
            if node.get("kind") == NodeKind.SPLIT:
                for branch in (node.get("config") or {}).get("branches", []):
                    condition = branch.get("condition") or {}
                    if isinstance(condition.get("segment_id"), int):
                        ids.add(condition["segment_id"])
    return ids
