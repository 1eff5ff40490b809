"""Channel affinity and send-time optimisation wired into Chorus: the stored state follows the
ledger and the event stream, a rebuild from scratch agrees with it, best-channel sends and
best-time delays use it, and the profile and the simulator say why.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from channels_app.ledger import (
    QueueRequest,
    claim_many_for_sending,
    do_queue_message,
    do_transition_message,
    record_sent_many,
)
from channels_app.models import Message
from customers.consent import do_set_consent
from customers.hooks import StoredEvents, events_stored
from customers.models import ActivityProfile, ChannelAffinity, Customer, Event
from journeys.nodes import NODE_KINDS, NodeKind
from orchestrator.engine.control import trigger
from orchestrator.engine.models import Enrollment, EnrollmentStep
from orchestrator.engine.simulator import parse_simulation, simulate
from orchestrator.intelligence import hooks, store
from orchestrator.intelligence.affinity import decayed
from orchestrator.intelligence.models import PopulationModel
from orchestrator.intelligence.recompute import recompute_all
from orchestrator.intelligence.sendtime import hour_of_week
from orchestrator.roles import Role
from tests.api_factories import message, opted_in
from tests.journey_factories import linear_graph, make_live_journey, node

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 4, 15, 0, tzinfo=dt.UTC)  # Wednesday, 10:00 in New York (EST)
NEW_YORK = ZoneInfo("America/New_York")
HOUR, DAY, MINUTE = dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(minutes=1)


@pytest.fixture(autouse=True)
def fresh_population():
    store.forget_population()
    yield
    store.forget_population()


@pytest.fixture
def ada(db) -> Customer:
    customer = Customer.objects.create(
        external_id="ada", email="ada@example.com", phone="+12125550100", timezone="America/New_York",
    )
    return opted_in(customer)


def send_through_ledger(customer, channel, sent_at, *, category="marketing", key=None) -> int:
    request = QueueRequest(
        customer_id=customer.pk, channel=channel, category=category, at=sent_at - MINUTE,
        idempotency_key=key or f"{customer.pk}-{channel}-{sent_at.isoformat()}",
    )
    pk = do_queue_message(request).message.pk
    claim_many_for_sending([pk], at=sent_at - MINUTE)
    record_sent_many([(pk, "outbox", f"p-{pk}")], at=sent_at)
    return pk


def row(customer, channel) -> ChannelAffinity:
    return ChannelAffinity.objects.get(customer=customer, channel=channel)


def history(customer, channel, *, sends, clicks, start=T0 - 30 * DAY):
    """Affinity evidence straight into the store: `sends` sends, the first `clicks` clicked."""
    for i in range(sends):
        at = start + i * HOUR
        store.record_send(customer.pk, channel, at)
        if i < clicks:
            store.record_engagement(customer.pk, channel, sent_at=at, at=at + MINUTE)


def evenings(customer, *, local_hour: int, weeks: int = 6):
    """Activity at `local_hour` New York time on the Wednesdays before T0."""
    moments = [dt.datetime(2026, 3, 4, local_hour, 0, tzinfo=NEW_YORK) - 7 * DAY * w for w in range(1, weeks + 1)]
    store.record_activity(customer.pk, moments, customer.timezone)


def population(**means):
    PopulationModel.objects.update_or_create(
        pk=PopulationModel.SINGLETON_PK,
        defaults={"priors": {c: {"mean": m, "strength": 3.0} for c, m in means.items()}, "profile": [], "computed_at": T0},
    )
    store.forget_population()


def start(journey, customer):
    result = trigger(journey, customer, properties={}, key=f"{customer.external_id}-{timezone.now().isoformat()}")
    assert result.entered, result
    return Enrollment.objects.get(pk=result.enrollment_id)


def steps_of(enrollment) -> list[tuple[str, str, str]]:
    return list(EnrollmentStep.objects.filter(enrollment=enrollment).values_list("node_id", "outcome", "detail"))


def best_send(node_id="offer", fallback=("email", "sms"), **extra) -> dict:
    content = {"email": {"subject": "Offer", "html": "<p>Hi</p>"}, "sms": {"body": "Hi"}, "push": {"title": "Offer", "body": "Hi"}}
    return node(node_id, "send", channel="best", fallback=list(fallback),
                content={c: content[c] for c in fallback}, **{"explore": 0, **extra})


def validate(kind: NodeKind, config) -> list[tuple[str, str]]:
    return NODE_KINDS[kind].validate(config)


def entry() -> dict:
    return node("entry", "entry", trigger="api")


# --- Incremental updates from the ledger ---------------------------------------------------


def test_a_sent_then_clicked_marketing_message_counts_one_send_and_one_engagement(ada):
    pk = send_through_ledger(ada, "sms", T0)
    do_transition_message(pk, "clicked", at=T0 + 2 * MINUTE)

    sms = row(ada, "sms")
    assert (sms.raw_sends, sms.raw_engagements, sms.first_sent_at) == (1, 1, T0)
    assert sms.sends == pytest.approx(1.0, rel=1e-4)  # decayed over the two minutes to the click
    assert sms.engagements == pytest.approx(1.0, rel=1e-4)
    assert sms.as_of == T0 + 2 * MINUTE
    # The click is activity too, in the customer's local hour-of-week.
    profile = ActivityProfile.objects.get(customer=ada)
    assert profile.total == 1.0
    assert profile.counts[hour_of_week(T0 + 2 * MINUTE, NEW_YORK)] == 1.0


def test_opens_are_activity_but_not_engagement_and_a_late_click_counts_once(ada):
    pk = send_through_ledger(ada, "email", T0)
    do_transition_message(pk, "opened", at=T0 + HOUR)
    assert (row(ada, "email").raw_sends, row(ada, "email").raw_engagements) == (1, 0)
    do_transition_message(pk, "clicked", at=T0 + 2 * HOUR)
    do_transition_message(pk, "converted", at=T0 + 3 * HOUR)

    assert (row(ada, "email").raw_sends, row(ada, "email").raw_engagements) == (1, 1)
    assert ActivityProfile.objects.get(customer=ada).total == 1.0  # one moment per message: the open


def test_transactional_messages_leave_affinity_unchanged(ada):
    pk = send_through_ledger(ada, "email", T0, category="transactional")
    do_transition_message(pk, "clicked", at=T0 + HOUR)

    assert not ChannelAffinity.objects.filter(customer=ada).exists()


def test_a_bounce_after_sent_takes_the_send_back(ada):
    pk = send_through_ledger(ada, "email", T0)
    do_transition_message(pk, "bounced", at=T0 + HOUR)

    email = row(ada, "email")
    assert (email.raw_sends, email.sends, email.spread) == (0, 0.0, 0.0)


def test_sessions_and_purchases_from_ingestion_fill_the_activity_profile(ada):
    received = T0
    for name, at in (("Session Started", T0 - DAY), ("Order Completed", T0 - HOUR), ("Viewed Product", T0)):
        Event.objects.create(customer=ada, name=name, occurred_at=at, received_at=received, source="web")
    events_stored(StoredEvents("web", received, frozenset({ada.pk}), frozenset({"Session Started", "Order Completed", "Viewed Product"})))

    profile = ActivityProfile.objects.get(customer=ada)
    assert profile.total == 2.0
    assert profile.counts[hour_of_week(T0 - DAY, NEW_YORK)] == 1.0
    assert profile.counts[hour_of_week(T0 - HOUR, NEW_YORK)] == 1.0


def test_an_ingest_batch_updates_every_activity_profile_in_two_queries(ada):
    """One read of the events with their customers' zones, one upsert: whatever the batch."""
    grace = Customer.objects.create(external_id="grace", email="grace@example.com", timezone="Europe/London")
    store.record_activity(ada.pk, [T0 - 7 * DAY], ada.timezone)  # ada has a row, grace not yet
    received = T0
    moments = [T0 - DAY, T0 - DAY + 5 * MINUTE, T0 - HOUR]
    for customer in (ada, grace):
        for at in moments:
            Event.objects.create(customer=customer, name="Session Started", occurred_at=at, received_at=received, source="web")
    batch = StoredEvents("web", received, frozenset({ada.pk, grace.pk}), frozenset({"Session Started"}))

    with CaptureQueriesContext(connection) as queries:
        hooks.on_events_stored(batch)  # this listener alone: the engine's has its own pin

    assert len(queries) == 2
    ada_profile, grace_profile = ActivityProfile.objects.get(customer=ada), ActivityProfile.objects.get(customer=grace)
    assert ada_profile.total == 4.0
    assert ada_profile.counts[hour_of_week(T0 - DAY, NEW_YORK)] == 2.0
    assert ada_profile.counts[hour_of_week(T0 - 7 * DAY, NEW_YORK)] == 1.0
    assert grace_profile.total == 3.0
    assert grace_profile.counts[hour_of_week(T0 - HOUR, ZoneInfo("Europe/London"))] == 1.0
    assert sum(grace_profile.counts) == 3.0


