"""Who enters a journey: entry filters, re-entry policies, the entry limit, the control
group, journey status, stale events, the trigger API and set-based segment entry.

Events reach the engine as ingestion hands them over: through the track API with
CHORUS_ENGINE_INLINE, or straight to ``handle_events`` with the stored event ids (what the
django-q2 task does). Time moves with time-machine.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from channels_app.models import Message
from customers.models import Customer, Event, Segment
from journeys.models import Journey, JourneyStatus, ReentryPolicy
from orchestrator.engine.control import NotApiTriggered, trigger
from orchestrator.engine.entry import EntryResult, enrol, enrol_segment, in_holdout
from orchestrator.engine.events import handle_events
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, ExitReason
from orchestrator.engine.runner import run_due
from tests.api_factories import opted_in
from tests.journey_factories import linear_graph, make_live_journey, node

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 4, 15, 0, tzinfo=dt.UTC)  # a Wednesday afternoon
HOUR = dt.timedelta(hours=1)
BIG_CART = {"cart_value": 150}


def cart_graph() -> dict:
    """Enter on a cart of 100 or more, wait an hour, end."""
    return linear_graph(
        node("entry", "entry", trigger="event", event="Cart Abandoned",
             filters=[{"property": "cart_value", "op": "gte", "value": 100}]),
        node("wait", "delay", mode="duration", amount=1, unit="hours"),
    )


def make_customer(external_id: str, **fields) -> Customer:
    """Opted in to marketing on every channel: these tests are about the engine, not consent."""
    fields.setdefault("phone", "+12125550100")
    return opted_in(Customer.objects.create(external_id=external_id, **fields))


def record(customer: Customer, name: str, properties: dict | None = None, *, at: dt.datetime | None = None) -> Event:
    return Event.objects.create(
        customer=customer, name=name, properties=properties or {},
        occurred_at=at or timezone.now(), source="test",
    )


def arrive(customer: Customer, name: str = "Cart Abandoned", properties: dict | None = None) -> Event:
    """An event stored now and handed to the engine, as the ingestion task does."""
    event = record(customer, name, BIG_CART if properties is None else properties)
    handle_events([event.pk])
    return event


def track(client, user_id: str, event: str, properties: dict, message_id: str, **extra) -> None:
    body = {"userId": user_id, "event": event, "properties": properties, "messageId": message_id, **extra}
    response = client.post("/api/v1/track", body, format="json")
    assert response.status_code == 200, response.content


def steps_of(enrollment: Enrollment) -> list[tuple[str, str]]:
    return list(EnrollmentStep.objects.filter(enrollment=enrollment).values_list("node_id", "outcome"))


@pytest.fixture
def ada(db) -> Customer:
    return make_customer("ada")


# --- event entry and its filters -----------------------------------------------------------


def test_ingested_event_matching_the_entry_filters_enters_its_customer(settings, ingest_client):
    settings.CHORUS_ENGINE_INLINE = True
    journey = make_live_journey(cart_graph())

    with time_machine.travel(T0, tick=False):
        track(ingest_client, "ada", "Cart Abandoned", {"cart_value": 120, "sku": "D-1"}, "m-1")

    enrollment = Enrollment.objects.get()
    event = Event.objects.get()
    assert (enrollment.journey_id, enrollment.customer.external_id) == (journey.pk, "ada")
    assert (enrollment.current_node, enrollment.state, enrollment.due_at) == ("wait", EnrollmentState.ACTIVE, T0 + HOUR)
    assert enrollment.entered_at == T0
    assert enrollment.context == {
        "event": {"name": "Cart Abandoned", "properties": {"cart_value": 120, "sku": "D-1"}},
        "event_id": event.pk,
    }
    assert steps_of(enrollment) == [("entry", "entered"), ("wait", "delayed")]


def test_ingested_event_failing_the_entry_filters_enters_no_one(settings, ingest_client):
    settings.CHORUS_ENGINE_INLINE = True
    make_live_journey(cart_graph())

    track(ingest_client, "ada", "Cart Abandoned", {"cart_value": 99}, "m-1")
    track(ingest_client, "ada", "Cart Abandoned", {"currency": "EUR"}, "m-2")
    track(ingest_client, "ada", "Cart Viewed", {"cart_value": 500}, "m-3")

    assert Event.objects.count() == 3
    assert Enrollment.objects.count() == 0
    assert EnrollmentStep.objects.count() == 0


# --- re-entry: once ------------------------------------------------------------------------


def test_once_journey_never_enters_a_customer_a_second_time(ada):
    journey = make_live_journey(cart_graph(), reentry=ReentryPolicy.ONCE)
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada)
        clock.move_to(T0 + 2 * HOUR)
        run_due()  # the first pass has ended
        arrive(ada)

    enrollment = Enrollment.objects.get()
    assert (enrollment.journey_id, enrollment.trigger_key) == (journey.pk, "once")
    assert (enrollment.state, enrollment.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)
    assert steps_of(enrollment) == [("entry", "entered"), ("wait", "delayed"), ("wait", "exited")]


def test_once_journey_unique_trigger_key_refuses_an_entry_whatever_its_trigger(ada):
    # A once-only journey runs no check of its own: the key "once" is the guard, so two
    # triggers racing each other cannot both insert.
    journey = make_live_journey(cart_graph(), reentry=ReentryPolicy.ONCE)
    first = enrol(journey, ada, trigger_key="event:1", context={}, now=T0)
    second = enrol(journey, ada, trigger_key="event:2", context={}, now=T0)

    assert first == EntryResult(True, Enrollment.objects.get().pk, "entered")
    assert second == EntryResult(False, None, "already entered")
    assert Enrollment.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite serialises all writers")
def test_two_concurrent_events_enter_a_once_journey_exactly_once():
    journey = make_live_journey(cart_graph(), reentry=ReentryPolicy.ONCE)
    customer = make_customer("ada")
    events = [record(customer, "Cart Abandoned", BIG_CART) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def handle(event_id: int) -> None:
        try:
            barrier.wait(timeout=10)
            handle_events([event_id])
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=handle, args=(event.pk,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    enrollment = Enrollment.objects.get()
    assert (enrollment.journey_id, enrollment.trigger_key) == (journey.pk, "once")
    assert enrollment.context["event_id"] in {event.pk for event in events}


# --- re-entry: cool-down -------------------------------------------------------------------


def test_cooldown_journey_refuses_while_inside_and_within_the_cooldown_and_enters_after(ada):
    # The cool-down runs from the last entry (as Braze's re-eligibility window does).
    journey = make_live_journey(cart_graph(), reentry=ReentryPolicy.COOLDOWN, reentry_cooldown_seconds=2 * 24 * 3600)
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada)
        clock.move_to(T0 + dt.timedelta(minutes=30))
        assert enrol(journey, ada, trigger_key="event:x1", context={}, now=timezone.now()) == EntryResult(
            False, None, "already in the journey"
        )
        arrive(ada)
        assert Enrollment.objects.count() == 1

        clock.move_to(T0 + 2 * HOUR)
        run_due()  # the first pass ends after its hour
        clock.move_to(T0 + dt.timedelta(days=2) - dt.timedelta(seconds=1))
        assert enrol(journey, ada, trigger_key="event:x2", context={}, now=timezone.now()) == EntryResult(
            False, None, "in cool-down since the last entry"
        )
        arrive(ada)
        assert Enrollment.objects.count() == 1

        clock.move_to(T0 + dt.timedelta(days=2))
        second_event = arrive(ada)

    first, second = Enrollment.objects.order_by("entered_at")
    assert (first.state, first.entered_at) == (EnrollmentState.EXITED, T0)
    assert (second.state, second.entered_at) == (EnrollmentState.ACTIVE, T0 + dt.timedelta(days=2))
    assert second.trigger_key == f"event:{second_event.pk}"


# --- re-entry: always ----------------------------------------------------------------------


def test_always_journey_enters_on_every_event_even_while_inside(ada):
    make_live_journey(cart_graph(), reentry=ReentryPolicy.ALWAYS)
    with time_machine.travel(T0, tick=False) as clock:
        first = arrive(ada)
        clock.move_to(T0 + dt.timedelta(minutes=5))
        second = arrive(ada)

    assert list(Enrollment.objects.order_by("entered_at").values_list("trigger_key", "state")) == [
        (f"event:{first.pk}", EnrollmentState.ACTIVE),
        (f"event:{second.pk}", EnrollmentState.ACTIVE),
    ]


def test_always_journey_enters_once_for_a_redelivered_event(ada):
    make_live_journey(cart_graph(), reentry=ReentryPolicy.ALWAYS)
    event = record(ada, "Cart Abandoned", BIG_CART)

    handle_events([event.pk])
    enrollment = Enrollment.objects.get()
    before = steps_of(enrollment)
    handle_events([event.pk])  # the task ran twice

    assert Enrollment.objects.get() == enrollment
    assert steps_of(enrollment) == before == [("entry", "entered"), ("wait", "delayed")]


# --- entry limit ---------------------------------------------------------------------------


def test_entry_limit_enters_exactly_that_many_and_counts_them_in_the_database():
    journey = make_live_journey(cart_graph(), entry_limit=3, reentry=ReentryPolicy.ALWAYS)
    customers = [make_customer(f"c{n}") for n in range(5)]
    for customer in customers:
        arrive(customer)

    assert list(Enrollment.objects.order_by("id").values_list("customer_id", flat=True)) == [c.pk for c in customers[:3]]
    assert Journey.objects.get(pk=journey.pk).entered_count == 3
    assert enrol(journey, customers[0], trigger_key="event:late", context={}, now=timezone.now()) == EntryResult(
        False, None, "entry limit reached"
    )
    assert Journey.objects.get(pk=journey.pk).entered_count == 3


def test_entry_refused_as_a_duplicate_does_not_use_up_an_entry_slot(ada):
    journey = make_live_journey(cart_graph(), entry_limit=2, reentry=ReentryPolicy.ONCE)
    arrive(ada)
    arrive(ada)
    bob = make_customer("bob")
    arrive(bob)

    assert sorted(Enrollment.objects.values_list("customer_id", flat=True)) == [ada.pk, bob.pk]
    assert Journey.objects.get(pk=journey.pk).entered_count == 2


# --- holdout -------------------------------------------------------------------------------


def test_holdout_of_half_holds_out_about_half_and_always_the_same_customers():
    journey = make_live_journey(cart_graph(), holdout_percent=50, reentry=ReentryPolicy.ALWAYS)
    Customer.objects.bulk_create(Customer(external_id=f"c{n:03d}") for n in range(400))
    customers = list(Customer.objects.all())
    ids = [customer.pk for customer in customers]
    for round_ in range(2):  # everyone enters twice
        for customer in customers:
            enrol(journey, customer, trigger_key=f"event:{round_}-{customer.pk}", context={}, now=T0)

    assert Enrollment.objects.count() == 800
    held_out = set(Enrollment.objects.filter(holdout=True).values_list("customer_id", flat=True))
    assert 140 <= len(held_out) <= 260
    assert held_out == {pk for pk in ids if in_holdout(journey, pk)}
    # Each customer's two enrollments agree.
    assert Enrollment.objects.filter(holdout=True).count() == 2 * len(held_out)


def _customer_in_holdout(journey: Journey, want: bool, prefix: str) -> Customer:
    for n in range(100):
        customer = make_customer(f"{prefix}-{n}", email=f"{prefix}{n}@example.com")
        if in_holdout(journey, customer.pk) == want:
            return customer
        customer.delete()
    raise AssertionError("no customer found")  # pragma: no cover


def test_held_out_enrollment_walks_the_path_is_sent_nothing_and_still_converts(django_capture_on_commit_callbacks):
    graph = linear_graph(
        node("entry", "entry", trigger="event", event="Cart Abandoned"),
        node("sms", "send", channel="sms", content={"sms": {"body": "Your cart misses you"}}),
        node("wait", "delay", mode="duration", amount=1, unit="hours"),
        node("email", "send", channel="email", content={"email": {"subject": "Still there?", "html": "<p>Hi</p>"}}),
        node("wait2", "delay", mode="duration", amount=1, unit="days"),
    )
    journey = make_live_journey(graph, holdout_percent=50, goal_event="Order Completed")
    control = _customer_in_holdout(journey, True, "control")
    treated = _customer_in_holdout(journey, False, "treated")

    with time_machine.travel(T0, tick=False) as clock, django_capture_on_commit_callbacks(execute=True):
        arrive(control)
        arrive(treated)
        clock.move_to(T0 + HOUR)
        run_due()
        clock.move_to(T0 + 2 * HOUR)
        arrive(control, "Order Completed", {"revenue": 80})

    held = Enrollment.objects.get(customer=control)
    assert held.holdout is True
    assert list(
        EnrollmentStep.objects.filter(enrollment=held).values_list("node_id", "outcome", "detail", "message_id")
    ) == [
        ("entry", "entered", "control group: sent nothing", None),
        ("sms", "held_out", "sms: control group", None),
        ("wait", "delayed", "for 1 hour", None),
        ("email", "held_out", "email: control group", None),
        ("wait2", "delayed", "for 1 day", None),
        ("wait2", "converted", "Order Completed worth 80.00 after no message", None),
        ("wait2", "exited", "goal reached", None),
    ]
    assert (held.state, held.exit_reason) == (EnrollmentState.EXITED, ExitReason.CONVERTED)
    assert (held.converted_at, str(held.conversion_value), held.touch_sequence) == (T0 + 2 * HOUR, "80.00", [])
    assert not Message.objects.filter(customer=control).exists()
    # The treated customer, on the same path, got both messages.
    assert list(Message.objects.filter(customer=treated).order_by("id").values_list("channel", flat=True)) == ["sms", "email"]


# --- journey status and stale events --------------------------------------------------------


@pytest.mark.parametrize("status", [JourneyStatus.PAUSED, JourneyStatus.DRAFT, JourneyStatus.STOPPED, JourneyStatus.ARCHIVED])
def test_journey_that_is_not_live_takes_no_entries(ada, status):
    journey = make_live_journey(cart_graph())
    Journey.objects.filter(pk=journey.pk).update(status=status)
    journey.refresh_from_db()

    arrive(ada)

    assert enrol(journey, ada, trigger_key="event:direct", context={}, now=timezone.now()) == EntryResult(
        False, None, f"journey is {status}"
    )
    assert Enrollment.objects.count() == 0
    assert EnrollmentStep.objects.count() == 0


def test_event_that_happened_more_than_a_day_ago_enters_no_one(settings, ingest_client):
    settings.CHORUS_ENGINE_INLINE = True
    make_live_journey(cart_graph(), reentry=ReentryPolicy.ALWAYS)
    stale = (T0 - dt.timedelta(days=1, seconds=1)).isoformat()
    recent = (T0 - dt.timedelta(hours=23, minutes=59)).isoformat()

    with time_machine.travel(T0, tick=False):
        track(ingest_client, "ada", "Cart Abandoned", BIG_CART, "backfill-1", timestamp=stale)
        assert Enrollment.objects.count() == 0
        track(ingest_client, "ada", "Cart Abandoned", BIG_CART, "late-1", timestamp=recent)

    enrollment = Enrollment.objects.get()
    assert enrollment.context["event_id"] == Event.objects.get(source_message_id="late-1").pk


# --- the trigger API -----------------------------------------------------------------------


def api_graph() -> dict:
    return linear_graph(
        node("entry", "entry", trigger="api"),
        node("sms", "send", channel="sms", content={"sms": {"body": "Your code: {{ trigger.code }}"}}),
    )


def test_trigger_enters_and_takes_the_first_steps_at_once(ada):
    journey = make_live_journey(api_graph())
    with time_machine.travel(T0, tick=False):
        result = trigger(journey, ada, properties={"code": "WELCOME10"}, key="req-1")

    enrollment = Enrollment.objects.get()
    assert result == EntryResult(True, enrollment.pk, "entered")
    message = Message.objects.get()
    assert enrollment.trigger_key == "once"
    assert enrollment.context == {
        "trigger": {"code": "WELCOME10"},
        "last_message_id": message.pk,
        "touches": [{"message_id": message.pk, "channel": "sms", "at": T0.isoformat()}],
    }
    assert (message.channel, message.content, message.queued_at) == ("sms", {"body": "Your code: WELCOME10"}, T0)
    assert steps_of(enrollment) == [("entry", "entered"), ("sms", "sent"), ("sms", "exited")]
    assert (enrollment.state, enrollment.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)


def test_trigger_with_the_same_key_twice_enters_once(ada):
    journey = make_live_journey(api_graph(), reentry=ReentryPolicy.ALWAYS)

    first = trigger(journey, ada, properties={"code": "A"}, key="req-1")
    again = trigger(journey, ada, properties={"code": "A"}, key="req-1")
    other = trigger(journey, ada, properties={"code": "B"}, key="req-2")

    assert (first.entered, again, other.entered) == (True, EntryResult(False, None, "trigger already handled"), True)
    assert list(Enrollment.objects.order_by("id").values_list("trigger_key", flat=True)) == ["api:req-1", "api:req-2"]
    assert list(Message.objects.order_by("id").values_list("content", flat=True)) == [
        {"body": "Your code: A"}, {"body": "Your code: B"},
    ]


def test_trigger_of_a_journey_entered_by_events_is_refused(ada):
    journey = make_live_journey(cart_graph())

    with pytest.raises(NotApiTriggered, match="enters on event, not on the API"):
        trigger(journey, ada, properties={}, key="req-1")

    assert Enrollment.objects.count() == 0


# --- segment entry -------------------------------------------------------------------------

PRO = {"match": "all", "conditions": [{"type": "trait", "trait": "plan", "operator": "eq", "value": "pro"}]}
EVERYONE = {"match": "all", "conditions": []}


def segment_journey(definition: dict, **fields) -> Journey:
    segment = Segment.objects.create(name=f"Segment {Segment.objects.count()}", definition=definition)
    graph = linear_graph(
        node("entry", "entry", trigger="segment", segment_id=segment.pk),
        node("wait", "delay", mode="duration", amount=1, unit="days"),
    )
    return make_live_journey(graph, **fields)


def test_segment_entry_enters_the_members_and_no_one_else():
    journey = segment_journey(PRO)
    pros = [make_customer(f"pro{n}", traits={"plan": "pro"}) for n in range(2)]
    make_customer("free", traits={"plan": "free"})
    make_customer("unknown")

    assert enrol_segment(journey, now=T0) == 2

    enrollments = list(Enrollment.objects.order_by("customer_id"))
    assert [e.customer_id for e in enrollments] == [c.pk for c in pros]
    assert [(e.current_node, e.state, e.due_at, e.trigger_key, e.context) for e in enrollments] == [
        ("entry", EnrollmentState.ACTIVE, T0, "once", {})
    ] * 2
    with time_machine.travel(T0, tick=False):
        run_due()
    assert set(Enrollment.objects.values_list("current_node", "due_at")) == {("wait", T0 + dt.timedelta(days=1))}


def test_segment_entry_rerun_enters_only_newly_qualifying_customers():
    journey = segment_journey(PRO)
    first = make_customer("pro", traits={"plan": "pro"})
    late = make_customer("upgrader", traits={"plan": "free"})
    assert enrol_segment(journey, now=T0) == 1

    late.traits = {"plan": "pro"}
    late.save()
    assert enrol_segment(journey, now=T0 + dt.timedelta(minutes=1)) == 1
    assert enrol_segment(journey, now=T0 + dt.timedelta(minutes=2)) == 0

    assert list(Enrollment.objects.order_by("entered_at").values_list("customer_id", "entered_at")) == [
        (first.pk, T0), (late.pk, T0 + dt.timedelta(minutes=1)),
    ]


def test_segment_entry_holdout_in_sql_matches_in_holdout_for_every_customer():
    journey = segment_journey(EVERYONE, holdout_percent=50)
    Customer.objects.bulk_create(Customer(external_id=f"c{n:03d}") for n in range(300))

    assert enrol_segment(journey, now=T0) == 300

    flags = dict(Enrollment.objects.values_list("customer_id", "holdout"))
    assert flags == {pk: in_holdout(journey, pk) for pk in Customer.objects.values_list("pk", flat=True)}
    assert 0 < sum(flags.values()) < 300


def test_segment_entry_with_a_cooldown_re_enters_members_once_they_are_out_and_cooled_down():
    journey = segment_journey(EVERYONE, reentry=ReentryPolicy.COOLDOWN, reentry_cooldown_seconds=3 * 24 * 3600)
    ada = make_customer("ada")
    assert enrol_segment(journey, now=T0) == 1
    assert enrol_segment(journey, now=T0 + HOUR) == 0  # inside

    run_due(now=T0)
    run_due(now=T0 + dt.timedelta(days=1))  # out after the day's delay
    assert Enrollment.objects.get().state == EnrollmentState.EXITED
    assert enrol_segment(journey, now=T0 + dt.timedelta(days=3) - dt.timedelta(seconds=1)) == 0  # cooling down
    assert enrol_segment(journey, now=T0 + dt.timedelta(days=3)) == 1

    assert list(Enrollment.objects.order_by("entered_at").values_list("customer_id", "entered_at", "trigger_key")) == [
        (ada.pk, T0, f"segment:{T0.isoformat()}"),
        (ada.pk, T0 + dt.timedelta(days=3), f"segment:{(T0 + dt.timedelta(days=3)).isoformat()}"),
    ]


def test_segment_entry_respects_the_entry_limit():
    journey = segment_journey(EVERYONE, entry_limit=3)
    customers = [make_customer(f"c{n}") for n in range(5)]

    assert enrol_segment(journey, now=T0) == 3
    assert enrol_segment(journey, now=T0 + dt.timedelta(minutes=1)) == 0

    assert sorted(Enrollment.objects.values_list("customer_id", flat=True)) == [c.pk for c in customers[:3]]
    assert Journey.objects.get(pk=journey.pk).entered_count == 3


def test_segment_entry_of_a_paused_journey_enters_no_one():
    journey = segment_journey(EVERYONE)
    make_customer("ada")
    Journey.objects.filter(pk=journey.pk).update(status=JourneyStatus.PAUSED)
    journey.refresh_from_db()

    assert enrol_segment(journey, now=T0) == 0
    assert Enrollment.objects.count() == 0


def test_run_due_steps_command_takes_segment_entrants_their_first_steps():
    journey = segment_journey(EVERYONE)
    make_customer("ada")
    enrol_segment(journey, now=T0)

    with time_machine.travel(T0, tick=False):
        call_command("run_due_steps", stdout=open("/dev/null", "w"))

    assert steps_of(Enrollment.objects.get()) == [("entry", "entered"), ("wait", "delayed")]
