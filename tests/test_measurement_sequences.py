"""Touch sequences on a constructed ledger: the channels of each settled treatment
enrollment's sent messages in sent order (up to the conversion for converters), grouped,
with the share of each sequence that converted."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestrator.engine.models import EnrollmentState
from orchestrator.measurement.sequences import SequenceRow, touch_sequences
from tests import measurement_factories as f
from tests.measurement_factories import HOUR, T0

pytestmark = pytest.mark.django_db


@pytest.fixture
def journey():
    return f.journey()


def sent(enrollment, *channels_and_hours):
    for channel, hours in channels_and_hours:
        f.message(enrollment.customer, channel, T0 + hours * HOUR, of=enrollment)


def test_sequences_counted_and_ranked_by_conversions(journey):
    first = f.converted(journey, f.customer(), T0 + 3 * HOUR)
    sent(first, ("push", 1), ("email", 2), ("in_app", 4))  # the in-app came after the conversion
    second = f.converted(journey, f.customer(), T0 + 3 * HOUR)
    sent(second, ("push", 1), ("email", 2))
    sent(f.enrollment(journey, f.customer()), ("push", 1), ("email", 2))  # exited, no conversion
    pushed_only = f.enrollment(journey, f.customer())
    sent(pushed_only, ("push", 1))
    f.message(pushed_only.customer, "email", None, of=pushed_only, status="suppressed")  # never sent: no touch
    no_message = f.converted(journey, f.customer(), T0 + 2 * HOUR)
    late_push = f.enrollment(journey, f.customer())
    sent(late_push, ("sms", 5), ("push", 1))  # written in that order, sent push first
    sent(f.enrollment(journey, f.customer(), state=EnrollmentState.WAITING), ("push", 1))  # still inside
    sent(f.enrollment(journey, f.customer(), holdout=True), ("push", 1))  # holdout (never really sent)
    other = f.enrollment(f.journey("Other"), first.customer)
    sent(other, ("sms", 1))  # another journey's message to the same person

    with CaptureQueriesContext(connection) as queries:
        rows = touch_sequences(journey.pk)

    assert len(queries) == 1
    assert rows == [
        SequenceRow(("push", "email"), enrollments=3, converted=2, example_enrollment_id=first.pk),
        SequenceRow((), enrollments=1, converted=1, example_enrollment_id=no_message.pk),
        SequenceRow(("push",), enrollments=1, converted=0, example_enrollment_id=None),
        SequenceRow(("push", "sms"), enrollments=1, converted=0, example_enrollment_id=None),
    ]
    assert [(r.label, round(r.conversion_rate, 4)) for r in rows] == [
        ("Push → Email", 0.6667), ("no message", 1.0), ("Push", 0.0), ("Push → SMS", 0.0),
    ]


def test_only_entrants_of_the_period_and_at_most_the_limit(journey):
    before = f.enrollment(journey, f.customer(), entered_at=T0 - 24 * HOUR)
    sent(before, ("email", -23))
    inside = f.enrollment(journey, f.customer(), entered_at=T0)
    sent(inside, ("sms", 1))
    also = f.converted(journey, f.customer(), T0 + 2 * HOUR, entered_at=T0)
    sent(also, ("push", 1))
    assert touch_sequences(journey.pk, since=T0, until=T0 + HOUR) == [
        SequenceRow(("push",), 1, 1, also.pk), SequenceRow(("sms",), 1, 0, None),
    ]
    assert touch_sequences(journey.pk, since=T0, limit=1) == [SequenceRow(("push",), 1, 1, also.pk)]


def test_a_journey_nobody_finished_has_no_sequences(journey):
    f.enrollment(journey, f.customer(), state=EnrollmentState.ACTIVE)
    assert touch_sequences(journey.pk) == []