def test_recompute_from_the_ledger_equals_the_incremental_state(ada):
    start = T0 - 60 * DAY
    first = send_through_ledger(ada, "email", start)
    do_transition_message(first, "clicked", at=start + 2 * HOUR)
    second = send_through_ledger(ada, "email", start + 20 * DAY)
    do_transition_message(second, "opened", at=start + 20 * DAY + HOUR)
    third = send_through_ledger(ada, "sms", start + 30 * DAY)
    do_transition_message(third, "delivered", at=start + 30 * DAY + MINUTE)
    do_transition_message(third, "clicked", at=start + 30 * DAY + 5 * MINUTE)
    do_transition_message(third, "converted", at=start + 30 * DAY + HOUR)
    fourth = send_through_ledger(ada, "sms", start + 40 * DAY)
    do_transition_message(fourth, "bounced", at=start + 40 * DAY + MINUTE)
    receipt = send_through_ledger(ada, "email", start + 45 * DAY, category="transactional")
    do_transition_message(receipt, "opened", at=start + 45 * DAY + HOUR)
    Event.objects.create(customer=ada, name="Session Started", occurred_at=start + DAY, received_at=start + DAY, source="web")
    events_stored(StoredEvents("web", start + DAY, frozenset({ada.pk}), frozenset({"Session Started"})))

    incremental = {c: decayed(s, T0, store.AFFINITY) for c, s in store.customer_states(ada.pk).items()}
    counts = ActivityProfile.objects.get(customer=ada).counts
    recompute_all(now=T0)

    rebuilt = store.customer_states(ada.pk)
    assert set(rebuilt) == set(incremental) == {"email", "sms"}
    for channel, state in incremental.items():
        again = rebuilt[channel]
        assert (again.raw_sends, again.raw_engagements, again.first_sent_at) == (state.raw_sends, state.raw_engagements, state.first_sent_at)
        assert again.sends == pytest.approx(state.sends, rel=1e-9, abs=1e-12)
        assert again.engagements == pytest.approx(state.engagements, rel=1e-9)
        assert again.spread == pytest.approx(state.spread, rel=1e-9, abs=1e-12)
    assert ActivityProfile.objects.get(customer=ada).counts == counts
    assert sum(counts) == 5.0  # the two emails' first open or click, the SMS click, the receipt's open, the session


