"""The engine keeps going when one enrollment cannot: failures are isolated and logged,
entries count from the trigger's time, and event work locks in a deadlock-free order."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from channels_app.models import Message
from customers.enums import Channel
from customers.models import ContactPoint, Customer, Event, Segment
from orchestrator.engine.entry import enrol
from orchestrator.engine.events import handle_events
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, ExitReason
from orchestrator.engine.runner import run_due
from orchestrator.engine.tasks import enrol_segments
from tests.journey_factories import linear_graph, make_live_journey, node

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)


def sms_node(node_id="sms"):
    return node(node_id, "send", channel="sms", content={"sms": {"body": "Hello {{ customer.external_id }}"}})


def customer(external_id: str) -> Customer:
    person = Customer.objects.create(external_id=external_id, phone="+14155550100")
    ContactPoint.objects.create(customer=person, channel=Channel.SMS, address="+14155550100")
    return person


@pytest.fixture
def broken_split_journey():
    """A split on a saved segment whose stored definition no longer compiles."""
    segment = Segment.objects.create(name="VIPs", definition={"match": "all", "conditions": []})
    graph = {
        "nodes": [
            node("entry", "entry", trigger="api"),
            node("vip", "split", branches=[{"port": "yes", "condition": {"segment_id": segment.pk}}]),
            sms_node(),
        ],
        "edges": [
            {"from": "entry", "port": "out", "to": "vip"},
            {"from": "vip", "port": "yes", "to": "sms"},
            {"from": "vip", "port": "else", "to": "sms"},
        ],
    }
    journey = make_live_journey(graph, name="Broken split")
    # Written behind the validators' back, as a bad migration or manual edit would.
    Segment.objects.filter(pk=segment.pk).update(definition={"match": "sometimes", "conditions": "nope"})
    return journey


def test_a_failing_enrollment_exits_with_its_error_and_the_rest_of_the_batch_goes_on(broken_split_journey):
    healthy_journey = make_live_journey(linear_graph(node("entry", "entry", trigger="api"), sms_node()), name="Healthy")
    first, second = customer("c-1"), customer("c-2")
    with time_machine.travel(NOW, tick=False):
        # The broken one is due first, so it heads the batch.
        enrol(broken_split_journey, first, trigger_key="api:1", context={}, now=NOW - dt.timedelta(minutes=1))
        enrol(healthy_journey, second, trigger_key="api:2", context={}, now=NOW)

        stats = run_due(now=NOW)

    assert stats.enrollments == 2
    broken = Enrollment.objects.get(journey=broken_split_journey)
    assert (broken.state, broken.exit_reason, broken.due_at) == (EnrollmentState.EXITED, ExitReason.ERROR, None)
    failure = EnrollmentStep.objects.filter(enrollment=broken).last()
    assert failure.node_id == "vip"
    assert failure.detail.startswith("step failed: ")
    assert list(EnrollmentStep.objects.filter(enrollment=broken).values_list("node_id", "outcome")) == [
        ("vip", "exited")
    ]  # the entry step taken before the failure was rolled back with it
    healthy = Enrollment.objects.get(journey=healthy_journey)
    assert (healthy.state, healthy.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)
    assert list(Message.objects.values_list("customer__external_id", flat=True)) == ["c-2"]
    # Nothing is left due to fail again.
    assert run_due(now=NOW + dt.timedelta(minutes=1)).enrollments == 0


def test_one_broken_segment_entry_does_not_keep_others_from_entering():
    good_segment = Segment.objects.create(name="Everyone", definition={"match": "all", "conditions": []})
    bad_segment = Segment.objects.create(name="Broken", definition={"match": "all", "conditions": []})
    make_live_journey(linear_graph(node("entry", "entry", trigger="segment", segment_id=bad_segment.pk), sms_node()), name="A broken")
    make_live_journey(linear_graph(node("entry", "entry", trigger="segment", segment_id=good_segment.pk), sms_node()), name="B good")
    Segment.objects.filter(pk=bad_segment.pk).update(definition={"match": "sometimes"})
    customer("c-1")

    result = enrol_segments()

    assert result.startswith("1 entered; failed for journeys [")
    assert list(Enrollment.objects.values_list("journey__name", flat=True)) == ["B good"]


def test_an_order_in_the_same_batch_as_the_cart_converts_the_entry_it_follows():
    journey = make_live_journey(
        linear_graph(
            node("entry", "entry", trigger="event", event="Cart Abandoned"),
            node("wait", "delay", mode="duration", amount=45, unit="minutes"),
            sms_node(),
        ),
        name="Cart", goal_event="Order Completed", goal_value_property="revenue",
    )
    person = customer("c-1")
    cart = Event.objects.create(customer=person, name="Cart Abandoned", occurred_at=NOW - dt.timedelta(minutes=10), source="t")
    order = Event.objects.create(
        customer=person, name="Order Completed", properties={"revenue": 90}, occurred_at=NOW - dt.timedelta(minutes=5), source="t"
    )

    handle_events([order.pk, cart.pk], now=NOW)

    enrollment = Enrollment.objects.get(journey=journey)
    assert enrollment.entered_at == NOW - dt.timedelta(minutes=10)
    assert enrollment.converted_at == NOW - dt.timedelta(minutes=5)
    assert (enrollment.state, enrollment.exit_reason) == (EnrollmentState.EXITED, ExitReason.CONVERTED)
    assert Message.objects.count() == 0


def test_entry_time_is_never_in_the_future_even_when_the_event_claims_it():
    journey = make_live_journey(linear_graph(node("entry", "entry", trigger="event", event="Signed Up"), sms_node()), name="Welcome")
    person = customer("c-1")
    event = Event.objects.create(customer=person, name="Signed Up", occurred_at=NOW + dt.timedelta(hours=3), source="t")

    handle_events([event.pk], now=NOW)

    assert Enrollment.objects.get(journey=journey).entered_at == NOW


def test_stopping_a_journey_stamps_the_exit_time_on_each_enrollment():
    from orchestrator.engine.control import exit_journey

    journey = make_live_journey(
        linear_graph(node("entry", "entry", trigger="api"), node("wait", "delay", mode="duration", amount=1, unit="days")),
        name="Long",
    )
    enrol(journey, customer("c-1"), trigger_key="api:1", context={}, now=NOW)
    run_due(now=NOW)
    later = NOW + dt.timedelta(hours=2)

    assert exit_journey(journey.pk, now=later) == 1

    enrollment = Enrollment.objects.get()
    assert (enrollment.exited_at, enrollment.updated_at, enrollment.exit_reason) == (later, later, ExitReason.STOPPED)
    assert timezone.is_aware(enrollment.updated_at)


def test_a_split_judges_relative_windows_by_the_steps_own_clock():
    """A step run for a past or simulated moment asks "in the last day" of that moment."""
    recent = {"match": "all", "conditions": [
        {"type": "event", "event": "Cart Abandoned", "aggregate": "last_occurred", "operator": "within_days", "value": 1},
    ]}
    graph = {
        "nodes": [
            node("entry", "entry", trigger="api"),
            node("recent", "split", branches=[{"port": "yes", "condition": recent}]),
            node("done", "exit"),
        ],
        "edges": [
            {"from": "entry", "port": "out", "to": "recent"},
            {"from": "recent", "port": "yes", "to": "done"},
            {"from": "recent", "port": "else", "to": "done"},
        ],
    }
    journey = make_live_journey(graph, name="Recent carts")
    person = customer("c-1")
    Event.objects.create(customer=person, name="Cart Abandoned", occurred_at=NOW - dt.timedelta(hours=2), source="t")
    enrol(journey, person, trigger_key="api:1", context={}, now=NOW)

    with time_machine.travel(NOW + dt.timedelta(days=10), tick=False):
        run_due(now=NOW)

    branch = EnrollmentStep.objects.get(node_id="recent")
    assert branch.port == "yes"


def test_steps_that_just_fell_due_are_claimed_before_an_older_backlog():
    journey = make_live_journey(
        linear_graph(node("entry", "entry", trigger="api"), node("wait", "delay", mode="duration", amount=1, unit="days")),
        name="Backlog",
    )
    backlog = [customer(f"b-{n}") for n in range(3)]
    for n, person in enumerate(backlog):
        enrol(journey, person, trigger_key=f"api:b{n}", context={}, now=NOW - dt.timedelta(minutes=30))
    timed = customer("timed")
    enrol(journey, timed, trigger_key="api:t", context={}, now=NOW - dt.timedelta(seconds=2))

    run_due(now=NOW, batch_size=2, max_batches=1)

    advanced = set(Enrollment.objects.filter(current_node="wait").values_list("customer__external_id", flat=True))
    assert advanced == {"timed", "b-0"}  # the fresh one first, then the oldest of the backlog


def test_asking_for_help_enqueues_one_drain_per_idle_worker_however_often_it_is_asked(settings):
    from django_q.models import OrmQ

    from orchestrator.engine.tasks import _ask_for_help

    workers = settings.Q_CLUSTER["workers"]
    for _ in range(3):
        _ask_for_help()

    assert OrmQ.objects.count() == max(workers - 1, 0)


def test_an_event_after_the_wait_timed_out_does_not_count_even_before_the_poller_ran():
    journey = make_live_journey(
        {
            "nodes": [
                node("entry", "entry", trigger="api"),
                node("wait", "wait_for_event", mode="event", event="Order Completed", timeout={"amount": 1, "unit": "hours"}),
                node("bought", "exit"),
                node("nudge", "send", channel="sms", content={"sms": {"body": "Still there?"}}),
            ],
            "edges": [
                {"from": "entry", "port": "out", "to": "wait"},
                {"from": "wait", "port": "happened", "to": "bought"},
                {"from": "wait", "port": "timed_out", "to": "nudge"},
            ],
        },
        name="Late order",
    )
    person = customer("c-1")
    enrol(journey, person, trigger_key="api:1", context={}, now=NOW)
    run_due(now=NOW)
    late = Event.objects.create(customer=person, name="Order Completed", occurred_at=NOW + dt.timedelta(hours=2), source="t")

    handle_events([late.pk], now=NOW + dt.timedelta(hours=2))
    run_due(now=NOW + dt.timedelta(hours=2))

    outcomes = list(EnrollmentStep.objects.filter(node_id="wait").values_list("outcome", flat=True))
    assert outcomes == ["waiting", "timed_out"]
    assert Message.objects.get().channel == Channel.SMS


def test_within_the_last_seconds_the_most_recently_due_step_goes_first():
    """A launch entering thousands at once is itself "just due" for a few seconds; a timer
    falling due during them still goes first."""
    journey = make_live_journey(
        linear_graph(node("entry", "entry", trigger="api"), node("wait", "delay", mode="duration", amount=1, unit="days")),
        name="Launch",
    )
    for n in range(3):
        enrol(journey, customer(f"launch-{n}"), trigger_key=f"api:l{n}", context={}, now=NOW - dt.timedelta(seconds=3))
    enrol(journey, customer("timer"), trigger_key="api:t", context={}, now=NOW - dt.timedelta(seconds=1))

    run_due(now=NOW, batch_size=1, max_batches=1)

    assert list(Enrollment.objects.filter(current_node="wait").values_list("customer__external_id", flat=True)) == ["timer"]
