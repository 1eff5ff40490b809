"""Each cadence panel's numbers on a ledger built by hand, exactly, and what the filters do."""

from __future__ import annotations

import datetime as dt

import pytest

from channels_app.ledger import (
    QueueRequest,
    claim_many_for_sending,
    do_queue_message,
    do_transition_message,
    record_sent_many,
)
from customers.models import ConsentChange, Customer
from journeys.models import Journey, JourneyStatus, JourneyVersion
from orchestrator.dashboards.filters import Filters
from orchestrator.dashboards.panels import fatigue, governor, mix, overlap, pressure, upcoming
from orchestrator.engine.models import Enrollment
from orchestrator.governor.models import FrequencyRule, GovernorVerdict

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 11, 12, 0, tzinfo=dt.UTC)  # a Wednesday
MON, TUE = dt.datetime(2026, 3, 9, 9, 0, tzinfo=dt.UTC), dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
PERIOD = Filters(since=dt.date(2026, 3, 1), until=dt.date(2026, 3, 11), preset=None)
_keys = iter(range(10**6))


def send(customer, channel, at, *, category="marketing", journey=None, status="sent") -> int:
    request = QueueRequest(customer_id=customer.pk, channel=channel, category=category,
                           idempotency_key=f"k{next(_keys)}", at=at, journey_id=journey.pk if journey else None)
    pk = do_queue_message(request).message.pk
    claim_many_for_sending([pk], at=at)
    record_sent_many([(pk, "outbox", f"p-{pk}")], at=at)
    if status != "sent":
        do_transition_message(pk, status, at=at + H)
    return pk


@pytest.fixture
def people():
    return [Customer.objects.create(external_id=n, email=f"{n}@example.com") for n in ("ada", "bob", "cy")]


@pytest.fixture
def journeys():
    welcome = Journey.objects.create(name="Welcome", status=JourneyStatus.LIVE, tags=["lifecycle", "growth"])
    winback = Journey.objects.create(name="Win back", status=JourneyStatus.LIVE, tags=["retention"])
    receipts = Journey.objects.create(name="Receipts", status=JourneyStatus.LIVE, category="transactional")
    return welcome, winback, receipts


@pytest.fixture
def ledger(people, journeys):
    """Ada: Mon 1 email; Tue 3 email + 1 SMS (marketing). Bob: Tue 1 email, 1 transactional push.
    Cy: a bounced SMS (not counted)."""
    ada, bob, cy = people
    welcome, winback, receipts = journeys
    send(ada, "email", MON, journey=welcome)
    for i in range(3):
        send(ada, "email", TUE + i * H, journey=welcome if i else winback)
    send(ada, "sms", TUE, journey=winback)
    send(bob, "email", TUE, journey=welcome)
    send(bob, "push", TUE, category="transactional", journey=receipts)
    send(cy, "sms", TUE, status="bounced")
    return people


def dist(figure) -> dict:
    return {(scope, messages): n for scope, messages, n in figure.rows}


def test_pressure_distributions_per_day_and_week_all_channels_and_per_channel(ledger):
    figures = {f.key: f for f in pressure.load(PERIOD, NOW).figures()}
    assert dist(figures["per-day"]) == {
        ("All channels", 1): 1, ("All channels", 2): 1, ("All channels", 4): 1,
        ("Email", 1): 2, ("Email", 3): 1, ("SMS", 1): 1, ("Push", 1): 1,
    }
    assert dist(figures["per-week"]) == {
        ("All channels", 2): 1, ("All channels", 5): 1, ("Email", 1): 1, ("Email", 4): 1,
        ("SMS", 1): 1, ("Push", 1): 1,
    }
    chart = figures["per-day"].chart
    assert chart.labels == ("1", "2", "3", "4")
    assert chart.series[0].label == "All channels" and chart.series[0].values == (1, 1, 0, 1)


def test_pressure_filters_by_channel_and_category(ledger):
    email = pressure.load(Filters(**{**PERIOD.__dict__, "channel": "email"}), NOW).figures()[0]
    assert dist(email) == {("Email", 1): 2, ("Email", 3): 1}
    marketing = pressure.load(Filters(**{**PERIOD.__dict__, "category": "marketing"}), NOW).figures()[0]
    assert dist(marketing) == {
        ("All channels", 1): 2, ("All channels", 4): 1, ("Email", 1): 2, ("Email", 3): 1, ("SMS", 1): 1,
    }
    monday_only = Filters(since=MON.date(), until=MON.date(), preset=None)
    assert dist(pressure.load(monday_only, NOW).figures()[0]) == {("All channels", 1): 1, ("Email", 1): 1}