def test_recompute_intelligence_command_refreshes_the_population(ada):
    for day in range(4):
        pk = send_through_ledger(ada, "sms", T0 - (10 - day) * DAY)
        if day % 2:
            do_transition_message(pk, "clicked", at=T0 - (10 - day) * DAY + HOUR)

    call_command("recompute_intelligence", stdout=open("/dev/null", "w"))

    model = PopulationModel.objects.get()
    assert model.priors["sms"]["mean"] == pytest.approx(0.5, rel=0.05)  # ada's (recency-weighted) rate
    assert model.priors["email"] == {"mean": store.AFFINITY.unseen_channel_rate, "strength": store.AFFINITY.min_strength}


# --- Journeys: best channel --------------------------------------------------------------


def test_send_config_accepts_best_with_a_fallback_and_requires_its_content():
    config = best_send()["config"]
    assert validate(NodeKind.SEND, config) == []
    assert validate(NodeKind.SEND, {**config, "fallback": ["email"]}) == [
        ("fallback", "must list at least two channels to choose among"),
    ]
    assert validate(NodeKind.SEND, {**config, "content": {"email": config["content"]["email"]}}) == [
        ("content.sms", "is required: the sms to send"),
    ]
    assert validate(NodeKind.DELAY, {"mode": "best_time", "within_hours": 24}) == []
    assert validate(NodeKind.DELAY, {"mode": "best_time", "within_hours": 0}) == [("within_hours", "must be at least 1")]


