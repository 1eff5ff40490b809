"""Events drive the engine: entries, wake-ups of waiting enrollments, and conversions.

Ingestion calls ``on_events_stored`` inside its transaction. When a stored event's name is
one that a live or paused journey listens for, the event ids are handed to a django-q2
task (on the ORM broker the task commits with the events, so none is lost between them)
or, with CHORUS_ENGINE_INLINE, handled at once. ``handle_events`` records conversions,
wakes waits and enters customers in one transaction, then advances the enrollments it
touched in another, straight away rather than at the poller's next pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import groupby

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from channels_app.ledger import IllegalTransition, do_transition_message
from channels_app.models import Message, MessageStatus
from customers.hooks import StoredEvents
from customers.models import Customer, Event
from journeys.filters import matches
from journeys.graph import entry_node
from journeys.models import Journey, JourneyStatus, JourneyVersion
from orchestrator.engine.entry import enrol
from orchestrator.engine.models import (
    Enrollment,
    EnrollmentState,
    EnrollmentStep,
    ExitReason,
    StepOutcome,
)
from orchestrator.engine.runner import RunStats, advance, finish

LISTENING = (JourneyStatus.LIVE, JourneyStatus.PAUSED)
# An event this much older than its processing does not enter anyone: a backfill of
# last year's history must not start this week's journeys.
MAX_ENTRY_EVENT_AGE = timedelta(days=1)


_NAMES_KEY = "chorus:engine:listened-names"
# Cached so ingestion's hot path costs no query; publishing or changing a journey's status
# forgets the entry at once (across processes with the Redis cache), the TTL bounds it.
_NAMES_TTL_SECONDS = 5


def listened_names() -> frozenset[str]:
    """Event names that any live or paused journey listens for (entry, waits, goal)."""
    names = cache.get(_NAMES_KEY)
    if names is None:
        names = set()
        for row in Journey.objects.filter(status__in=LISTENING).values_list("event_names", flat=True):
            names.update(row or [])
        names = frozenset(names)
        cache.set(_NAMES_KEY, names, _NAMES_TTL_SECONDS)
    return names


def forget_listened_names() -> None:
    cache.delete(_NAMES_KEY)


def on_events_stored(batch: StoredEvents) -> None:
    """The ingestion listener (settings.CHORUS_EVENT_LISTENERS)."""
    names = batch.names & listened_names()
    if not names:
        return
    ids = list(
        Event.objects.filter(
            source=batch.source, received_at=batch.received_at,
            customer_id__in=batch.customer_ids, name__in=names,
        ).values_list("id", flat=True)
    )
    if not ids:
        return
    if settings.CHORUS_ENGINE_INLINE:
        handle_events(ids)
    else:
        from django_q.tasks import async_task

        async_task("orchestrator.engine.tasks.process_events", ids, task_name="chorus-events")


def handle_events(event_ids: Iterable[int], *, now: datetime | None = None, only_enrollments: set[int] | None = None) -> RunStats:
    """Apply events to journeys, then advance what they touched.

    Each customer's events are one transaction, in event-time order. It first locks that
    customer's open enrollments (id order), then — to enter — the customer row: the same
    order as the runner (enrollment, then customer for an update-profile step), so the
    two can never deadlock, and no transaction ever holds two customers' rows.

    ``only_enrollments`` (the simulator) limits wake-ups and conversions to those
    enrollments, whatever their journey's status, and enters no one."""
    now = now or timezone.now()
    events = list(Event.objects.filter(pk__in=list(event_ids)).order_by("customer_id", "occurred_at", "id"))
    journeys = _journeys(only_enrollments)
    touched: set[int] = set()
    for customer_id, group in groupby(events, key=lambda e: e.customer_id):
        with transaction.atomic():
            _lock_open_enrollments(customer_id)
            for event in group:
                touched |= _convert(event, journeys, now, only_enrollments)
                touched |= _wake(event, now, only_enrollments)
                if only_enrollments is None:
                    touched |= _enter(event, journeys, now)
    return advance(touched, now=now, live_only=only_enrollments is None)


