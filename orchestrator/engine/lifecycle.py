"""Authoring changes composed with what the engine must do about them.

journeys.services knows nothing of enrollments (journeys must not import orchestrator), so
the API and the canvas call these instead of the bare services when a change reaches
people: a segment-entry journey going live enters the segment's members, and stopping a
journey exits everyone still inside.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django_q.tasks import async_task

from journeys.models import Journey, JourneyStatus, JourneyVersion
from journeys.services import (
    JourneyAction,
    JourneyInput,
    do_import_journey,
    do_publish_journey,
    do_set_journey_status,
    do_update_journey,
    is_segment_entry,
)
from orchestrator import engine
from orchestrator.engine.events import forget_listened_names
from orchestrator.engine.models import ExitReason

ENROL_SEGMENT_TASK = "orchestrator.engine.tasks.enrol_segment_task"


def publish(journey: Journey, user, now: datetime | None = None) -> JourneyVersion:
    """Publish the draft; a segment-entry journey going live enqueues the entry of its members."""
    with transaction.atomic():
        # Read under the lock the service takes too, so "went live" cannot race a second publish.
        was = Journey.objects.select_for_update().values_list("status", flat=True).get(pk=journey.pk)
        version = do_publish_journey(journey, user, now=now)
        if was == JourneyStatus.DRAFT and is_segment_entry(version.graph):
            # Enqueued inside the transaction on purpose: the ORM broker's queue row commits
            # with the publish, so a rolled-back publish never enrols and a committed one
            # cannot lose its task.
            async_task(ENROL_SEGMENT_TASK, journey.pk)
        _listen_again()
    return version


def set_status(journey: Journey, action: JourneyAction | str, user, now: datetime | None = None) -> Journey:
    """Pause, resume, stop or archive; stopping also exits every enrollment still inside."""
    with transaction.atomic():
        journey = do_set_journey_status(journey, action, user)
        if journey.status == JourneyStatus.STOPPED:
            engine.exit_journey(journey.pk, ExitReason.STOPPED, now=now)
        _listen_again()
    return journey


def update(journey: Journey, data: JourneyInput, user) -> Journey:
    """Settings and draft changes; a new goal event changes what ingestion must report."""
    with transaction.atomic():
        journey = do_update_journey(journey, data, user)
        _listen_again()
    return journey


def import_document(document, user) -> Journey:
    with transaction.atomic():
        journey = do_import_journey(document, user)
        _listen_again()
    return journey


def _listen_again() -> None:
    """After commit, ingestion re-reads which event names live journeys listen for."""
    transaction.on_commit(forget_listened_names)
