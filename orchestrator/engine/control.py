"""Operator actions on people inside journeys: stop (exit everyone) and the API trigger."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from customers.models import Customer
from journeys.graph import entry_node
from journeys.models import Journey
from orchestrator.engine.entry import EntryResult, enrol
from orchestrator.engine.models import (
    Enrollment,
    EnrollmentState,
    EnrollmentStep,
    ExitReason,
    StepOutcome,
)
from orchestrator.engine.runner import advance, finish

_CHUNK = 2000


def exit_journey(journey_id: int, reason: str = ExitReason.STOPPED, *, now: datetime | None = None) -> int:
    """Exit every enrollment still inside the journey, logging each exit. Returns how many."""
    now = now or timezone.now()
    exited = 0
    with transaction.atomic():
        inside = Enrollment.objects.filter(journey_id=journey_id).exclude(state=EnrollmentState.EXITED)
        for chunk in _chunks(inside.select_for_update().order_by("id")):
            for enrollment in chunk:
                enrollment.step_seq += 1
                enrollment.updated_at = now
                finish(enrollment, reason, now)
            EnrollmentStep.objects.bulk_create(_exit_step(e, reason, now) for e in chunk)
            Enrollment.objects.bulk_update(
                chunk, ["state", "exit_reason", "exited_at", "due_at", "waiting_for", "wait_message_id", "step_seq", "updated_at"]
            )
            exited += len(chunk)
    return exited


def _chunks(queryset):
    chunk: list[Enrollment] = []
    for enrollment in queryset.iterator(chunk_size=_CHUNK):
        chunk.append(enrollment)
        if len(chunk) == _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _exit_step(enrollment: Enrollment, reason: str, now: datetime) -> EnrollmentStep:
    return EnrollmentStep(
        enrollment_id=enrollment.pk, journey_id=enrollment.journey_id, version_id=enrollment.version_id,
        node_id=enrollment.current_node, kind="", outcome=StepOutcome.EXITED,
        detail=f"journey {reason}", at=now,
    )


class NotApiTriggered(ValueError):
    """The journey's entry is not an API trigger."""


def trigger(journey: Journey, customer: Customer, *, properties: dict, key: str, now: datetime | None = None) -> EntryResult:
    """POST /api/v1/journeys/{id}/trigger: enter one customer, then take their first steps.

    ``key`` (the request's messageId, or a fresh id) makes a retried request a no-op."""
    now = now or timezone.now()
    if journey.live_version_id is None:
        return EntryResult(False, None, f"journey is {journey.status}")
    config = (entry_node(journey.live_version.graph) or {}).get("config") or {}
    if config.get("trigger") != "api":
        raise NotApiTriggered(f"journey {journey.pk} enters on {config.get('trigger') or 'nothing'}, not on the API")
    with transaction.atomic():
        result = enrol(journey, customer, trigger_key=f"api:{key}", context={"trigger": properties}, now=now)
    if result.entered:
        advance([result.enrollment_id], now=now)
    return result