def test_share_at_or_over_each_cap(ledger):
    FrequencyRule.objects.create(name="3 a day", scope="all", max_count=3, window_minutes=1440)
    FrequencyRule.objects.create(name="1 SMS a day", scope="channel", channels=["sms"], max_count=1, window_minutes=1440)
    FrequencyRule.objects.create(name="5 a week", scope="all", max_count=5, window_minutes=10080, counts_transactional=True)
    FrequencyRule.objects.create(name="growth", scope="tag", tag="growth", max_count=2, window_minutes=1440)
    caps = {c.rule: c for c in pressure.load(PERIOD, NOW).caps}
    # Marketing customer-days: Ada Mon 1, Ada Tue 4 (over 3), Bob Tue 1.
    assert (caps["3 a day"].span, caps["3 a day"].at, caps["3 a day"].over, caps["3 a day"].of) == ("d", 0, 1, 3)
    assert (caps["1 SMS a day"].at, caps["1 SMS a day"].over, caps["1 SMS a day"].of) == (1, 0, 1)
    # Weeks, transactional counted: Ada 5, Bob 2.
    assert (caps["5 a week"].span, caps["5 a week"].at, caps["5 a week"].over, caps["5 a week"].of) == ("w", 1, 0, 2)
    assert caps["growth"].span == ""  # tag scopes are not measured


def test_heaviest_customers_ranked_by_busiest_day_with_their_period_totals(ledger):
    ada, bob, _ = ledger
    heavy = pressure.load(PERIOD, NOW).heaviest
    assert [(h.customer_id, h.peak_day, h.peak, h.period_total) for h in heavy] == [
        (ada.pk, TUE.date(), 4, 5),
        (bob.pk, TUE.date(), 2, 2),
    ]
    monday = pressure.load(Filters(since=MON.date(), until=MON.date(), preset=None), NOW).heaviest
    assert [(h.customer_id, h.peak, h.period_total) for h in monday] == [(ada.pk, 1, 1)]
    link = pressure.load(PERIOD, NOW).figures()[3].rows[0][0]
    assert (link.text, link.url) == ("ada@example.com", f"/customers/{ada.pk}/")


def test_channel_mix_per_day_by_journey_and_by_tag(ledger):
    data = mix.load(PERIOD, NOW)
    i_mon, i_tue = PERIOD.days.index(MON.date()), PERIOD.days.index(TUE.date())
    assert {c: (v[i_mon], v[i_tue], sum(v)) for c, v in data.per_day.items()} == {
        "email": (1, 4, 5), "sms": (0, 1, 1), "push": (0, 1, 1),
    }
    assert data.by_journey == (("Welcome", {"email": 4}), ("Win back", {"email": 1, "sms": 1}), ("Receipts", {"push": 1}))
    assert data.by_tag == (("growth", {"email": 4}), ("lifecycle", {"email": 4}), ("retention", {"email": 1, "sms": 1}),
                           ("(untagged)", {"push": 1}))


def test_channel_mix_filters_by_journey_channel_and_category(ledger, journeys):
    welcome, winback, _ = journeys
    only = mix.load(Filters(**{**PERIOD.__dict__, "journey_id": winback.pk}), NOW)
    assert {c: sum(v) for c, v in only.per_day.items()} == {"email": 1, "sms": 1}
    sms = mix.load(Filters(**{**PERIOD.__dict__, "channel": "sms"}), NOW)
    assert {c: sum(v) for c, v in sms.per_day.items()} == {"sms": 1}
    transactional = mix.load(Filters(**{**PERIOD.__dict__, "category": "transactional"}), NOW)
    assert transactional.by_journey == (("Receipts", {"push": 1}),)


def verdict(customer, decision, rule, channel, at, *, until=None, journey=None, category="marketing"):
    return GovernorVerdict.objects.create(customer=customer, decision=decision, rule=rule, reason=rule, channel=channel,
                                          category=category, at=at, until=until, journey_id=journey.pk if journey else None)


