"""What each node kind does to an enrollment: delays, splits, random splits, profile
updates, exits, waits for events and engagement, and sends that fail or are suppressed.

Most journeys here start on the trigger API, which enters and advances at once; time
moves with time-machine and due steps run as operators run them (``run_due_steps``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from channels_app.ledger import do_transition_message
from channels_app.models import Message, MessageStatus
from customers.consent import do_set_consent
from customers.models import Customer, Event, Segment
from journeys.models import Journey, ReentryPolicy
from orchestrator.engine.control import trigger
from orchestrator.engine.entry import enrol_segment
from orchestrator.engine.events import handle_events, on_message_engagement
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, ExitReason
from orchestrator.engine.runner import run_due
from orchestrator.engine.steps import bucket
from tests.api_factories import opted_in
from tests.journey_factories import linear_graph, make_live_journey, node

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 4, 15, 0, tzinfo=dt.UTC)  # Wednesday 4 March 2026, 16:00 in Paris
PARIS = ZoneInfo("Europe/Paris")
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def entry() -> dict:
    return node("entry", "entry", trigger="api")


def sms(node_id: str, body: str | None = None) -> dict:
    return node(node_id, "send", channel="sms", content={"sms": {"body": body or node_id}})


def graph(nodes: list[dict], edges: list[tuple[str, str, str]]) -> dict:
    return {"nodes": nodes, "edges": [{"from": a, "port": port, "to": b} for a, port, b in edges]}


def make_customer(external_id: str, **fields) -> Customer:
    """Opted in to marketing on every channel: these tests are about the engine, not consent."""
    fields.setdefault("phone", "+12125550100")
    return opted_in(Customer.objects.create(external_id=external_id, **fields))


def start(journey: Journey, customer: Customer, **properties) -> Enrollment:
    result = trigger(journey, customer, properties=properties, key=f"{customer.external_id}-{timezone.now().isoformat()}")
    assert result.entered, result
    return Enrollment.objects.get(pk=result.enrollment_id)


def record(customer: Customer, name: str, properties: dict | None = None, *, at: dt.datetime | None = None) -> Event:
    return Event.objects.create(
        customer=customer, name=name, properties=properties or {},
        occurred_at=at or timezone.now(), source="test",
    )


def arrive(customer: Customer, name: str, properties: dict | None = None, *, at: dt.datetime | None = None) -> Event:
    event = record(customer, name, properties, at=at)
    handle_events([event.pk])
    return event


def run_due_steps() -> None:
    call_command("run_due_steps", stdout=open("/dev/null", "w"))


def steps_of(enrollment: Enrollment) -> list[tuple[str, str, str]]:
    return list(EnrollmentStep.objects.filter(enrollment=enrollment).values_list("node_id", "outcome", "detail"))


def logged(enrollment: Enrollment) -> list[tuple[str, str, str, int | None]]:
    steps = EnrollmentStep.objects.filter(enrollment=enrollment)
    return list(steps.values_list("node_id", "outcome", "detail", "message_id"))


def bodies(customer: Customer) -> list[str]:
    return [m.content["body"] for m in Message.objects.filter(customer=customer, channel="sms").order_by("id")]


@pytest.fixture
def ada(db) -> Customer:
    return make_customer("ada", email="ada@example.com", traits={"first_name": "Ada"})


# --- delay ---------------------------------------------------------------------------------


def test_duration_delay_sleeps_exactly_that_long(ada):
    wait = node("wait", "delay", mode="duration", amount=2, unit="hours")
    journey = make_live_journey(linear_graph(entry(), wait, sms("after")))
    with time_machine.travel(T0, tick=False) as clock:
        enrollment = start(journey, ada)
        assert (enrollment.current_node, enrollment.due_at) == ("wait", T0 + 2 * HOUR)
        clock.move_to(T0 + 2 * HOUR - dt.timedelta(seconds=1))
        run_due_steps()
        assert bodies(ada) == []
        clock.move_to(T0 + 2 * HOUR)
        run_due_steps()

    assert bodies(ada) == ["after"]
    assert steps_of(enrollment) == [
        ("entry", "entered", ""),
        ("wait", "delayed", "for 2 hours"),
        ("after", "sent", "sms"),
        ("after", "exited", "end of path after out"),
    ]


def test_time_of_day_delay_waits_for_the_next_allowed_weekday_in_the_customers_zone(ada):
    delay = node("monday9", "delay", mode="time_of_day", time="09:00", weekdays=[0])
    journey = make_live_journey(linear_graph(entry(), delay, sms("monday")), reentry=ReentryPolicy.ALWAYS)
    ada.timezone = "Europe/Paris"
    ada.save()
    zoneless = make_customer("zoneless")

    with time_machine.travel(T0, tick=False):
        in_paris = start(journey, ada)
        in_utc = start(journey, zoneless)

    # Wednesday → the next Monday, 09:00 on each customer's own clock.
    assert in_paris.due_at == dt.datetime(2026, 3, 9, 9, 0, tzinfo=PARIS) == dt.datetime(2026, 3, 9, 8, 0, tzinfo=dt.UTC)
    assert in_utc.due_at == dt.datetime(2026, 3, 9, 9, 0, tzinfo=dt.UTC)
    assert steps_of(in_paris)[1] == ("monday9", "delayed", "until Mon 09:00 Europe/Paris")
    assert steps_of(in_utc)[1] == ("monday9", "delayed", "until Mon 09:00 UTC")


def test_date_trait_delay_waits_until_the_trait_date_plus_offset_at_local_time(ada):
    delay = node("before_renewal", "delay", mode="date_trait", trait="renewal_date", offset_days=-3, time="10:00")
    journey = make_live_journey(linear_graph(entry(), delay, sms("reminder")))
    ada.timezone, ada.traits = "Europe/Paris", {"renewal_date": "2026-03-20"}
    ada.save()

    with time_machine.travel(T0, tick=False):
        enrollment = start(journey, ada)

    assert enrollment.due_at == dt.datetime(2026, 3, 17, 10, 0, tzinfo=PARIS)
    assert steps_of(enrollment)[1] == (
        "before_renewal", "delayed", "until 2026-03-17 10:00 Europe/Paris (renewal_date -3 days)",
    )
    assert bodies(ada) == []


def test_date_trait_delay_with_the_trait_missing_continues_at_once_and_says_why(ada):
    delay = node("before_renewal", "delay", mode="date_trait", trait="renewal_date", offset_days=-3, time="10:00")
    journey = make_live_journey(linear_graph(entry(), delay, sms("reminder")))

    with time_machine.travel(T0, tick=False):
        enrollment = start(journey, ada)

    assert bodies(ada) == ["reminder"]
    assert steps_of(enrollment)[:3] == [
        ("entry", "entered", ""),
        ("before_renewal", "delayed", "trait 'renewal_date' is missing; continuing at once"),
        ("reminder", "sent", "sms"),
    ]


def test_loop_through_a_delay_goes_round_once_per_delay(ada):
    daily = node("daily", "delay", mode="duration", amount=1, unit="days")
    edges = [("entry", "out", "daily"), ("daily", "out", "tip"), ("tip", "out", "daily")]
    journey = make_live_journey(graph([entry(), daily, sms("tip")], edges))

    with time_machine.travel(T0, tick=False) as clock:
        enrollment = start(journey, ada)
        for day in (1, 2, 3):
            clock.move_to(T0 + day * DAY)
            run_due_steps()
            run_due_steps()

    enrollment.refresh_from_db()
    assert bodies(ada) == ["tip"] * 3
    assert (enrollment.state, enrollment.current_node, enrollment.due_at) == (EnrollmentState.ACTIVE, "daily", T0 + 4 * DAY)


def test_loop_whose_date_trait_delay_continues_at_once_exits_with_an_error_instead_of_spinning(ada):
    # A renewal reminder looping back to its delay: once the date is past the delay takes
    # no time, and the loop would send again and again within one run.
    delay = node("renewal", "delay", mode="date_trait", trait="renewal_date", offset_days=0, time="10:00")
    nodes = [entry(), delay, sms("remind")]
    edges = [("entry", "out", "renewal"), ("renewal", "out", "remind"), ("remind", "out", "renewal")]
    journey = make_live_journey(graph(nodes, edges))
    ada.traits = {"renewal_date": "2026-03-01"}
    ada.save()

    with time_machine.travel(T0, tick=False):
        enrollment = start(journey, ada)
        run_due_steps()

    enrollment.refresh_from_db()
    assert bodies(ada) == ["remind"]
    assert (enrollment.state, enrollment.exit_reason, enrollment.due_at) == (EnrollmentState.EXITED, ExitReason.ERROR, None)
    assert steps_of(enrollment) == [
        ("entry", "entered", ""),
        ("renewal", "delayed", "2026-03-01 10:00 UTC (renewal_date +0 days) has already passed; continuing at once"),
        ("remind", "sent", "sms"),
        ("renewal", "exited", "back at renewal with no time passed: a loop with no delay or wait that takes time"),
    ]


# --- split ---------------------------------------------------------------------------------


def split_journey(condition: dict, **fields) -> Journey:
    split = node("split", "split", branches=[{"port": "yes", "label": "Matches", "condition": condition}])
    nodes = [entry(), split, sms("yes_sms"), sms("else_sms")]
    edges = [("entry", "out", "split"), ("split", "yes", "yes_sms"), ("split", "else", "else_sms")]
    return make_live_journey(graph(nodes, edges), reentry=ReentryPolicy.ALWAYS, **fields)


def branch_taken(enrollment: Enrollment) -> tuple[str, str]:
    return EnrollmentStep.objects.values_list("port", "detail").get(enrollment=enrollment, node_id="split")


def test_split_on_a_trait_takes_the_matching_branch_else_the_else_port(ada):
    gold = {"match": "all", "conditions": [{"type": "trait", "trait": "tier", "operator": "eq", "value": "gold"}]}
    journey = split_journey(gold)
    vip = make_customer("vip", traits={"tier": "gold"})

    assert branch_taken(start(journey, vip)) == ("yes", "Matches")
    assert branch_taken(start(journey, ada)) == ("else", "else")
    assert (bodies(vip), bodies(ada)) == (["yes_sms"], ["else_sms"])


def test_split_on_an_event_aggregate_counts_the_customers_events(ada):
    repeat = {"match": "all", "conditions": [
        {"type": "event", "event": "Order Completed", "aggregate": "count", "operator": "gte", "value": 2},
    ]}
    journey = split_journey(repeat)
    loyal = make_customer("loyal")
    with time_machine.travel(T0, tick=False):
        for customer, orders in ((loyal, 2), (ada, 1)):
            for _ in range(orders):
                record(customer, "Order Completed", at=T0 - DAY)

        assert branch_taken(start(journey, loyal)) == ("yes", "Matches")
        assert branch_taken(start(journey, ada)) == ("else", "else")


def test_split_on_a_saved_segment_takes_its_branch_for_members_only(ada):
    segment = Segment.objects.create(
        name="Parisians", definition={"match": "all", "conditions": [
            {"type": "field", "field": "timezone", "operator": "eq", "value": "Europe/Paris"},
        ]},
    )
    journey = split_journey({"segment_id": segment.pk})
    parisian = make_customer("parisian", timezone="Europe/Paris")

    assert branch_taken(start(journey, parisian)) == ("yes", "Matches")
    assert branch_taken(start(journey, ada)) == ("else", "else")


def test_split_on_a_deleted_segment_takes_the_else_port(ada):
    segment = Segment.objects.create(name="Gone", definition={"match": "all", "conditions": []})
    journey = split_journey({"segment_id": segment.pk})
    segment.delete()

    assert branch_taken(start(journey, ada)) == ("else", "else")


# --- random split --------------------------------------------------------------------------


def test_random_split_is_deterministic_and_roughly_proportional():
    segment = Segment.objects.create(name="Everyone", definition={"match": "all", "conditions": []})
    split = node("ab", "random_split", branches=[{"port": "a", "weight": 70}, {"port": "b", "weight": 30}])
    # Both branches end there: the step log says which one each customer took.
    nodes = [node("entry", "entry", trigger="segment", segment_id=segment.pk), split]
    edges = [("entry", "out", "ab")]
    journey = make_live_journey(graph(nodes, edges), reentry=ReentryPolicy.COOLDOWN, reentry_cooldown_seconds=60)
    Customer.objects.bulk_create(Customer(external_id=f"c{n:03d}") for n in range(400))

    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(2):  # everyone passes twice
            assert enrol_segment(journey, now=timezone.now()) == 400
            run_due()
            clock.shift(dt.timedelta(minutes=2))

    taken = list(EnrollmentStep.objects.filter(node_id="ab", outcome="branch").values_list("enrollment__customer_id", "port"))
    per_customer = {customer: {port for c, port in taken if c == customer} for customer, _ in taken}
    assert len(taken) == 800
    assert all(len(ports) == 1 for ports in per_customer.values())  # never moved to another branch
    first_pass = Counter(next(iter(ports)) for ports in per_customer.values())
    assert 240 <= first_pass["a"] <= 320 and first_pass["a"] + first_pass["b"] == 400
    assert {c: ports.pop() for c, ports in per_customer.items()} == {
        c: "a" if bucket(journey.pk, "ab", c, buckets=100) < 70 else "b" for c in per_customer
    }


# --- update profile ------------------------------------------------------------------------


def test_update_profile_sets_the_trait_and_keeps_the_others(ada):
    update = node("upgrade", "update_profile", trait="plan", value={"name": "pro", "seats": 3})
    journey = make_live_journey(linear_graph(entry(), update))
    ada.traits = {"first_name": "Ada", "plan": "free"}
    ada.save()

    enrollment = start(journey, ada)

    ada.refresh_from_db()
    assert ada.traits == {"first_name": "Ada", "plan": {"name": "pro", "seats": 3}}
    assert steps_of(enrollment)[1] == ("upgrade", "updated", "set plan = {'name': 'pro', 'seats': 3}")


def test_a_split_after_update_profile_sees_the_new_value(ada):
    update = node("upgrade", "update_profile", trait="plan", value="pro")
    pro = {"match": "all", "conditions": [{"type": "trait", "trait": "plan", "operator": "eq", "value": "pro"}]}
    split = node("split", "split", branches=[{"port": "pro", "condition": pro}])
    nodes = [entry(), update, split, sms("pro_sms"), sms("free_sms")]
    edges = [("entry", "out", "upgrade"), ("upgrade", "out", "split"),
             ("split", "pro", "pro_sms"), ("split", "else", "free_sms")]
    journey = make_live_journey(graph(nodes, edges))

    start(journey, ada)

    assert bodies(ada) == ["pro_sms"]


# --- exit and the end of a path -------------------------------------------------------------


def test_exit_node_ends_the_journey_as_completed(ada):
    journey = make_live_journey(linear_graph(entry(), node("done", "exit"), ))

    with time_machine.travel(T0, tick=False):
        enrollment = start(journey, ada)

    assert steps_of(enrollment) == [("entry", "entered", ""), ("done", "exited", "exit node")]
    assert (enrollment.state, enrollment.exit_reason, enrollment.exited_at, enrollment.due_at) == (
        EnrollmentState.EXITED, ExitReason.COMPLETED, T0, None,
    )


def test_path_ending_at_an_unconnected_port_exits_completed_naming_the_port(ada):
    gold = {"match": "all", "conditions": [{"type": "trait", "trait": "tier", "operator": "eq", "value": "gold"}]}
    split = node("split", "split", branches=[{"port": "gold", "condition": gold}])
    edges = [("entry", "out", "split"), ("split", "gold", "gold_sms")]
    journey = make_live_journey(graph([entry(), split, sms("gold_sms")], edges))

    enrollment = start(journey, ada)

    assert steps_of(enrollment) == [
        ("entry", "entered", ""), ("split", "branch", "else"), ("split", "exited", "end of path after else"),
    ]
    assert (enrollment.state, enrollment.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)
    assert Message.objects.count() == 0


# --- wait for an event ---------------------------------------------------------------------


def order_wait_journey() -> Journey:
    wait = node("wait", "wait_for_event", mode="event", event="Order Completed",
                filters=[{"property": "total", "op": "gte", "value": 50}], timeout={"amount": 2, "unit": "days"})
    nodes = [entry(), wait, sms("thanks"), sms("nudge")]
    edges = [("entry", "out", "wait"), ("wait", "happened", "thanks"), ("wait", "timed_out", "nudge")]
    return make_live_journey(graph(nodes, edges))


def test_wait_resumes_on_happened_as_soon_as_a_matching_event_arrives(ada):
    journey = order_wait_journey()
    with time_machine.travel(T0, tick=False) as clock:
        enrollment = start(journey, ada)
        enrollment.refresh_from_db()
        assert (enrollment.state, enrollment.waiting_for, enrollment.due_at) == (
            EnrollmentState.WAITING, "Order Completed", T0 + 2 * DAY,
        )
        clock.move_to(T0 + 3 * HOUR)
        arrive(ada, "Order Completed", {"total": 80})

    enrollment.refresh_from_db()
    assert bodies(ada) == ["thanks"]
    assert steps_of(enrollment) == [
        ("entry", "entered", ""),
        ("wait", "waiting", "for Order Completed until 2026-03-06 15:00 UTC"),
        ("wait", "happened", "Order Completed at 2026-03-04 18:00 UTC"),
        ("thanks", "sent", "sms"),
        ("thanks", "exited", "end of path after out"),
    ]
    assert (enrollment.waiting_for, enrollment.wait_message_id) == ("", None)


def test_wait_ignores_events_failing_its_filters_and_times_out(ada):
    journey = order_wait_journey()
    with time_machine.travel(T0, tick=False) as clock:
        enrollment = start(journey, ada)
        clock.move_to(T0 + HOUR)
        arrive(ada, "Order Completed", {"total": 20})
        arrive(ada, "Cart Abandoned", {"total": 90})
        enrollment.refresh_from_db()
        assert (enrollment.state, enrollment.due_at) == (EnrollmentState.WAITING, T0 + 2 * DAY)
        clock.move_to(T0 + 2 * DAY - dt.timedelta(seconds=1))
        run_due_steps()
        assert bodies(ada) == []
        clock.move_to(T0 + 2 * DAY)
        run_due_steps()

    assert bodies(ada) == ["nudge"]
    assert [s[:2] for s in steps_of(enrollment)][2:] == [("wait", "timed_out"), ("nudge", "sent"), ("nudge", "exited")]


def test_wait_does_not_count_an_event_that_happened_before_it_started(ada):
    journey = order_wait_journey()
    with time_machine.travel(T0, tick=False) as clock:
        enrollment = start(journey, ada)
        clock.move_to(T0 + HOUR)
        # Delivered late: it happened a minute before the customer reached the wait.
        arrive(ada, "Order Completed", {"total": 80}, at=T0 - dt.timedelta(minutes=1))
        enrollment.refresh_from_db()
        assert (enrollment.state, enrollment.due_at, bodies(ada)) == (EnrollmentState.WAITING, T0 + 2 * DAY, [])
        clock.move_to(T0 + 2 * DAY)
        run_due_steps()

    assert bodies(ada) == ["nudge"]


# --- wait for engagement -------------------------------------------------------------------


def engagement_journey(engagement: str = "opened") -> Journey:
    email = node("email", "send", channel="email", content={"email": {"subject": "New in", "html": "<p>Look</p>"}})
    wait = node("wait", "wait_for_event", mode="engagement", engagement=engagement, timeout={"amount": 1, "unit": "days"})
    nodes = [entry(), email, wait, sms("engaged"), sms("ignored")]
    edges = [("entry", "out", "email"), ("email", "out", "wait"),
             ("wait", "happened", "engaged"), ("wait", "timed_out", "ignored")]
    return make_live_journey(graph(nodes, edges))


def test_engagement_wait_is_woken_by_the_open_receipt(ada, django_capture_on_commit_callbacks):
    journey = engagement_journey("opened")
    with time_machine.travel(T0, tick=False) as clock, django_capture_on_commit_callbacks(execute=True):
        enrollment = start(journey, ada)
    email = Message.objects.get(channel="email")
    enrollment.refresh_from_db()
    assert (email.status, enrollment.state) == (MessageStatus.SENT, EnrollmentState.WAITING)
    assert enrollment.wait_message_id == email.pk

    with time_machine.travel(T0 + 2 * HOUR, tick=False):
        do_transition_message(email.pk, MessageStatus.OPENED)
        on_message_engagement(email.pk)

    enrollment.refresh_from_db()
    assert bodies(ada) == ["engaged"]
    assert steps_of(enrollment)[2:4] == [
        ("wait", "waiting", "for opened of the previous message until 2026-03-05 15:00 UTC"),
        ("wait", "happened", "message opened"),
    ]
    del clock


def test_engagement_wait_finds_an_open_at_timeout_that_did_not_wake_it(ada, django_capture_on_commit_callbacks):
    journey = engagement_journey("opened")
    with time_machine.travel(T0, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            enrollment = start(journey, ada)
        email = Message.objects.get(channel="email")
        clock.move_to(T0 + HOUR)
        do_transition_message(email.pk, MessageStatus.OPENED)  # the receipt, without the wake-up
        enrollment.refresh_from_db()
        assert (enrollment.state, enrollment.due_at) == (EnrollmentState.WAITING, T0 + DAY)
        clock.move_to(T0 + DAY)
        run_due_steps()

    assert bodies(ada) == ["engaged"]
    assert steps_of(enrollment)[3] == ("wait", "happened", "message opened")


def test_engagement_wait_reached_after_the_open_resumes_at_once(ada, django_capture_on_commit_callbacks):
    # Opened during the delay before the wait: sitting out the whole timeout would only
    # make the "opened" branch a day late.
    email = node("email", "send", channel="email", content={"email": {"subject": "New in", "html": "<p>Look</p>"}})
    wait = node("wait", "wait_for_event", mode="engagement", engagement="opened", timeout={"amount": 1, "unit": "days"})
    pause = node("pause", "delay", mode="duration", amount=1, unit="hours")
    nodes = [entry(), email, pause, wait, sms("engaged"), sms("ignored")]
    edges = [("entry", "out", "email"), ("email", "out", "pause"), ("pause", "out", "wait"),
             ("wait", "happened", "engaged"), ("wait", "timed_out", "ignored")]
    journey = make_live_journey(graph(nodes, edges))
    with time_machine.travel(T0, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            enrollment = start(journey, ada)
        clock.move_to(T0 + dt.timedelta(minutes=20))
        do_transition_message(Message.objects.get(channel="email").pk, MessageStatus.OPENED)
        on_message_engagement(Message.objects.get(channel="email").pk)  # nobody waits yet
        clock.move_to(T0 + HOUR)
        run_due_steps()

    assert bodies(ada) == ["engaged"]
    assert Message.objects.get(channel="sms").queued_at == T0 + HOUR
    assert steps_of(enrollment)[3:5] == [("wait", "happened", "message opened before the wait"), ("engaged", "sent", "sms")]
    enrollment.refresh_from_db()
    assert "wait" not in enrollment.context


def test_click_wait_is_woken_by_the_click_receipt(ada, django_capture_on_commit_callbacks):
    journey = engagement_journey("clicked")
    with time_machine.travel(T0, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            enrollment = start(journey, ada)
        email = Message.objects.get(channel="email")
        clock.move_to(T0 + HOUR)
        do_transition_message(email.pk, MessageStatus.CLICKED)
        on_message_engagement(email.pk)

    assert bodies(ada) == ["engaged"]
    assert steps_of(enrollment)[3] == ("wait", "happened", "message clicked")


def test_click_wait_is_not_woken_by_an_open_and_times_out(ada, django_capture_on_commit_callbacks):
    journey = engagement_journey("clicked")
    with time_machine.travel(T0, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            enrollment = start(journey, ada)
        email = Message.objects.get(channel="email")
        clock.move_to(T0 + HOUR)
        do_transition_message(email.pk, MessageStatus.OPENED)
        on_message_engagement(email.pk)
        enrollment.refresh_from_db()
        assert (enrollment.state, bodies(ada)) == (EnrollmentState.WAITING, [])
        clock.move_to(T0 + DAY)
        run_due_steps()

    assert bodies(ada) == ["ignored"]


# --- sends that do not go ------------------------------------------------------------------


def test_liquid_failure_fails_that_send_with_the_reason_and_the_journey_continues(ada):
    broken = sms("broken", "Hi {{ customer.nickname }}")
    journey = make_live_journey(linear_graph(entry(), broken, sms("fine", "Hi {{ customer.first_name }}")))

    enrollment = start(journey, ada)

    assert bodies(ada) == ["Hi Ada"]
    assert logged(enrollment)[1] == (
        "broken", "failed", "sms: sms.body: undefined variable 'customer.nickname' (line 1)", None,
    )
    assert steps_of(enrollment)[2][:2] == ("fine", "sent")


def test_send_blocked_by_consent_is_suppressed_with_the_reason_and_recorded(ada):
    do_set_consent(ada, "sms", "marketing", "unsubscribed", source="test")
    journey = make_live_journey(linear_graph(entry(), sms("promo"), sms("after")))

    enrollment = start(journey, ada)

    promo, after = Message.objects.filter(customer=ada).order_by("id")
    assert (promo.status, after.status) == (MessageStatus.SUPPRESSED, MessageStatus.SUPPRESSED)
    assert logged(enrollment)[1:3] == [
        ("promo", "suppressed", "sms: marketing SMS: the customer unsubscribed", promo.pk),
        ("after", "suppressed", "sms: marketing SMS: the customer unsubscribed", after.pk),
    ]
    enrollment.refresh_from_db()
    assert "touches" not in enrollment.context
