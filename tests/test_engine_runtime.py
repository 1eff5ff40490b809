"""How the engine runs journeys over time: claiming due work in batches, pausing, stopping,
publishing new versions, conversions, the idempotency of sends, concurrency and cost.

Due steps run as operators run them (``run_due_steps``) or batch by batch (``run_due``,
``run_batch``); time moves with time-machine.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from channels_app.ledger import QueueRequest, do_queue_message
from channels_app.models import Message, MessageStatus
from customers.models import Customer, Event
from journeys.models import Journey, JourneyStatus
from journeys.services import JourneyInput, do_update_journey
from orchestrator.engine import lifecycle
from orchestrator.engine.control import exit_journey
from orchestrator.engine.entry import enrol
from orchestrator.engine.events import handle_events
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, ExitReason
from orchestrator.engine.runner import RunStats, run_batch, run_due
from tests.api_factories import opted_in
from tests.journey_factories import linear_graph, make_live_journey, node

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 4, 15, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def cart_entry(**config) -> dict:
    return node("entry", "entry", trigger="event", event="Cart Abandoned", **config)


def delay(node_id: str = "wait", amount: int = 1, unit: str = "hours") -> dict:
    return node(node_id, "delay", mode="duration", amount=amount, unit=unit)


def sms(node_id: str, body: str | None = None) -> dict:
    return node(node_id, "send", channel="sms", content={"sms": {"body": body or node_id}})


def make_customer(external_id: str, **fields) -> Customer:
    """Opted in to marketing on every channel: these tests are about the engine, not consent."""
    fields.setdefault("phone", "+12125550100")
    return opted_in(Customer.objects.create(external_id=external_id, **fields))


def arrive(customer: Customer, name: str, properties: dict | None = None) -> Event:
    event = Event.objects.create(
        customer=customer, name=name, properties=properties or {}, occurred_at=timezone.now(), source="test"
    )
    handle_events([event.pk])
    return event


def run_due_steps() -> None:
    call_command("run_due_steps", stdout=open("/dev/null", "w"))


def steps_of(enrollment: Enrollment) -> list[tuple[str, str]]:
    return list(EnrollmentStep.objects.filter(enrollment=enrollment).values_list("node_id", "outcome"))


def due_enrollments(journey: Journey, count: int, *, due_at: dt.datetime = T0) -> list[Enrollment]:
    """`count` customers at the entry node of the journey, all due at `due_at`."""
    first = Customer.objects.count()
    customers = Customer.objects.bulk_create(Customer(external_id=f"c{first + n:04d}") for n in range(count))
    return Enrollment.objects.bulk_create(
        Enrollment(journey=journey, version_id=journey.live_version_id, customer=customer, current_node="entry",
                   due_at=due_at, trigger_key="once", entered_at=due_at)
        for customer in customers
    )


@pytest.fixture
def ada(db) -> Customer:
    return make_customer("ada")


# --- claiming due work ---------------------------------------------------------------------


def test_batches_claim_the_earliest_due_first_up_to_the_batch_size():
    journey = make_live_journey(linear_graph(cart_entry(), delay(amount=1, unit="days")))
    offsets = [5, 1, 4, 2, 3]  # minutes before T0, in creation order
    enrollments = [due_enrollments(journey, 1, due_at=T0 - dt.timedelta(minutes=m))[0] for m in offsets]
    by_offset = dict(zip(offsets, enrollments, strict=True))

    stats = run_due(now=T0, batch_size=2, max_batches=1)

    assert stats == RunStats(enrollments=2, steps=4, messages=0, batches=1)
    advanced = set(Enrollment.objects.filter(current_node="wait").values_list("pk", flat=True))
    assert advanced == {by_offset[5].pk, by_offset[4].pk}
    assert run_due(now=T0, batch_size=2) == RunStats(enrollments=3, steps=6, messages=0, batches=2)
    assert not Enrollment.objects.filter(current_node="entry").exists()


def test_step_due_at_21_59_runs_at_21_59_00_and_not_a_second_before(ada):
    journey = make_live_journey(linear_graph(cart_entry(), delay(amount=45, unit="minutes"), sms("sms")))
    with time_machine.travel(dt.datetime(2026, 3, 4, 21, 14, tzinfo=dt.UTC), tick=False) as clock:
        arrive(ada, "Cart Abandoned")
        enrollment = Enrollment.objects.get(journey=journey)
        assert enrollment.due_at == dt.datetime(2026, 3, 4, 21, 59, tzinfo=dt.UTC)
        clock.move_to(dt.datetime(2026, 3, 4, 21, 58, 59, tzinfo=dt.UTC))
        run_due_steps()
        assert Message.objects.count() == 0
        clock.move_to(dt.datetime(2026, 3, 4, 21, 59, 0, tzinfo=dt.UTC))
        run_due_steps()

    assert Message.objects.get().queued_at == dt.datetime(2026, 3, 4, 21, 59, tzinfo=dt.UTC)


# --- pause, resume, stop -------------------------------------------------------------------


def test_pause_holds_people_where_they_are_and_resume_continues_them(ada):
    journey = make_live_journey(linear_graph(cart_entry(), delay(), sms("sms")))
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada, "Cart Abandoned")
        lifecycle.set_status(journey, "pause", None)
        clock.move_to(T0 + 3 * HOUR)

        assert run_due() == RunStats()
        enrollment = Enrollment.objects.get()
        assert (enrollment.current_node, enrollment.state, enrollment.due_at) == ("wait", EnrollmentState.ACTIVE, T0 + HOUR)
        assert Message.objects.count() == 0

        lifecycle.set_status(journey, "resume", None)
        run_due_steps()

    assert Message.objects.get().queued_at == T0 + 3 * HOUR
    assert steps_of(enrollment) == [("entry", "entered"), ("wait", "delayed"), ("sms", "sent"), ("sms", "exited")]


def test_paused_journey_takes_no_step_when_an_event_wakes_a_wait_until_resumed(ada):
    wait = node("wait", "wait_for_event", mode="event", event="Order Completed", timeout={"amount": 2, "unit": "days"})
    graph = {"nodes": [cart_entry(), wait, sms("thanks"), sms("nudge")], "edges": [
        {"from": "entry", "port": "out", "to": "wait"},
        {"from": "wait", "port": "happened", "to": "thanks"},
        {"from": "wait", "port": "timed_out", "to": "nudge"},
    ]}
    journey = make_live_journey(graph)
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada, "Cart Abandoned")
        lifecycle.set_status(journey, "pause", None)
        clock.move_to(T0 + HOUR)
        arrive(ada, "Order Completed")
        assert Message.objects.count() == 0
        clock.move_to(T0 + 2 * HOUR)
        lifecycle.set_status(journey, "resume", None)
        run_due_steps()

    assert list(Message.objects.values_list("content", flat=True)) == [{"body": "thanks"}]


def test_stop_exits_everyone_inside_and_logs_each_exit(ada):
    journey = make_live_journey(linear_graph(cart_entry(), delay(), sms("sms")))
    other = make_customer("bob")
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada, "Cart Abandoned")
        arrive(other, "Cart Abandoned")
        clock.move_to(T0 + dt.timedelta(minutes=10))
        Journey.objects.filter(pk=journey.pk).update(status=JourneyStatus.STOPPED)

        assert exit_journey(journey.pk) == 2
        assert exit_journey(journey.pk) == 0
        clock.move_to(T0 + 2 * HOUR)
        run_due_steps()

    for enrollment in Enrollment.objects.all():
        assert (enrollment.state, enrollment.exit_reason, enrollment.exited_at, enrollment.due_at) == (
            EnrollmentState.EXITED, ExitReason.STOPPED, T0 + dt.timedelta(minutes=10), None,
        )
        assert list(EnrollmentStep.objects.filter(enrollment=enrollment).values_list("node_id", "outcome", "detail")) == [
            ("entry", "entered", ""), ("wait", "delayed", "for 1 hour"), ("wait", "exited", "journey stopped"),
        ]
    assert Message.objects.count() == 0


def test_stopping_through_the_lifecycle_exits_everyone(ada):
    journey = make_live_journey(linear_graph(cart_entry(), delay(), sms("sms")))
    with time_machine.travel(T0, tick=False):
        arrive(ada, "Cart Abandoned")
        lifecycle.set_status(journey, "stop", None)

    enrollment = Enrollment.objects.get()
    assert (enrollment.state, enrollment.exit_reason) == (EnrollmentState.EXITED, ExitReason.STOPPED)


# --- versions ------------------------------------------------------------------------------


def test_new_version_takes_new_entrants_while_existing_ones_finish_on_theirs(ada):
    journey = make_live_journey(linear_graph(cart_entry(), delay(), sms("sms", "version 1")))
    late = make_customer("late")
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada, "Cart Abandoned")
        do_update_journey(journey, JourneyInput(graph=linear_graph(cart_entry(), delay(), sms("sms", "version 2"))), None)
        v2 = lifecycle.publish(journey, None)
        clock.move_to(T0 + dt.timedelta(minutes=5))
        arrive(late, "Cart Abandoned")
        clock.move_to(T0 + 2 * HOUR)
        run_due_steps()

    first, second = Enrollment.objects.order_by("entered_at")
    assert (first.customer, first.version.number, second.customer, second.version_id) == (ada, 1, late, v2.pk)
    assert dict(Message.objects.values_list("customer__external_id", "content")) == {
        "ada": {"body": "version 1"}, "late": {"body": "version 2"},
    }
    assert set(Message.objects.values_list("journey_version_id", flat=True)) == {first.version_id, v2.pk}


# --- conversions ---------------------------------------------------------------------------


def goal_journey(**fields) -> Journey:
    fields = {"goal_event": "Order Completed", "goal_window_seconds": 24 * 3600, **fields}
    return make_live_journey(linear_graph(cart_entry(), delay(amount=3, unit="days"), sms("sms")), **fields)


def test_goal_event_within_the_window_converts_and_one_after_it_does_not(ada):
    goal_journey()
    late = make_customer("late")
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada, "Cart Abandoned")
        arrive(late, "Cart Abandoned")
        clock.move_to(T0 + DAY)  # the window's last instant
        order = arrive(ada, "Order Completed", {"revenue": "59.5"})
        clock.move_to(T0 + DAY + dt.timedelta(seconds=1))
        arrive(late, "Order Completed", {"revenue": 70})

    converted = Enrollment.objects.get(customer=ada)
    assert (converted.state, converted.exit_reason) == (EnrollmentState.EXITED, ExitReason.CONVERTED)
    assert converted.converted_at == T0 + DAY
    assert (converted.conversion_value, converted.conversion_event_id) == (Decimal("59.50"), order.pk)
    assert list(EnrollmentStep.objects.filter(enrollment=converted).values_list("node_id", "outcome", "detail"))[-2:] == [
        ("wait", "converted", "Order Completed worth 59.50 after no message"), ("wait", "exited", "goal reached"),
    ]
    missed = Enrollment.objects.get(customer=late)
    assert (missed.state, missed.converted_at, missed.conversion_value) == (EnrollmentState.ACTIVE, None, None)
    assert steps_of(missed) == [("entry", "entered"), ("wait", "delayed")]


def test_conversion_without_exit_on_conversion_keeps_them_in_the_journey(ada):
    goal_journey(exit_on_conversion=False)
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada, "Cart Abandoned")
        clock.move_to(T0 + HOUR)
        arrive(ada, "Order Completed", {"revenue": 20})
        enrollment = Enrollment.objects.get()
        assert (enrollment.state, enrollment.due_at) == (EnrollmentState.ACTIVE, T0 + 3 * DAY)
        assert enrollment.converted_at == T0 + HOUR
        clock.move_to(T0 + 3 * DAY)
        run_due_steps()

    assert steps_of(enrollment) == [
        ("entry", "entered"), ("wait", "delayed"), ("wait", "converted"), ("sms", "sent"), ("sms", "exited"),
    ]
    enrollment.refresh_from_db()
    assert (enrollment.exit_reason, enrollment.converted_at) == (ExitReason.COMPLETED, T0 + HOUR)


def test_goal_filters_decide_which_goal_events_convert(ada):
    goal_journey(goal_filters=[{"property": "revenue", "op": "gte", "value": 100}])
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada, "Cart Abandoned")
        clock.move_to(T0 + HOUR)
        arrive(ada, "Order Completed", {"revenue": 40})
        assert Enrollment.objects.get().converted_at is None
        clock.move_to(T0 + 2 * HOUR)
        arrive(ada, "Order Completed", {"revenue": 140})

    assert Enrollment.objects.get().converted_at == T0 + 2 * HOUR


def test_goal_event_after_the_journey_completed_still_converts_within_the_window(ada):
    make_live_journey(linear_graph(cart_entry(), delay()), goal_event="Order Completed", goal_window_seconds=24 * 3600)
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada, "Cart Abandoned")
        clock.move_to(T0 + HOUR)
        run_due_steps()
        clock.move_to(T0 + 5 * HOUR)
        arrive(ada, "Order Completed", {"revenue": 30})

    enrollment = Enrollment.objects.get()
    assert (enrollment.state, enrollment.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)
    assert enrollment.exited_at == T0 + HOUR
    assert (enrollment.converted_at, enrollment.conversion_value) == (T0 + 5 * HOUR, Decimal("30.00"))
    assert steps_of(enrollment) == [("entry", "entered"), ("wait", "delayed"), ("wait", "exited"), ("wait", "converted")]


def test_redelivered_goal_event_converts_once(ada):
    goal_journey(exit_on_conversion=False)
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada, "Cart Abandoned")
        clock.move_to(T0 + HOUR)
        order = arrive(ada, "Order Completed", {"revenue": 20})
        clock.move_to(T0 + 2 * HOUR)
        handle_events([order.pk])
        arrive(ada, "Order Completed", {"revenue": 90})  # a second order: the first one counts

    enrollment = Enrollment.objects.get()
    assert (enrollment.converted_at, enrollment.conversion_event_id) == (T0 + HOUR, order.pk)
    assert EnrollmentStep.objects.filter(enrollment=enrollment, outcome="converted").count() == 1


def test_conversion_marks_the_messages_it_credits_converted(ada, django_capture_on_commit_callbacks):
    graph = linear_graph(cart_entry(), sms("first"), delay(), sms("second"), delay("linger", 3, "days"))
    make_live_journey(graph, goal_event="Order Completed")
    capture = django_capture_on_commit_callbacks
    with time_machine.travel(T0, tick=False) as clock:
        with capture(execute=True):  # each message is delivered when its transaction commits
            arrive(ada, "Cart Abandoned")
        clock.move_to(T0 + HOUR)
        with capture(execute=True):
            run_due_steps()
        clock.move_to(T0 + 2 * HOUR)
        arrive(ada, "Order Completed", {"revenue": 415})

    first, second = Message.objects.order_by("id")
    assert (first.status, second.status) == (MessageStatus.CONVERTED, MessageStatus.CONVERTED)
    assert first.converted_at == second.converted_at == T0 + 2 * HOUR
    assert Enrollment.objects.get().touch_sequence == [
        {"message_id": first.pk, "channel": "sms", "at": T0.isoformat()},
        {"message_id": second.pk, "channel": "sms", "at": (T0 + HOUR).isoformat()},
    ]


# --- from event to first step --------------------------------------------------------------


def test_ingested_event_queues_the_first_message_within_the_ingest_call(
    settings, ingest_client, django_capture_on_commit_callbacks
):
    settings.CHORUS_ENGINE_INLINE = True
    make_live_journey(linear_graph(cart_entry(), sms("sms", "{{ event.sku }} is waiting")))
    make_customer("ada")

    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = ingest_client.post(
            "/api/v1/track",
            {"userId": "ada", "event": "Cart Abandoned", "properties": {"sku": "D-1"}, "messageId": "m-1"},
            format="json",
        )
        assert response.status_code == 200
        message = Message.objects.get()
        assert (message.status, message.content, message.queued_at) == (MessageStatus.QUEUED, {"body": "D-1 is waiting"}, T0)

    assert len(callbacks) == 1  # its delivery, run once the ingest committed
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


# --- idempotency of sends ------------------------------------------------------------------


def test_send_idempotency_key_names_the_enrollment_and_the_step(ada):
    journey = make_live_journey(linear_graph(cart_entry(), delay(), sms("sms")))
    with time_machine.travel(T0, tick=False) as clock:
        arrive(ada, "Cart Abandoned")
        clock.move_to(T0 + HOUR)
        run_due_steps()

    enrollment = Enrollment.objects.get(journey=journey)
    step = EnrollmentStep.objects.get(enrollment=enrollment, node_id="sms", outcome="sent")
    # entry is step 1, the delay step 2, the send step 3.
    assert Message.objects.get(pk=step.message_id).idempotency_key == f"enrollment:{enrollment.pk}:step:3"


def test_replaying_a_rolled_back_batch_writes_the_message_once(ada):
    journey = make_live_journey(linear_graph(cart_entry(), sms("sms")))
    result = enrol(journey, ada, trigger_key="event:1", context={}, now=T0)

    with transaction.atomic():
        run_due(now=T0)
        assert Message.objects.count() == 1
        transaction.set_rollback(True)  # the worker died before committing
    enrollment = Enrollment.objects.get(pk=result.enrollment_id)
    assert (enrollment.current_node, enrollment.step_seq, Message.objects.count()) == ("entry", 0, 0)

    run_due(now=T0)
    run_due(now=T0)

    message = Message.objects.get()
    assert message.idempotency_key == f"enrollment:{enrollment.pk}:step:2"
    assert list(EnrollmentStep.objects.filter(enrollment=enrollment).values_list("node_id", "outcome", "message_id")) == [
        ("entry", "entered", None), ("sms", "sent", message.pk), ("sms", "exited", None),
    ]


def test_replayed_send_finds_the_message_its_key_already_wrote(ada):
    journey = make_live_journey(linear_graph(cart_entry(), sms("sms")))
    result = enrol(journey, ada, trigger_key="event:1", context={}, now=T0)
    key = f"enrollment:{result.enrollment_id}:step:2"
    earlier = do_queue_message(QueueRequest(
        customer_id=ada.pk, channel="sms", category="marketing", idempotency_key=key, content={"body": "sms"}, at=T0,
    )).message

    run_due(now=T0)

    assert list(Message.objects.values_list("pk", flat=True)) == [earlier.pk]
    sent = EnrollmentStep.objects.get(enrollment_id=result.enrollment_id, node_id="sms", outcome="sent")
    assert sent.message_id == earlier.pk


# --- concurrency and cost ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs SELECT … FOR UPDATE SKIP LOCKED")
def test_two_workers_running_batches_at_once_advance_each_enrollment_exactly_once():
    journey = make_live_journey(linear_graph(cart_entry(), delay(amount=1, unit="days")))
    enrollments = due_enrollments(journey, 200)
    barrier = threading.Barrier(2)
    totals: list[RunStats] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            total = RunStats()
            while (stats := run_batch(now=T0, batch_size=20)).enrollments:
                total.add(stats)
            totals.append(total)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(t.enrollments for t in totals) == 200
    assert set(Enrollment.objects.values_list("current_node", "step_seq")) == {("wait", 2)}
    per_enrollment = EnrollmentStep.objects.values_list("enrollment_id", flat=True)
    assert sorted(per_enrollment) == sorted([e.pk for e in enrollments] * 2)


@pytest.mark.parametrize("size", [10, 100])
def test_a_batch_costs_the_same_queries_whatever_its_size(size, django_assert_num_queries):
    journey = make_live_journey(linear_graph(cart_entry(), delay(amount=1, unit="days")))
    due_enrollments(journey, size)

    # savepoint, claim, versions, journeys, customers, step insert, enrollment update,
    # release. SQLite splits bulk writes into chunks of 999 parameters.
    expected = 8 if connection.vendor == "postgresql" else {10: 8, 100: 11}[size]
    with django_assert_num_queries(expected):
        stats = run_batch(now=T0, batch_size=size)

    assert stats == RunStats(enrollments=size, steps=2 * size, messages=0, batches=1)
