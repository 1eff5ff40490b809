"""The engine's django-q2 tasks: thin, taking ids, idempotent (CONVENTIONS 7).

- ``tick``: the poller. Started every minute by a schedule as a safety net; a lease keeps
  it to one poller, which runs due steps as they fall due (sub-second, not per cron
  minute), sweeps stranded messages, and re-enqueues itself before it ends so there is
  no gap between pollers. When a batch comes back full it asks idle workers to help.
- ``drain``: runs due steps until none are left (a helper for backlogs).
- ``process_events``: what ingestion enqueues for events journeys listen for.
- ``enrol_segment_task`` / ``enrol_segments``: segment entry at launch and every minute.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from channels_app.delivery import recover_stranded
from journeys.models import Journey, JourneyStatus
from orchestrator.engine import lease
from orchestrator.engine.entry import enrol_segment
from orchestrator.engine.events import handle_events
from orchestrator.engine.runner import RunStats, run_due

log = logging.getLogger(__name__)

TICK_SECONDS = 50
DRAIN_SECONDS = 50  # both well under Q_TIMEOUT (120 s): a task killed mid-run re-enqueues nothing
POLL_SECONDS = 0.5
SWEEP_EVERY_SECONDS = 15
LEASE_TTL = timedelta(seconds=TICK_SECONDS + 30)


def tick(holder: str | None = None) -> str:
    holder = holder or uuid.uuid4().hex
    if not lease.acquire("engine-tick", holder, now=timezone.now(), ttl=LEASE_TTL):
        return "another poller holds the lease"
    deadline = time.monotonic() + TICK_SECONDS
    last_sweep = 0.0
    steps = 0
    while time.monotonic() < deadline:
        stats = _one_batch()
        steps += stats.steps
        if stats.enrollments >= settings.CHORUS_ENGINE_BATCH_SIZE:
            _ask_for_help()
        if time.monotonic() - last_sweep > SWEEP_EVERY_SECONDS:
            _sweep()
            lease.acquire("engine-tick", holder, now=timezone.now(), ttl=LEASE_TTL)
            last_sweep = time.monotonic()
        if stats.enrollments == 0:
            time.sleep(POLL_SECONDS)
    _enqueue("orchestrator.engine.tasks.tick", holder)
    return f"{steps} steps"


def _one_batch() -> RunStats:
    """One claim; a database error (a deadlock victim, a dropped connection) is logged and
    the poller goes on: its batch rolled back and will be claimed again."""
    try:
        return run_due(max_batches=1)
    except DatabaseError:
        log.exception("engine batch failed; continuing")
        connection.close()
        time.sleep(POLL_SECONDS)
        return RunStats()


def _sweep() -> None:
    try:
        recover_stranded()
    except DatabaseError:
        log.exception("sweeping stranded messages failed; continuing")
        connection.close()


def _ask_for_help() -> None:
    """A drain per idle worker, each slot under its own lease so helpers never pile up."""
    workers = settings.Q_CLUSTER.get("workers", 1)
    for slot in range(max(workers - 1, 0)):
        holder = uuid.uuid4().hex
        if lease.acquire(f"engine-drain-{slot}", holder, now=timezone.now(), ttl=_DRAIN_LEASE):
            _enqueue("orchestrator.engine.tasks.drain", slot, holder)


_DRAIN_LEASE = timedelta(seconds=DRAIN_SECONDS + 30)


def drain(slot: int | None = None, holder: str | None = None) -> str:
    """Run due batches until none are left or DRAIN_SECONDS pass; then hand the slot back
    (or, with work left, to its own next run)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    steps, more = 0, True
    while more and time.monotonic() < deadline:
        stats = _one_batch()
        steps += stats.steps
        more = stats.enrollments >= settings.CHORUS_ENGINE_BATCH_SIZE
    if slot is not None and holder is not None:
        if more and lease.acquire(f"engine-drain-{slot}", holder, now=timezone.now(), ttl=_DRAIN_LEASE):
            _enqueue("orchestrator.engine.tasks.drain", slot, holder)
        else:
            lease.release(f"engine-drain-{slot}", holder)
    return f"{steps} steps"


def process_events(event_ids: list[int]) -> str:
    stats = handle_events(event_ids)
    return f"{len(event_ids)} events, {stats.steps} steps"


def enrol_segment_task(journey_id: int) -> str:
    journey = Journey.objects.select_related("live_version").filter(pk=journey_id).first()
    if journey is None:
        return "journey is gone"
    return f"{enrol_segment(journey, now=timezone.now())} entered"


def enrol_segments() -> str:
    """Every live segment-entry journey, each on its own: one broken segment definition
    must not keep the others' newly qualifying customers out."""
    entered, failed = 0, []
    for journey in Journey.objects.filter(status=JourneyStatus.LIVE).select_related("live_version"):
        try:
            entered += enrol_segment(journey, now=timezone.now())
        except Exception:
            log.exception("segment entry failed for journey %s", journey.pk)
            failed.append(journey.pk)
    return f"{entered} entered" + (f"; failed for journeys {failed}" if failed else "")


def _enqueue(func: str, *args) -> None:
    from django_q.tasks import async_task

    async_task(func, *args, task_name=f"{func.rsplit('.', 1)[-1]}-{uuid.uuid4().hex[:8]}")