def test_governor_activity_by_rule_channel_journey_quiet_hours_and_waits(people, journeys):
    ada, bob, _ = people
    welcome, winback, _ = journeys
    verdict(ada, "defer", "3 a day", "email", TUE, until=TUE + 30 * dt.timedelta(minutes=1), journey=welcome)
    verdict(ada, "defer", "quiet hours sms", "sms", TUE, until=TUE + 10 * H, journey=welcome)
    verdict(bob, "defer", "quiet hours sms", "sms", TUE, until=TUE + 10 * H, journey=winback)
    verdict(bob, "suppress", "3 a day", "email", TUE, journey=winback)
    verdict(bob, "suppress", "consent", "push", MON)
    verdict(bob, "defer", "min spacing", "email", TUE, until=TUE + 4 * 24 * H)
    verdict(bob, "suppress", "consent", "push", NOW - 30 * 24 * H)  # before the period
    data = governor.load(PERIOD, NOW)
    assert data.by_rule == (("3 a day", 1, 1), ("quiet hours sms", 2, 0), ("consent", 0, 1), ("min spacing", 1, 0))
    assert data.by_channel == (("Email", 2, 1), ("SMS", 2, 0), ("Push", 0, 1))
    assert data.by_journey == (("Not from a journey", 1, 1), ("Welcome", 2, 0), ("Win back", 1, 1))
    assert data.quiet_by_channel == (("SMS", 2),)
    assert data.waits == (("under 1 h", 1), ("1–4 h", 0), ("4–12 h", 2), ("12–24 h", 0), ("1–3 days", 0),
                          ("over 3 days", 1))
    sms_only = governor.load(Filters(**{**PERIOD.__dict__, "channel": "sms", "journey_id": welcome.pk}), NOW)
    assert sms_only.by_rule == (("quiet hours sms", 1, 0),)


def opt_out(customer, channel, status, at, category="marketing"):
    return ConsentChange.objects.create(customer=customer, channel=channel, category=category, status=status,
                                        source="test", changed_at=at)


def test_fatigue_signals_per_channel_and_messages_before_opting_out(ledger):
    ada, bob, cy = ledger
    wed = NOW - H  # the 7 UTC days before Wednesday hold Monday and Tuesday
    opt_out(ada, "email", "unsubscribed", wed)  # after 5 counted messages on those days
    opt_out(ada, "sms", "stopped", wed + H / 2)  # Ada again: counted once, at her first
    opt_out(bob, "email", "complained", wed)  # Bob had 2
    opt_out(cy, "email", "opted_out", MON)  # Cy had none (her SMS bounced; nothing before Monday)
    opt_out(cy, "email", "opted_in", TUE)  # not a fatigue signal
    data = fatigue.load(PERIOD, NOW)
    assert data.signals == (
        ("Email", {"Unsubscribed": 1, "Complained": 1, "Opted out": 1}),
        ("SMS", {"Replied STOP": 1, "Bounced": 1}),
    )
    assert dict(data.before_opt_out) == {"0": 1, "1": 0, "2": 1, "3": 0, "4": 0, "5": 1, "6": 0, "7": 0, "8": 0,
                                         "9": 0, "10+": 0}
    email = fatigue.load(Filters(**{**PERIOD.__dict__, "channel": "email"}), NOW)
    assert [ch for ch, _ in email.signals] == ["Email"]


def make_version(journey, graph) -> JourneyVersion:
    version = JourneyVersion.objects.create(journey=journey, number=1, graph=graph, published_at=NOW)
    Journey.objects.filter(pk=journey.pk).update(live_version=version)
    return version


GRAPH = {
    "nodes": [
        {"id": "entry", "kind": "entry", "config": {}},
        {"id": "wait", "kind": "delay", "config": {}},
        {"id": "mail", "kind": "send", "config": {"channel": "email"}},
        {"id": "event", "kind": "wait_for_event", "config": {}},
        {"id": "text", "kind": "send", "config": {"channel": "sms"}},
        {"id": "pick", "kind": "send", "config": {"channel": "best"}},
        {"id": "done", "kind": "exit", "config": {}},
    ],
    "edges": [
        {"from": "entry", "port": "out", "to": "wait"}, {"from": "wait", "port": "out", "to": "mail"},
        {"from": "mail", "port": "out", "to": "event"}, {"from": "event", "port": "timed_out", "to": "text"},
        {"from": "event", "port": "happened", "to": "done"}, {"from": "text", "port": "out", "to": "pick"},
    ],
}


def enrol(journey, version, customer, node, due, *, state="active", holdout=False, key=None):
    return Enrollment.objects.create(journey=journey, version=version, customer=customer, current_node=node,
                                     due_at=due, state=state, holdout=holdout, trigger_key=key or f"t{next(_keys)}")