def _journeys(only_enrollments: set[int] | None) -> list[Journey]:
    journeys = Journey.objects.select_related("live_version")
    if only_enrollments is None:
        return list(journeys.filter(status__in=LISTENING))
    return list(journeys.filter(enrollments__in=only_enrollments).distinct())


def _lock_open_enrollments(customer_id: int) -> None:
    """Lock what events may change: enrollments still inside or not yet converted."""
    open_ = Q(converted_at__isnull=True) | ~Q(state=EnrollmentState.EXITED)
    list(Enrollment.objects.filter(open_, customer_id=customer_id).order_by("id").select_for_update().values_list("id"))


# --- entry -------------------------------------------------------------------------------


def _enter(event: Event, journeys: list[Journey], now: datetime) -> set[int]:
    if event.occurred_at < now - MAX_ENTRY_EVENT_AGE:
        return set()
    entered: set[int] = set()
    customer = None
    for journey in journeys:
        if not _enters_on(journey, event):
            continue
        customer = customer or Customer.objects.get(pk=event.customer_id)
        result = enrol(
            journey, customer, trigger_key=f"event:{event.pk}", context=entry_context(event), now=now,
            entered_at=min(event.occurred_at, now),
        )
        if result.entered:
            entered.add(result.enrollment_id)
    return entered


def _enters_on(journey: Journey, event: Event) -> bool:
    if not journey.accepts_entries:
        return False
    config = (entry_node(journey.live_version.graph) or {}).get("config") or {}
    return (
        config.get("trigger") == "event"
        and config.get("event") == event.name
        and matches(config.get("filters") or [], event.properties or {})
    )


def entry_context(event: Event) -> dict:
    return {"event": {"name": event.name, "properties": event.properties or {}}, "event_id": event.pk}


# --- waits -------------------------------------------------------------------------------


def _wake(event: Event, now: datetime, only: set[int] | None) -> set[int]:
    waiting = Enrollment.objects.filter(
        customer_id=event.customer_id, state=EnrollmentState.WAITING, waiting_for=event.name
    )
    if only is not None:
        waiting = waiting.filter(pk__in=only)
    woken: set[int] = set()
    for enrollment in waiting.select_for_update().order_by("id"):
        if _wait_matches(enrollment, event):
            _mark_happened(enrollment, f"{event.name} at {event.occurred_at:%Y-%m-%d %H:%M} UTC", now, event_id=event.pk)
            woken.add(enrollment.pk)
    return woken


def _wait_matches(enrollment: Enrollment, event: Event) -> bool:
    wait = (enrollment.context or {}).get("wait") or {}
    version = JourneyVersion.objects.only("graph").get(pk=enrollment.version_id)
    node = version.node(enrollment.current_node) or {}
    since = datetime.fromisoformat(wait["since"]) if wait.get("since") else enrollment.entered_at
    # due_at is the timeout while waiting: an event after it came too late, even if the
    # poller has not yet moved this enrollment down its timed-out branch.
    in_time = since <= event.occurred_at and (enrollment.due_at is None or event.occurred_at <= enrollment.due_at)
    return in_time and matches((node.get("config") or {}).get("filters") or [], event.properties or {})


def _mark_happened(enrollment: Enrollment, detail: str, now: datetime, **extra) -> None:
    wait = enrollment.context.setdefault("wait", {})
    wait.update({"outcome": "happened", "detail": detail, **extra})
    enrollment.due_at = now
    enrollment.save(update_fields=["context", "due_at", "updated_at"])


