"""A ledger built row by row for the measurement tests: journeys, enrollments as the engine
leaves them, messages as delivery leaves them, goal events."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from channels_app.models import Message
from customers.models import Customer, Event
from journeys.models import Journey
from orchestrator.engine.models import Enrollment, EnrollmentState, ExitReason
from tests.journey_factories import linear_graph, make_live_journey, node

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_seq = itertools.count(1)


def journey(name: str = "Cart recovery", **fields) -> Journey:
    graph = linear_graph(node("entry", "entry", trigger="api"), node("done", "exit"))
    fields.setdefault("goal_event", "Order Completed")
    return make_live_journey(graph, name=name, **fields)


def customer(name: str = "") -> Customer:
    n = next(_seq)
    return Customer.objects.create(external_id=f"m-{n}", traits={"first_name": name or f"Person {n}"})


def enrollment(
    j: Journey, who: Customer, *, entered_at: datetime = T0, holdout: bool = False, state: str = EnrollmentState.EXITED,
    converted_at: datetime | None = None, value: str | None = None, event: Event | None = None,
) -> Enrollment:
    """Exited (completed, or converted when converted_at is given) unless told otherwise."""
    exited = state == EnrollmentState.EXITED
    return Enrollment.objects.create(
        journey=j, version=j.live_version, customer=who, state=state, current_node="done" if exited else "entry",
        holdout=holdout, trigger_key=f"t-{next(_seq)}", entered_at=entered_at,
        exited_at=(converted_at or entered_at + DAY) if exited else None,
        exit_reason=(ExitReason.CONVERTED if converted_at else ExitReason.COMPLETED) if exited else "",
        converted_at=converted_at, conversion_value=Decimal(value) if value is not None else None,
        conversion_event_id=event.pk if event else None,
    )


def message(
    who: Customer, channel: str, sent_at: datetime | None, *, of: Enrollment | None = None,
    category: str = "marketing", status: str = "delivered", subject: str = "", queued_at: datetime | None = None,
    opened_at: datetime | None = None, clicked_at: datetime | None = None,
) -> Message:
    """A message of the enrollment's journey (or outside journeys when of is None)."""
    return Message.objects.create(
        customer=who, channel=channel, category=category, status=status, idempotency_key=f"m-{next(_seq)}",
        content={"subject": subject} if subject else {},
        journey_id=of.journey_id if of else None, journey_version_id=of.version_id if of else None,
        enrollment_id=of.pk if of else None, node_id="send" if of else "",
        queued_at=queued_at or sent_at or T0, sent_at=sent_at, opened_at=opened_at, clicked_at=clicked_at,
    )


def order(who: Customer, at: datetime, revenue: str = "80.00") -> Event:
    return Event.objects.create(customer=who, name="Order Completed", occurred_at=at, properties={"revenue": revenue}, source="test")


def converted(j: Journey, who: Customer, at: datetime, value: str = "80.00", **fields) -> Enrollment:
    """An enrollment converted by an order at ``at`` worth ``value``."""
    event = order(who, at, value)
    return enrollment(j, who, converted_at=at, value=value, event=event, **fields)