def test_upcoming_load_counts_sends_due_at_or_after_a_wait_by_channel(people, journeys):
    ada, bob, cy = people
    welcome, winback, _ = journeys
    version = make_version(welcome, GRAPH)
    enrol(welcome, version, ada, "mail", NOW + 2 * H)  # due at a send (a deferred send waits here too)
    enrol(welcome, version, bob, "wait", NOW + 30 * H)  # a delay leading to the email
    enrol(welcome, version, cy, "event", NOW + 3 * H, state="waiting")  # times out into the SMS
    enrol(welcome, version, ada, "pick", NOW + 50 * H, key="best")
    enrol(welcome, version, bob, "text", NOW + 5 * H, holdout=True, key="held")  # holdouts send nothing
    enrol(welcome, version, cy, "mail", NOW + 8 * 24 * H, key="late")  # beyond 7 days
    enrol(welcome, version, cy, "done", NOW + H, key="exit")  # not a send
    data = upcoming.load(PERIOD, NOW)
    assert data.by_channel == (
        ("email", "after a delay or wait", 0, 1), ("email", "due at a send", 1, 1),
        ("sms", "after a delay or wait", 1, 1), ("best", "due at a send", 0, 1),
    )
    assert data.per_day == {"email": (1, 1, 0, 0, 0, 0, 0, 0), "sms": (1, 0, 0, 0, 0, 0, 0, 0),
                            "best": (0, 0, 1, 0, 0, 0, 0, 0)}
    assert upcoming.load(Filters(**{**PERIOD.__dict__, "channel": "sms"}), NOW).per_day == {"sms": (1, 0, 0, 0, 0, 0, 0, 0)}
    assert upcoming.load(Filters(**{**PERIOD.__dict__, "journey_id": winback.pk}), NOW).by_channel == ()


def test_journey_overlap_counts_customers_in_several_live_journeys_and_the_pairs(people, journeys):
    ada, bob, cy = people
    welcome, winback, receipts = journeys
    paused = Journey.objects.create(name="Paused", status=JourneyStatus.PAUSED)
    versions = {j.pk: make_version(j, GRAPH) for j in (welcome, winback, receipts, paused)}
    for journey, customer in [(welcome, ada), (winback, ada), (receipts, ada), (welcome, bob), (winback, bob),
                              (welcome, cy), (paused, cy)]:
        enrol(journey, versions[journey.pk], customer, "wait", NOW + H)
    enrol(receipts, versions[receipts.pk], cy, "done", None, state="exited", key="gone")
    data = overlap.load(PERIOD, NOW)
    assert data.in_several == (("2", 1), ("3", 1), ("4", 0), ("5+", 0))
    assert data.pairs == (("Welcome", "Win back", 2), ("Welcome", "Receipts", 1), ("Win back", "Receipts", 1))
    marketing = overlap.load(Filters(**{**PERIOD.__dict__, "category": "marketing"}), NOW)
    assert marketing.pairs == (("Welcome", "Win back", 2),)
    focused = overlap.load(Filters(**{**PERIOD.__dict__, "journey_id": receipts.pk}), NOW)
    assert focused.pairs == (("Welcome", "Receipts", 1), ("Win back", "Receipts", 1))


def test_journey_overlap_counts_a_journey_once_and_past_the_first_mask_of_63_journeys(people):
    """Each live journey is a bit of a 63-bit mask: journeys 64 and on fall in a second
    mask, and two live enrollments of one person in one journey are one journey."""
    ada, bob, cy = people
    many = [Journey.objects.create(name=f"J{n:02d}", status=JourneyStatus.LIVE) for n in range(70)]
    first, last, middle = many[0], many[69], many[40]
    for journey, customer, key in [(first, ada, "a"), (last, ada, "a"), (last, ada, "again"), (first, bob, "b"),
                                   (middle, bob, "b"), (last, bob, "b"), (last, cy, "c"), (last, cy, "c2")]:
        enrol(journey, make_version(journey, GRAPH) if not journey.live_version_id else journey.live_version,
              customer, "wait", NOW + H, key=key)
        journey.refresh_from_db()
    data = overlap.load(PERIOD, NOW)
    assert data.in_several == (("2", 1), ("3", 1), ("4", 0), ("5+", 0))
    assert data.pairs == (("J00", "J69", 2), ("J00", "J40", 1), ("J40", "J69", 1))