def on_message_engagement(message_id: int, *, now: datetime | None = None) -> RunStats:
    """A receipt says a message was opened or clicked: wake engagement waits on it.

    Called by whatever records the receipt (webhooks, the in-app inbox), after the
    message's status changed."""
    now = now or timezone.now()
    message = Message.objects.filter(pk=message_id).values("opened_at", "clicked_at").first()
    if message is None:
        return RunStats()
    woken = set()
    with transaction.atomic():
        waiting = Enrollment.objects.filter(wait_message_id=message_id, state=EnrollmentState.WAITING)
        for enrollment in waiting.select_for_update():
            version = JourneyVersion.objects.only("graph").get(pk=enrollment.version_id)
            wanted = ((version.node(enrollment.current_node) or {}).get("config") or {}).get("engagement")
            if message["clicked_at"] or (wanted == "opened" and message["opened_at"]):
                _mark_happened(enrollment, f"message {wanted}", now)
                woken.add(enrollment.pk)
    return advance(woken, now=now)


# --- conversions -------------------------------------------------------------------------


def _convert(event: Event, journeys: list[Journey], now: datetime, only: set[int] | None) -> set[int]:
    goals = {j.pk: j for j in journeys if j.goal_event == event.name and matches(j.goal_filters or [], event.properties or {})}
    if not goals:
        return set()
    candidates = Enrollment.objects.filter(
        customer_id=event.customer_id, journey_id__in=list(goals), converted_at__isnull=True,
        entered_at__lte=event.occurred_at,
    )
    if only is not None:
        candidates = candidates.filter(pk__in=only)
    converted: set[int] = set()
    for enrollment in candidates.select_for_update().order_by("id"):
        journey = goals[enrollment.journey_id]
        if enrollment.entered_at >= event.occurred_at - timedelta(seconds=journey.goal_window_seconds):
            record_conversion(enrollment, journey, event, now)
            converted.add(enrollment.pk)
    return converted


def record_conversion(enrollment: Enrollment, journey: Journey, event: Event, now: datetime) -> None:
    """Credit the goal event to this enrollment and the messages it sent before it."""
    touches = [t for t in enrollment.context.get("touches", []) if datetime.fromisoformat(t["at"]) <= event.occurred_at]
    enrollment.converted_at = event.occurred_at
    enrollment.conversion_value = _value(event.properties or {}, journey.goal_value_property)
    enrollment.conversion_event_id = event.pk
    enrollment.touch_sequence = touches
    detail = _conversion_detail(event, enrollment, touches)
    _log(enrollment, StepOutcome.CONVERTED, detail, now)
    _mark_messages_converted(touches, event.occurred_at)
    if journey.exit_on_conversion and enrollment.state != EnrollmentState.EXITED:
        _log(enrollment, StepOutcome.EXITED, "goal reached", now)
        finish(enrollment, ExitReason.CONVERTED, now)
    enrollment.save()


def _conversion_detail(event: Event, enrollment: Enrollment, touches: list[dict]) -> str:
    path = " → ".join(t["channel"] for t in touches) or "no message"
    value = f" worth {enrollment.conversion_value}" if enrollment.conversion_value is not None else ""
    return f"{event.name}{value} after {path}"


def _value(properties: dict, name: str) -> Decimal | None:
    raw = properties.get(name) if name else None
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        return Decimal(str(raw)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


_CONVERTIBLE = {MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.OPENED, MessageStatus.CLICKED}


def _mark_messages_converted(touches: list[dict], at: datetime) -> None:
    ids = [t["message_id"] for t in touches if t.get("message_id")]
    for message_id in Message.objects.filter(pk__in=ids, status__in=_CONVERTIBLE).values_list("pk", flat=True):
        try:
            do_transition_message(message_id, MessageStatus.CONVERTED, at=at, detail="journey goal reached")
        except IllegalTransition:  # moved on concurrently (e.g. bounced): keep its status
            pass


def _log(enrollment: Enrollment, outcome: str, detail: str, now: datetime) -> None:
    enrollment.step_seq += 1
    EnrollmentStep.objects.create(
        enrollment=enrollment, journey_id=enrollment.journey_id, version_id=enrollment.version_id,
        node_id=enrollment.current_node, kind="goal" if outcome == StepOutcome.CONVERTED else "",
        outcome=outcome, detail=detail[:500], at=now,
    )