def test_best_channel_send_picks_the_customers_strongest_channel(ada):
    history(ada, "email", sends=10, clicks=1)
    history(ada, "sms", sends=10, clicks=6)
    journey = make_live_journey(linear_graph(entry(), best_send()))
    with time_machine.travel(T0, tick=False):
        enrollment = start(journey, ada)

    sent = Message.objects.get(customer=ada)
    assert sent.channel == "sms"
    detail = dict((n, d) for n, o, d in steps_of(enrollment) if o == "sent")["offer"]
    assert detail.startswith("sms · SMS engagement 5.4× email over 30 days (10 SMS and 10 email sends); most active")
    assert Enrollment.objects.get(pk=enrollment.pk).context["touches"][0]["choice"]["reason"] == "affinity"


def test_best_channel_falls_back_when_the_strongest_has_no_address(ada):
    history(ada, "email", sends=10, clicks=1)
    history(ada, "sms", sends=10, clicks=6)
    Customer.objects.filter(pk=ada.pk).update(phone="")
    journey = make_live_journey(linear_graph(entry(), best_send()))
    with time_machine.travel(T0, tick=False):
        start(journey, Customer.objects.get(pk=ada.pk))

    assert list(Message.objects.filter(customer=ada).values_list("channel", "status")) == [("email", "queued")]


def test_best_channel_falls_back_when_the_strongest_lacks_consent(ada):
    history(ada, "email", sends=10, clicks=1)
    history(ada, "sms", sends=10, clicks=6)
    do_set_consent(ada, "sms", "marketing", "opted_out", source="test")
    journey = make_live_journey(linear_graph(entry(), best_send()))
    with time_machine.travel(T0, tick=False):
        start(journey, ada)

    assert list(Message.objects.filter(customer=ada).values_list("channel", flat=True)) == ["email"]


@pytest.mark.governed
def test_best_channel_falls_back_when_the_strongest_is_capped(ada):
    history(ada, "email", sends=10, clicks=1)
    history(ada, "sms", sends=10, clicks=6)
    message(ada, "sms", status="sent", at=T0 - 2 * HOUR, category="marketing")  # the shipped 1 SMS / 24 h cap
    journey = make_live_journey(linear_graph(entry(), best_send()))
    with time_machine.travel(T0, tick=False):
        start(journey, ada)

    assert list(Message.objects.filter(customer=ada, queued_at=T0).values_list("channel", "status")) == [("email", "queued")]


def test_cold_start_picks_the_populations_best_channel(ada):
    population(email=0.02, sms=0.12, push=0.05, in_app=0.03)
    journey = make_live_journey(linear_graph(entry(), best_send()))
    with time_machine.travel(T0, tick=False):
        enrollment = start(journey, ada)

    assert Message.objects.get(customer=ada).channel == "sms"
    detail = dict((n, d) for n, o, d in steps_of(enrollment) if o == "sent")["offer"]
    assert detail.startswith("sms · no engagement history: SMS, the population's best available channel (12% engagement)")


