"""The frequency governor on the send path: the engine defers, skips or exits as the policy
and the send node say, and every refusal leaves a GovernorVerdict behind.

Each test writes exactly the policy rows it needs (conftest starts every test with none)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine

from channels_app.models import Message, MessageTransition
from customers.enums import Channel
from customers.models import Consent, ContactPoint, Customer
from orchestrator.engine.entry import enrol
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, ExitReason
from orchestrator.engine.runner import RunStats, run_due
from orchestrator.engine.simulator import parse_simulation, simulate
from orchestrator.governor.loading import forget_policy
from orchestrator.governor.models import (
    FrequencyRule,
    GovernorSettings,
    GovernorVerdict,
    QuietHoursRule,
)
from tests.api_factories import opted_in
from tests.journey_factories import linear_graph, make_live_journey, node

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
EVENING = dt.datetime(2026, 11, 24, 22, 30, tzinfo=NEW_YORK)  # 03:30 UTC on the 25th
NEXT_MORNING = dt.datetime(2026, 11, 25, 8, 0, tzinfo=NEW_YORK)  # 13:00 UTC
MORNING = dt.datetime(2026, 11, 24, 10, 0, tzinfo=NEW_YORK)
NOON = dt.datetime(2026, 11, 24, 12, 0, tzinfo=NEW_YORK)
DAY = dt.timedelta(hours=24)

QUIET_REASON = "quiet hours for sms (21:00–08:00 America/New_York) until 08:00"
QUIET_COUNTS = {"start": "21:00", "end": "08:00", "timezone": "America/New_York"}
CAP_NAME = "one marketing message a day"
CAP_REASON = f"cap '{CAP_NAME}': 1 of 1 in the last 24 h"
CAP_COUNTS = {"count": 1, "max": 1, "window_minutes": 1440}


# --- policy ------------------------------------------------------------------------------


def set_policy(*, cap: int | None = None, cap_window_minutes: int = 24 * 60, sms_quiet_hours: bool = False,
               horizon_hours: int = 72) -> None:
    """Exactly these rules, no spacing, then the cached policy forgotten."""
    FrequencyRule.objects.all().delete()
    QuietHoursRule.objects.all().delete()
    GovernorSettings.objects.update_or_create(
        pk=GovernorSettings.SINGLETON_PK,
        defaults={"min_spacing_minutes": 0, "defer_horizon_hours": horizon_hours, "fallback_timezone": "UTC"},
    )
    if cap is not None:
        FrequencyRule.objects.create(name=CAP_NAME, scope="all", max_count=cap, window_minutes=cap_window_minutes)
    if sms_quiet_hours:
        QuietHoursRule.objects.create(channel=Channel.SMS, start=dt.time(21, 0), end=dt.time(8, 0))
    forget_policy()


# --- journeys and people -----------------------------------------------------------------


def sms_journey(name: str, *, on_cap: str | None = None, then_update: bool = False, **fields):
    """entry (api) → sms [→ update profile "after"]."""
    config = {"channel": "sms", "content": {"sms": {"body": f"{name} says hello"}}}
    if on_cap is not None:
        config["on_cap"] = on_cap
    nodes = [node("entry", "entry", trigger="api"), node("sms", "send", **config)]
    if then_update:
        nodes.append(node("after", "update_profile", trait="went_on", value=True))
    return make_live_journey(linear_graph(*nodes), name=name, **fields)


def new_yorker(external_id: str = "maya") -> Customer:
    person = Customer.objects.create(external_id=external_id, phone="+12125550117", timezone="America/New_York")
    ContactPoint.objects.create(customer=person, channel=Channel.SMS, address="+12125550117")
    return opted_in(person)  # to marketing on every channel


def enter(journey, person, at: dt.datetime) -> Enrollment:
    with time_machine.travel(at, tick=False):
        result = enrol(journey, person, trigger_key=f"api:{journey.pk}:{at.isoformat()}", context={}, now=at)
    assert result.entered, result
    return Enrollment.objects.get(pk=result.enrollment_id)


def run_at(moment: dt.datetime) -> RunStats:
    with time_machine.travel(moment, tick=False):
        return run_due(now=moment)


def steps_of(enrollment: Enrollment) -> list[tuple[str, str, str]]:
    return list(EnrollmentStep.objects.filter(enrollment=enrollment).order_by("id").values_list("node_id", "outcome", "detail"))


def verdict_row(verdict: GovernorVerdict) -> dict:
    fields = ("decision", "rule", "reason", "until", "counts", "channel", "category", "journey_id",
              "enrollment_id", "node_id", "message_id", "at")
    return {f: getattr(verdict, f) for f in fields}


def sent_first_message(person: Customer, at: dt.datetime = MORNING) -> Message:
    """A first marketing SMS, sent by its own journey, that fills a cap of one."""
    first = enter(sms_journey("First"), person, at)
    run_at(at)
    message = Message.objects.get(enrollment_id=first.pk)
    assert (message.status, message.queued_at) == ("queued", at)
    return message


# --- 1. quiet hours ----------------------------------------------------------------------


def test_a_marketing_sms_due_in_quiet_hours_waits_at_its_node_until_they_end_and_then_goes():
    set_policy(sms_quiet_hours=True)
    journey = sms_journey("Evening offer")
    enrollment = enter(journey, new_yorker(), EVENING)

    run_at(EVENING)

    assert Message.objects.count() == 0
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.current_node, enrollment.phase, enrollment.due_at) == (
        EnrollmentState.ACTIVE, "sms", "arrive", NEXT_MORNING
    )
    assert steps_of(enrollment) == [("entry", "entered", ""), ("sms", "deferred", f"sms: {QUIET_REASON}")]
    assert verdict_row(GovernorVerdict.objects.get()) == {
        "decision": "defer", "rule": "quiet hours sms", "reason": QUIET_REASON, "until": NEXT_MORNING,
        "counts": QUIET_COUNTS, "channel": "sms", "category": "marketing", "journey_id": journey.pk,
        "enrollment_id": enrollment.pk, "node_id": "sms", "message_id": None, "at": EVENING,
    }
    # Not a minute early.
    assert run_at(NEXT_MORNING - dt.timedelta(minutes=1)).enrollments == 0

    assert run_at(NEXT_MORNING).messages == 1

    message = Message.objects.get()
    assert (message.status, message.queued_at, message.enrollment_id) == ("queued", NEXT_MORNING, enrollment.pk)
    # A new step number, hence a new idempotency key: the deferral wrote no message to collide with.
    assert message.idempotency_key == f"enrollment:{enrollment.pk}:step:3"
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)
    assert steps_of(enrollment)[2] == ("sms", "sent", "sms")
    assert GovernorVerdict.objects.count() == 1  # the send that went records nothing


@pytest.mark.parametrize("on_cap", ["skip", "exit"])
def test_quiet_hours_defer_even_on_a_node_that_skips_or_exits_on_caps(on_cap):
    set_policy(sms_quiet_hours=True)
    enrollment = enter(sms_journey("Evening offer", on_cap=on_cap, then_update=True), new_yorker(), EVENING)

    run_at(EVENING)

    assert Message.objects.count() == 0
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.current_node, enrollment.phase, enrollment.due_at) == (
        EnrollmentState.ACTIVE, "sms", "arrive", NEXT_MORNING
    )
    assert steps_of(enrollment)[-1] == ("sms", "deferred", f"sms: {QUIET_REASON}")
    assert list(GovernorVerdict.objects.values_list("decision", "rule", "until")) == [
        ("defer", "quiet hours sms", NEXT_MORNING)
    ]


# --- 2. caps and the node's on_cap ---------------------------------------------------------


def test_a_capped_send_on_a_deferring_node_waits_until_the_first_message_leaves_the_window():
    set_policy(cap=1)
    person = new_yorker()
    first = sent_first_message(person)
    second_journey = sms_journey("Second", on_cap="defer")
    second = enter(second_journey, person, NOON)

    run_at(NOON)

    assert Message.objects.count() == 1
    second.refresh_from_db()
    assert (second.state, second.current_node, second.phase, second.due_at) == (
        EnrollmentState.ACTIVE, "sms", "arrive", first.queued_at + DAY
    )
    assert steps_of(second)[-1] == ("sms", "deferred", f"sms: {CAP_REASON}")
    assert verdict_row(GovernorVerdict.objects.get()) == {
        "decision": "defer", "rule": CAP_NAME, "reason": CAP_REASON, "until": MORNING + DAY,
        "counts": CAP_COUNTS, "channel": "sms", "category": "marketing", "journey_id": second_journey.pk,
        "enrollment_id": second.pk, "node_id": "sms", "message_id": None, "at": NOON,
    }

    assert run_at(MORNING + DAY).messages == 1

    assert Message.objects.get(enrollment_id=second.pk).queued_at == MORNING + DAY
    second.refresh_from_db()
    assert (second.state, second.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)


def test_a_send_without_on_cap_defers_under_a_cap():
    set_policy(cap=1)
    person = new_yorker()
    sent_first_message(person)
    second = enter(sms_journey("Second"), person, NOON)

    run_at(NOON)

    second.refresh_from_db()
    assert (second.current_node, second.due_at) == ("sms", MORNING + DAY)
    assert steps_of(second)[-1] == ("sms", "deferred", f"sms: {CAP_REASON}")


def test_a_capped_send_on_a_skipping_node_is_recorded_as_suppressed_and_the_journey_goes_on():
    set_policy(cap=1)
    person = new_yorker()
    sent_first_message(person)
    second_journey = sms_journey("Second", on_cap="skip", then_update=True)
    second = enter(second_journey, person, NOON)

    run_at(NOON)

    suppressed = Message.objects.get(enrollment_id=second.pk)
    assert (suppressed.status, suppressed.suppressed_at, suppressed.node_id) == ("suppressed", NOON, "sms")
    assert list(MessageTransition.objects.filter(message=suppressed).order_by("id").values_list("to_status", "detail")) == [
        ("queued", ""), ("suppressed", CAP_REASON)
    ]
    second.refresh_from_db()
    assert (second.state, second.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)
    assert steps_of(second) == [
        ("entry", "entered", ""),
        ("sms", "suppressed", f"sms: {CAP_REASON}"),
        ("after", "updated", "set went_on = True"),
        ("after", "exited", "end of path after out"),
    ]
    assert EnrollmentStep.objects.get(enrollment=second, node_id="sms").message_id == suppressed.pk
    person.refresh_from_db()
    assert person.traits == {"went_on": True}
    assert verdict_row(GovernorVerdict.objects.get()) == {
        "decision": "suppress", "rule": CAP_NAME, "reason": CAP_REASON, "until": None,
        "counts": CAP_COUNTS, "channel": "sms", "category": "marketing", "journey_id": second_journey.pk,
        "enrollment_id": second.pk, "node_id": "sms", "message_id": suppressed.pk, "at": NOON,
    }


def test_a_capped_send_on_an_exiting_node_ends_the_enrollment_as_capped():
    set_policy(cap=1)
    person = new_yorker()
    sent_first_message(person)
    second = enter(sms_journey("Second", on_cap="exit", then_update=True), person, NOON)

    run_at(NOON)

    second.refresh_from_db()
    assert (second.state, second.exit_reason, second.exited_at, second.due_at) == (
        EnrollmentState.EXITED, ExitReason.CAPPED, NOON, None
    )
    assert steps_of(second) == [("entry", "entered", ""), ("sms", "suppressed", f"sms: {CAP_REASON}")]
    assert Message.objects.get(enrollment_id=second.pk).status == "suppressed"
    person.refresh_from_db()
    assert person.traits == {}  # the node after the send never ran
    assert list(GovernorVerdict.objects.values_list("decision", "rule", "enrollment_id")) == [
        ("suppress", CAP_NAME, second.pk)
    ]


# --- 3. transactional --------------------------------------------------------------------


def test_transactional_journeys_send_under_a_full_cap_and_in_quiet_hours():
    set_policy(cap=1, sms_quiet_hours=True)
    person = new_yorker()
    sent_first_message(person, at=MORNING)  # the cap's one slot is taken
    receipt = enter(sms_journey("Receipt", category="transactional", on_cap="defer"), person, EVENING)

    assert run_at(EVENING).messages == 1

    message = Message.objects.get(enrollment_id=receipt.pk)
    assert (message.category, message.status, message.queued_at) == ("transactional", "queued", EVENING)
    receipt.refresh_from_db()
    assert (receipt.state, receipt.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)
    assert GovernorVerdict.objects.count() == 0


# --- 4. priority -------------------------------------------------------------------------


@pytest.mark.parametrize("created_first", ["high", "low"])
def test_the_higher_priority_journey_takes_the_last_slot_whatever_the_enrollment_order(created_first):
    set_policy(cap=1)
    person = new_yorker()
    journeys = {"high": sms_journey("Priority 8", priority=8), "low": sms_journey("Priority 3", priority=3)}
    order = [created_first, "low" if created_first == "high" else "high"]
    enrollments = {which: enter(journeys[which], person, NOON) for which in order}
    assert enrollments[order[0]].pk < enrollments[order[1]].pk

    stats = run_at(NOON)

    assert (stats.enrollments, stats.messages) == (2, 1)
    assert list(Message.objects.values_list("journey_id", "status")) == [(journeys["high"].pk, "queued")]
    high, low = (Enrollment.objects.get(pk=enrollments[w].pk) for w in ("high", "low"))
    assert (high.state, high.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)
    assert (low.state, low.current_node, low.phase, low.due_at) == (EnrollmentState.ACTIVE, "sms", "arrive", NOON + DAY)
    assert list(GovernorVerdict.objects.values_list("journey_id", "decision", "rule")) == [
        (journeys["low"].pk, "defer", CAP_NAME)
    ]


# --- 5. the defer horizon ----------------------------------------------------------------


def test_a_deferral_beyond_the_horizon_suppresses_instead():
    set_policy(cap=1, cap_window_minutes=7 * 24 * 60, horizon_hours=2)
    person = new_yorker()
    sent_first_message(person)
    second = enter(sms_journey("Second", on_cap="defer", then_update=True), person, NOON)

    run_at(NOON)

    reason = (
        f"cap '{CAP_NAME}': 1 of 1 in the last 7 days; "
        "next allowed 2026-12-01 10:00 America/New_York, beyond the 2 h defer horizon"
    )
    suppressed = Message.objects.get(enrollment_id=second.pk)
    assert suppressed.status == "suppressed"
    second.refresh_from_db()
    # A deferring node that cannot wait goes on, as a skip would: it is not a cap exit.
    assert (second.state, second.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)
    assert steps_of(second)[1] == ("sms", "suppressed", f"sms: {reason}")
    assert list(GovernorVerdict.objects.values_list("decision", "rule", "reason", "until", "message_id")) == [
        ("suppress", CAP_NAME, reason, None, suppressed.pk)
    ]


# --- 6. consent ----------------------------------------------------------------------------


def test_a_consent_suppression_stores_a_verdict_linked_to_the_suppressed_message():
    set_policy()  # no governor rules at all: consent is checked regardless
    person = new_yorker()
    Consent.objects.filter(customer=person, channel=Channel.SMS, category="marketing").update(status="unsubscribed")
    journey = sms_journey("Offer")
    enrollment = enter(journey, person, NOON)

    run_at(NOON)

    suppressed = Message.objects.get()
    assert suppressed.status == "suppressed"
    assert verdict_row(GovernorVerdict.objects.get()) == {
        "decision": "suppress", "rule": "consent", "reason": "marketing SMS: the customer unsubscribed", "until": None,
        "counts": {}, "channel": "sms", "category": "marketing", "journey_id": journey.pk,
        "enrollment_id": enrollment.pk, "node_id": "sms", "message_id": suppressed.pk, "at": NOON,
    }


# --- 7. the simulator ----------------------------------------------------------------------


def test_the_simulator_timeline_shows_the_quiet_hours_deferral_and_the_morning_send():
    set_policy(sms_quiet_hours=True)
    journey = sms_journey("Evening offer")
    sim = parse_simulation(
        {"customer": {"inline": {"timezone": "America/New_York", "phone": "+12125550117"}},
         "start": EVENING.isoformat(), "until": "+1d"},
    )

    result = simulate(journey, sim)

    sends = [(e["at"], e["node_id"], e["outcome"], e["detail"]) for e in result.timeline if e.get("node_id") == "sms"]
    assert sends == [
        (EVENING, "sms", "deferred", f"sms: {QUIET_REASON}"),
        (NEXT_MORNING, "sms", "sent", "sms"),
        (NEXT_MORNING, "sms", "exited", "end of path after out"),
    ]
    assert result.summary["exit_reason"] == ExitReason.COMPLETED
    # Rolled back: neither the verdict nor the message stays.
    assert (GovernorVerdict.objects.count(), Message.objects.count()) == (0, 0)



# --- a cap that frees up inside quiet hours ---------------------------------------------------


def test_a_skipping_node_skips_when_a_cap_holds_the_send_even_if_the_cap_frees_up_in_quiet_hours():
    set_policy(cap=1, sms_quiet_hours=True)
    person = new_yorker()
    person.email = "maya@example.com"
    person.save()
    email = make_live_journey(
        linear_graph(
            node("entry", "entry", trigger="api"),
            node("mail", "send", channel="email", content={"email": {"subject": "Hi", "html": "<p>Hi</p>"}}),
        ),
        name="Late email",
    )
    late = dt.datetime(2026, 11, 24, 22, 0, tzinfo=NEW_YORK)  # email: no quiet hours; fills the cap until 22:00 tomorrow
    enter(email, person, late)
    run_at(late)
    evening = dt.datetime(2026, 11, 25, 20, 0, tzinfo=NEW_YORK)  # outside quiet hours: only the cap holds it
    second = enter(sms_journey("Second", on_cap="skip", then_update=True), person, evening)

    run_at(evening)

    second.refresh_from_db()
    assert (second.state, second.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED)
    assert Message.objects.get(enrollment_id=second.pk).status == "suppressed"
