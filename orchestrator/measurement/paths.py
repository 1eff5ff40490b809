"""One customer's path to conversion: the enrollment's messages, the other touches the
attribution counts for its conversion, and the conversion event.

The credited touches and their shares are exactly what ``ledger.journey_attribution``
counts for this conversion (same touch filter, same window, same rules), so the page
explains the table's numbers one customer at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q

from channels_app.models import Message
from customers.models import Event
from journeys.models import Journey
from orchestrator.engine.models import Enrollment
from orchestrator.measurement.credit import Model
from orchestrator.measurement.ledger import conversion_credits, touch_filter


@dataclass(frozen=True)
class PathTouch:
    message: Message
    journey_name: str  # "" outside journeys
    in_enrollment: bool  # sent by this enrollment (else another journey's or a campaign's)
    credits: dict[Model, float] | None  # None: not a touch credited for this conversion


@dataclass(frozen=True)
class ConversionPath:
    enrollment: Enrollment
    event: Event | None  # the goal event; None when not converted (or erased)
    touches: list[PathTouch]
    lookback: timedelta
    half_life: timedelta

    @property
    def credited(self) -> list[PathTouch]:
        return [t for t in self.touches if t.credits is not None]


def conversion_path(enrollment: Enrollment, lookback: timedelta, half_life: timedelta) -> ConversionPath:
    """Oldest first: the enrollment's messages and, for a converter, every touch in the window."""
    wanted = Q(enrollment_id=enrollment.pk)
    converted_at = enrollment.converted_at
    if converted_at is not None and not enrollment.holdout:
        wanted |= touch_filter() & Q(sent_at__gte=converted_at - lookback, sent_at__lte=converted_at)
    messages = list(
        Message.objects.filter(wanted, customer_id=enrollment.customer_id).order_by("queued_at", "id")
    )
    credited = conversion_credits(enrollment, lookback, half_life)
    names = dict(Journey.objects.filter(pk__in={m.journey_id for m in messages}).values_list("pk", "name"))
    touches = [
        PathTouch(m, names.get(m.journey_id, "") if m.journey_id else "", m.enrollment_id == enrollment.pk, credited.get(m.pk))
        for m in messages
    ]
    event = Event.objects.filter(pk=enrollment.conversion_event_id).first() if enrollment.conversion_event_id else None
    return ConversionPath(enrollment, event, touches, lookback, half_life)