def test_a_plain_send_with_a_fallback_tries_the_next_channel_without_an_address(ada):
    send = node("nudge", "send", channel="push", fallback=["sms"],
                content={"push": {"title": "Hi", "body": "Hi"}, "sms": {"body": "Hi"}})
    journey = make_live_journey(linear_graph(entry(), send))
    with time_machine.travel(T0, tick=False):
        enrollment = start(journey, ada)

    assert list(Message.objects.filter(customer=ada).values_list("channel", flat=True)) == ["sms"]
    detail = dict((n, d) for n, o, d in steps_of(enrollment) if o == "sent")["nudge"]
    assert detail == "sms · fell back (push: no enabled push subscription)"


# --- Journeys: best time -------------------------------------------------------------------


def test_best_time_delay_waits_for_the_customers_best_hour(ada):
    evenings(ada, local_hour=20)
    email = node("mail", "send", channel="email", content={"email": {"subject": "Hi", "html": "<p>Hi</p>"}})
    journey = make_live_journey(linear_graph(entry(), node("when", "delay", mode="best_time", within_hours=24), email))
    with time_machine.travel(T0, tick=False) as clock:
        enrollment = start(journey, ada)
        assert Enrollment.objects.get(pk=enrollment.pk).due_at == dt.datetime(2026, 3, 4, 20, 0, tzinfo=NEW_YORK)
        clock.move_to(dt.datetime(2026, 3, 4, 20, 0, tzinfo=NEW_YORK))
        call_command("run_due_steps", stdout=open("/dev/null", "w"))

    assert Message.objects.get(customer=ada).queued_at == dt.datetime(2026, 3, 5, 1, 0, tzinfo=dt.UTC)
    delay = dict((n, d) for n, o, d in steps_of(enrollment))["when"]
    assert delay.startswith("until 2026-03-05 01:00 UTC: best hour 20:00–21:00 local, Wednesdays (")


@pytest.mark.governed
def test_best_time_delay_before_an_sms_avoids_quiet_hours(ada):
    evenings(ada, local_hour=22)  # the shipped policy silences SMS 21:00–08:00
    sms = node("text", "send", channel="sms", content={"sms": {"body": "Hi"}})
    journey = make_live_journey(linear_graph(entry(), node("when", "delay", mode="best_time", within_hours=24), sms))
    with time_machine.travel(T0, tick=False):
        enrollment = start(journey, ada)

    assert Enrollment.objects.get(pk=enrollment.pk).due_at == dt.datetime(2026, 3, 4, 20, 0, tzinfo=NEW_YORK)
    delay = dict((n, d) for n, o, d in steps_of(enrollment))["when"]
    assert delay.endswith("; 22:00 is in quiet hours")


def test_best_time_then_best_channel_chooses_time_and_channel_together(ada):
    history(ada, "email", sends=10, clicks=1)
    history(ada, "sms", sends=10, clicks=6)
    evenings(ada, local_hour=20)
    graph = linear_graph(entry(), node("when", "delay", mode="best_time", within_hours=24), best_send())
    journey = make_live_journey(graph)
    with time_machine.travel(T0, tick=False) as clock:
        enrollment = start(journey, ada)
        clock.move_to(dt.datetime(2026, 3, 4, 20, 0, tzinfo=NEW_YORK))
        call_command("run_due_steps", stdout=open("/dev/null", "w"))

    assert list(Message.objects.filter(customer=ada).values_list("channel", "queued_at")) == [
        ("sms", dt.datetime(2026, 3, 5, 1, 0, tzinfo=dt.UTC)),
    ]
    details = dict((n, d) for n, o, d in steps_of(enrollment) if n in ("when", "offer") and o in ("delayed", "sent"))
    assert details["when"].startswith("until 2026-03-05 01:00 UTC, with SMS: SMS engagement 5.4× email over 30 days")
    assert "best hour 20:00–21:00 local, Wednesdays" in details["offer"]
    assert details["offer"].startswith("sms · SMS engagement 5.4× email")


