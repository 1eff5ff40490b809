"""Priority arbitration across batches and workers: when journeys compete for a
customer's last slot, the higher priority wins, not whichever a worker reached first; and
sends deferred to the same moment are released in priority order.

One batch per enrollment (``advance([pk])``) stands for two workers, each holding one of
the customer's sends. Each test writes exactly the policy it needs."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from channels_app.models import Message
from customers.enums import Category, Channel
from orchestrator.dispatch import DispatchBatch, Outcome, SendRequest
from orchestrator.engine.models import Enrollment, EnrollmentState, ExitReason
from orchestrator.engine.runner import RunStats, advance
from orchestrator.governor.loading import forget_policy
from orchestrator.governor.models import GovernorVerdict, QuietHoursRule
from orchestrator.governor.rivals import YIELD_FOR
from tests.test_governor_wiring import (
    CAP_NAME,
    DAY,
    NOON,
    enter,
    new_yorker,
    run_at,
    set_policy,
    sms_journey,
    steps_of,
)

pytestmark = pytest.mark.django_db

YIELD_REASON = "yields to higher-priority “Priority 8” (priority 8), due now, for the slot this send would take"


def advance_alone(enrollment: Enrollment, at: dt.datetime) -> RunStats:
    """This enrollment in a batch of its own, as a worker that claimed only it would run it."""
    with time_machine.travel(at, tick=False):
        return advance([enrollment.pk], now=at)


def state_of(enrollment: Enrollment) -> tuple:
    enrollment.refresh_from_db()
    return enrollment.state, enrollment.current_node, enrollment.due_at, enrollment.exit_reason


def sent_journeys() -> list[int]:
    return sorted(Message.objects.filter(status="queued").values_list("journey_id", flat=True))


def test_a_lower_priority_send_reached_first_yields_the_last_slot_to_a_higher_priority_send_due_now():
    set_policy(cap=1)
    person = new_yorker()
    high, low = sms_journey("Priority 8", priority=8), sms_journey("Priority 3", priority=3)
    high_in, low_in = enter(high, person, NOON), enter(low, person, NOON)

    assert advance_alone(low_in, NOON).messages == 0

    assert state_of(low_in) == (EnrollmentState.ACTIVE, "sms", NOON + YIELD_FOR, "")
    verdict = GovernorVerdict.objects.get()
    assert (verdict.decision, verdict.rule, verdict.reason, verdict.until, verdict.journey_id) == (
        "defer", "priority", YIELD_REASON, NOON + YIELD_FOR, low.pk
    )
    assert verdict.counts == {"priority": 3, "rivals": [{"journey_id": high.pk, "priority": 8}]}
    assert steps_of(low_in)[-1] == ("sms", "deferred", f"sms: {YIELD_REASON}")

    assert advance_alone(high_in, NOON).messages == 1
    assert sent_journeys() == [high.pk]

    # Judged again after the yield: now the cap itself holds it, until the window rolls on.
    run_at(NOON + YIELD_FOR)
    assert state_of(low_in) == (EnrollmentState.ACTIVE, "sms", NOON + DAY, "")
    assert list(GovernorVerdict.objects.filter(journey_id=low.pk).order_by("id").values_list("rule", flat=True)) == [
        "priority", CAP_NAME
    ]
    assert sent_journeys() == [high.pk]


def test_a_higher_priority_send_reached_first_takes_the_slot_and_the_lower_one_is_capped_as_usual():
    set_policy(cap=1)
    person = new_yorker()
    high, low = sms_journey("Priority 8", priority=8), sms_journey("Priority 3", priority=3)
    high_in, low_in = enter(high, person, NOON), enter(low, person, NOON)

    advance_alone(high_in, NOON)
    advance_alone(low_in, NOON)

    assert sent_journeys() == [high.pk]
    assert state_of(low_in) == (EnrollmentState.ACTIVE, "sms", NOON + DAY, "")
    assert list(GovernorVerdict.objects.values_list("rule", flat=True)) == [CAP_NAME]


def test_nothing_yields_while_there_is_room_for_both():
    set_policy(cap=2)
    person = new_yorker()
    high, low = sms_journey("Priority 8", priority=8), sms_journey("Priority 3", priority=3)
    high_in, low_in = enter(high, person, NOON), enter(low, person, NOON)

    advance_alone(low_in, NOON)
    advance_alone(high_in, NOON)

    assert sent_journeys() == sorted([high.pk, low.pk])
    assert not GovernorVerdict.objects.exists()


def test_an_equal_priority_rival_does_not_make_a_send_yield():
    set_policy(cap=1)
    person = new_yorker()
    first, second = sms_journey("First", priority=5), sms_journey("Second", priority=5)
    enter(first, person, NOON)
    second_in = enter(second, person, NOON)

    advance_alone(second_in, NOON)

    assert sent_journeys() == [second.pk]


def test_a_higher_priority_send_due_later_is_not_a_rival():
    set_policy(cap=1)
    person = new_yorker()
    high, low = sms_journey("Priority 8", priority=8), sms_journey("Priority 3", priority=3)
    high_in = enter(high, person, NOON)
    Enrollment.objects.filter(pk=high_in.pk).update(due_at=NOON + dt.timedelta(hours=1))
    low_in = enter(low, person, NOON)

    advance_alone(low_in, NOON)

    assert sent_journeys() == [low.pk]


def test_a_rival_held_by_quiet_hours_takes_no_slot_now():
    """The higher-priority rival is an SMS in quiet hours: it will wait until morning, so
    the email due now may take the slot."""
    set_policy(cap=1)
    QuietHoursRule.objects.create(channel=Channel.SMS, start=dt.time(11, 0), end=dt.time(13, 0))
    forget_policy()
    person = new_yorker()
    person.email = "maya@example.com"
    person.save()
    high = sms_journey("Priority 8", priority=8)
    low = _email_journey("Email priority 3", priority=3)
    enter(high, person, NOON)
    low_in = enter(low, person, NOON)

    advance_alone(low_in, NOON)

    assert sent_journeys() == [low.pk]


def test_a_rival_in_a_paused_journey_takes_no_slot():
    set_policy(cap=1)
    person = new_yorker()
    high, low = sms_journey("Priority 8", priority=8), sms_journey("Priority 3", priority=3)
    enter(high, person, NOON)
    high.status = "paused"
    high.save()
    low_in = enter(low, person, NOON)

    advance_alone(low_in, NOON)

    assert sent_journeys() == [low.pk]


@pytest.mark.parametrize("on_cap", ["skip", "exit"])
def test_a_yield_waits_even_on_a_node_that_skips_or_exits_on_caps(on_cap):
    """Yielding is not being capped: the send is judged again in a moment."""
    set_policy(cap=1)
    person = new_yorker()
    high, low = sms_journey("Priority 8", priority=8), sms_journey("Priority 3", priority=3, on_cap=on_cap)
    enter(high, person, NOON)
    low_in = enter(low, person, NOON)

    advance_alone(low_in, NOON)

    assert state_of(low_in) == (EnrollmentState.ACTIVE, "sms", NOON + YIELD_FOR, "")
    assert not Message.objects.exists()


def test_sends_deferred_to_the_same_moment_are_released_in_priority_order():
    """A full cap defers both; when the window rolls on, the lower-priority send, claimed
    first, yields and the higher-priority one takes the freed slot."""
    set_policy(cap=1)
    person = new_yorker()
    opener = sms_journey("Opener", priority=5)
    enter(opener, person, NOON - DAY + dt.timedelta(minutes=1))
    run_at(NOON - DAY + dt.timedelta(minutes=1))
    high, low = sms_journey("Priority 8", priority=8), sms_journey("Priority 3", priority=3)
    high_in, low_in = enter(high, person, NOON), enter(low, person, NOON)
    advance_alone(low_in, NOON)
    advance_alone(high_in, NOON)
    release = NOON + dt.timedelta(minutes=1)
    assert state_of(low_in)[2] == state_of(high_in)[2] == release

    advance_alone(low_in, release)
    advance_alone(high_in, release)

    assert sent_journeys() == sorted([opener.pk, high.pk])
    assert state_of(high_in)[0] == EnrollmentState.EXITED
    assert state_of(low_in) == (EnrollmentState.ACTIVE, "sms", release + YIELD_FOR, "")


def test_batch_mates_are_judged_in_priority_order_and_are_not_each_others_rivals():
    """In one batch the higher priority goes first, and its batch-mate is not also counted
    as a rival (which would make the lower one yield to a send already made)."""
    set_policy(cap=2)
    person = new_yorker()
    high, low = sms_journey("Priority 8", priority=8), sms_journey("Priority 3", priority=3)
    high_in, low_in = enter(high, person, NOON), enter(low, person, NOON)

    with time_machine.travel(NOON, tick=False):
        advance([low_in.pk, high_in.pk], now=NOON)

    assert sent_journeys() == sorted([high.pk, low.pk])
    assert state_of(low_in)[3] == state_of(high_in)[3] == ExitReason.COMPLETED


def test_a_careful_batch_does_not_count_its_own_enrollments_as_rivals():
    """The engine's one-at-a-time retry dispatches each send on its own: the batch's other
    enrollments, already sent in this transaction, must not also be reserved as rivals."""
    set_policy(cap=2)
    person = new_yorker()
    high, low = sms_journey("Priority 8", priority=8), sms_journey("Priority 3", priority=3)
    high_in, low_in = enter(high, person, NOON), enter(low, person, NOON)

    with time_machine.travel(NOON, tick=False):
        from django.db import transaction

        with transaction.atomic():
            batch = DispatchBatch({person.pk: person}, now=NOON, careful=True, enrollment_ids=[high_in.pk, low_in.pk])
            outcomes = [batch.dispatch(_request(person, e, priority)).outcome for e, priority in ((high_in, 8), (low_in, 3))]

    assert outcomes == [Outcome.QUEUED, Outcome.QUEUED]


def _request(person, enrollment: Enrollment, priority: int) -> SendRequest:
    return SendRequest(
        customer_id=person.pk, channel=Channel.SMS, category=Category.MARKETING, content={"body": "hi"},
        idempotency_key=f"test:{enrollment.pk}", journey_id=enrollment.journey_id, enrollment_id=enrollment.pk,
        node_id="sms", at=NOON, priority=priority,
    )


def _email_journey(name: str, **fields):
    from tests.journey_factories import linear_graph, make_live_journey, node

    config = {"channel": "email", "content": {"email": {"subject": "Hello", "html": "<p>Hi</p>", "text": "Hi"}}}
    return make_live_journey(linear_graph(node("entry", "entry", trigger="api"), node("email", "send", **config)), name=name, **fields)


def test_a_batch_begun_a_moment_before_another_that_sent_first_still_counts_its_messages():
    """Workers take their clock at the start of a batch. One that began at 12:00:00.000 but
    reached the customer's lock after a batch begun at 12:00:00.500 had sent must count
    that message, though it is stamped later than its own moment."""
    set_policy(cap=1)
    person = new_yorker()
    first, second = sms_journey("First", priority=5), sms_journey("Second", priority=5)
    first_in, second_in = enter(first, person, NOON), enter(second, person, NOON)

    advance_alone(first_in, NOON + dt.timedelta(milliseconds=500))
    advance_alone(second_in, NOON)

    assert sent_journeys() == [first.pk]
    assert list(GovernorVerdict.objects.values_list("journey_id", "rule")) == [(second.pk, CAP_NAME)]