# --- Where the choice is explained -------------------------------------------------------


def test_profile_card_shows_estimates_and_the_explanation(client, make_user, ada):
    history(ada, "email", sends=10, clicks=1)
    history(ada, "sms", sends=10, clicks=6)
    evenings(ada, local_hour=20)
    client.force_login(make_user(Role.MARKETER))
    page_url = reverse("customers:profile", args=[ada.pk])
    with time_machine.travel(T0, tick=False):
        page = client.get(page_url).content.decode()
        html = client.get(page_url + "?card=affinity", headers={"HX-Request": "true"}).content.decode()

    # The page loads the card after itself, keeping its own queries pinned.
    assert f'hx-get="{page_url}?card=affinity" hx-trigger="load"' in page
    assert html.lstrip().startswith('<section class="card" id="affinity"')
    assert "SMS engagement 5.4× email over 30 days (10 SMS and 10 email sends)" in html
    assert '<tr><th scope="row">SMS</th><td>49%</td><td>24%–74%</td><td>10</td><td>6</td></tr>' in html
    assert '<tr><th scope="row">Email</th><td>9.0%</td><td>0.4%–27%</td><td>10</td><td>1</td></tr>' in html
    assert "Most active 20:00–21:00 local, Wednesdays" in html


def test_simulator_timeline_shows_the_channel_choice(db):
    population(email=0.02, sms=0.12, push=0.05, in_app=0.03)
    journey = make_live_journey(linear_graph(entry(), best_send()))
    sim = parse_simulation({
        "customer": {"inline": {"timezone": "America/New_York", "email": "maya@example.com", "phone": "+12125550117"}},
        "start": T0.isoformat(),
    })
    result = simulate(journey, sim)

    sent = next(e for e in result.timeline if e.get("outcome") == "sent")
    assert sent["message"]["channel"] == "sms"
    assert sent["detail"].startswith("sms · no engagement history: SMS, the population's best available channel")


def test_simulator_timeline_marks_exploring_choices_apart_from_affinity_ones(ada):
    """Each run is a new enrollment and so new draws: at explore 0.5 some runs explore, and
    the timeline says so with the Thompson draws; the others give the affinity reason."""
    population(email=0.02, sms=0.12, push=0.05, in_app=0.03)
    history(ada, "sms", sends=10, clicks=4)
    history(ada, "email", sends=10, clicks=1)
    journey = make_live_journey(linear_graph(entry(), best_send(explore=0.5)))
    sim = parse_simulation({"customer": {"external_id": "ada"}, "start": T0.isoformat()})

    details = [next(e for e in simulate(journey, sim).timeline if e.get("outcome") == "sent")["detail"] for _ in range(20)]

    exploring = [d for d in details if "exploring (Thompson sample)" in d]
    assert exploring and len(exploring) < len(details)
    assert all(re.match(r"(sms|email) · exploring \(Thompson sample\): (SMS|email) drew 0\.\d\d vs (SMS|email) 0\.\d\d", d) for d in exploring)
    assert all(d.startswith("sms · SMS engagement ") for d in details if d not in exploring)


def test_a_batch_moving_to_sent_updates_affinity_in_the_same_few_queries_whatever_its_size(ada):
    store.load_population()  # warm, as in a running worker
    counts = []
    for size in (2, 20):
        ids = []
        for i in range(size):
            request = QueueRequest(customer_id=ada.pk, channel="email", category="marketing", at=T0,
                                   idempotency_key=f"batch-{size}-{i}")
            ids.append(do_queue_message(request).message.pk)
        claim_many_for_sending(ids, at=T0)
        with CaptureQueriesContext(connection) as queries:
            record_sent_many([(pk, "outbox", f"p-{pk}") for pk in ids], at=T0 + MINUTE)
        counts.append(len(queries))

    assert counts[0] == counts[1]
    assert row(ada, "email").raw_sends == 22
