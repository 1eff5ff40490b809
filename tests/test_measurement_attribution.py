"""Attribution: each model's split of one conversion checked against hand arithmetic, the
lookback window's edges, credit that sums to the conversions and their revenue, and the
cross-journey table read from a constructed ledger. The models run in the database, so
every check goes through it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestrator.measurement.attribution import NO_TOUCH, OUTSIDE_JOURNEYS
from orchestrator.measurement.credit import MODELS, Model
from orchestrator.measurement.ledger import Period, conversion_credits, journey_attribution
from tests import measurement_factories as f

C = datetime(2026, 5, 8, 9, 0, tzinfo=UTC)  # the conversion
DAY = timedelta(days=1)
FIRST, LAST, LINEAR, DECAY, POSITION = (
    Model.FIRST_TOUCH, Model.LAST_TOUCH, Model.LINEAR, Model.TIME_DECAY, Model.POSITION_BASED,
)


def shares(times: list[datetime], half_life: timedelta = 7 * DAY, lookback: timedelta = 30 * DAY, places: int = 6):
    """Each model's shares, oldest touch first, of one conversion at C after a marketing
    email at each of ``times``."""
    who = f.customer()
    enrollment = f.converted(f.journey(f"Journey of {who.external_id}"), who, C, "10.00")
    sent = [f.message(who, "email", at).pk for at in times]
    credits = conversion_credits(enrollment, lookback, half_life)
    return {model: [round(credits[pk][model], places) for pk in sent if pk in credits] for model in Model}


def test_registry_lists_every_model_once():
    assert list(MODELS) == list(Model)


@pytest.mark.django_db
def test_four_touches_under_every_model():
    # Touches 6, 4 and 2 days before the conversion and at it; half-life 2 days.
    # first: all to the first; last: all to the last; linear: 1/4 each.
    # position: 0.4 first, 0.4 last, the middle 0.2 split over two: 0.1 each.
    # time decay: weights 2^-3, 2^-2, 2^-1, 2^0 = 0.125, 0.25, 0.5, 1 (sum 1.875)
    #   -> 1/15, 2/15, 4/15, 8/15 = 0.066667, 0.133333, 0.266667, 0.533333
    assert shares([C - 6 * DAY, C - 4 * DAY, C - 2 * DAY, C], half_life=2 * DAY) == {
        FIRST: [1.0, 0.0, 0.0, 0.0],
        LAST: [0.0, 0.0, 0.0, 1.0],
        LINEAR: [0.25, 0.25, 0.25, 0.25],
        DECAY: [0.066667, 0.133333, 0.266667, 0.533333],
        POSITION: [0.4, 0.1, 0.1, 0.4],
    }


@pytest.mark.django_db
def test_time_decay_halves_a_touch_one_default_half_life_older():
    # 7 days (the default half-life) and 0 days before: weights 0.5 and 1 -> 1/3, 2/3.
    assert shares([C - 7 * DAY, C])[DECAY] == [0.333333, 0.666667]


@pytest.mark.django_db
def test_time_decay_over_a_long_lookback_with_a_short_half_life_still_sums_to_one():
    # 2^-(400 days / 1 hour) underflows a double: weighing against the newest touch does not.
    split = shares([C - 400 * DAY, C - 399 * DAY], half_life=timedelta(hours=1), lookback=500 * DAY)[DECAY]
    assert split == [0.0, 1.0]


@pytest.mark.django_db
def test_position_based_splits_two_touches_evenly_and_gives_one_touch_everything():
    assert shares([C - DAY, C])[POSITION] == [0.5, 0.5]
    assert shares([C - DAY]) == dict.fromkeys(Model, [1.0])


@pytest.mark.django_db
def test_position_based_with_five_touches_gives_each_middle_touch_a_third_of_20_percent():
    # 0.2 / 3 = 0.066667
    assert shares([C - n * DAY for n in (5, 4, 3, 2, 1)])[POSITION] == [0.4, 0.066667, 0.066667, 0.066667, 0.4]


@pytest.mark.django_db
def test_touches_sent_at_one_instant_are_ordered_by_message():
    assert shares([C - DAY, C - DAY]) == {**dict.fromkeys((LINEAR, DECAY, POSITION), [0.5, 0.5]),
                                          FIRST: [1.0, 0.0], LAST: [0.0, 1.0]}


def table_of(touches: list[tuple[str, datetime]], lookback: timedelta):
    who = f.customer()
    f.converted(f.journey(f"Journey of {who.external_id}"), who, C, "30.00")
    for channel, at in touches:
        f.message(who, channel, at)
    return journey_attribution(None, Period(), lookback, 7 * DAY)


@pytest.mark.django_db
def test_the_window_includes_a_touch_exactly_one_lookback_before_and_the_conversion_instant():
    second = timedelta(seconds=1)
    table = table_of([
        ("email", C - 3 * DAY - second),  # just outside a 3-day window
        ("sms", C - 3 * DAY),  # exactly on its edge: counted
        ("push", C),  # sent at the conversion's instant: counted
        ("in_app", C + second),  # after the conversion: never counted
    ], lookback=3 * DAY)
    credited = {row.key: row.conversions[LINEAR] for row in table.by_channel}
    assert credited == {"sms": 0.5, "push": 0.5}
    assert {row.key: row.touches for row in table.by_channel} == {"sms": 1, "push": 1}


@pytest.mark.django_db
def test_a_longer_lookback_reaches_older_touches():
    touches = [("email", C - 10 * DAY), ("sms", C - DAY)]
    week = table_of(touches, lookback=7 * DAY)
    fortnight = journey_attribution(None, Period(), 14 * DAY, 7 * DAY)
    assert [(r.key, r.conversions[FIRST]) for r in week.by_channel] == [("sms", 1.0)]
    assert {r.key: r.conversions[FIRST] for r in fortnight.by_channel} == {"email": 1.0, "sms": 0.0}


@pytest.mark.django_db
def test_credit_sums_to_conversions_and_revenue_with_a_row_for_conversions_without_touches():
    cart, other = f.journey("Cart recovery"), f.journey("Browse")
    ann, bo = f.customer("Ann"), f.customer("Bo")
    ann_cart = f.converted(cart, ann, C, "90.00")
    f.message(ann, "email", C - 2 * DAY, of=ann_cart)
    f.message(ann, "push", C - DAY)  # outside journeys
    f.converted(cart, bo, C, "10.00")
    f.message(bo, "sms", C - 20 * DAY, of=f.enrollment(other, bo))  # outside the window: Bo has no touch
    table = journey_attribution(None, Period(), 7 * DAY, 7 * DAY)
    assert (table.conversions, table.revenue) == (2, Decimal("100.00"))
    for rows in (table.by_channel, table.by_journey):
        for model in Model:
            assert sum(r.conversions[model] for r in rows) == pytest.approx(2)
            assert sum(r.revenue[model] for r in rows) == pytest.approx(100)
    assert [(r.key, r.label, r.conversions[LINEAR], r.revenue[LINEAR]) for r in table.by_journey] == [
        (str(cart.pk), "Cart recovery", 0.5, 45.0), (OUTSIDE_JOURNEYS, "Outside journeys", 0.5, 45.0),
        (NO_TOUCH, "No touch in the window", 1.0, 10.0),
    ]


# --- From the ledger --------------------------------------------------------------------------


@pytest.fixture
def ledger():
    """Ann converts in Cart recovery (100.00) after an email from it, a marketing SMS sent
    outside journeys and a push from Win back; Bo's one order (50.00) meets both journeys'
    goals after an SMS from Cart recovery; Cy converts in the holdout."""
    cart, win_back = f.journey("Cart recovery", holdout_percent=10), f.journey("Win back")
    ann, bo, cy = f.customer("Ann"), f.customer("Bo"), f.customer("Cy")
    ann_enrolment = f.converted(cart, ann, C, "100.00")
    ann_other = f.enrollment(win_back, ann)
    f.message(ann, "email", C - 3 * DAY, of=ann_enrolment)
    f.message(ann, "sms", C - 2 * DAY)  # a campaign: marketing, outside journeys
    f.message(ann, "push", C - DAY, of=ann_other)
    f.message(ann, "email", C - 3600 * timedelta(seconds=1), category="transactional")  # a receipt: no touch
    f.message(ann, "push", None, of=ann_other, status="suppressed")  # never reached her
    f.message(ann, "email", C - 8 * DAY, of=ann_enrolment)  # before the 7-day window
    f.message(ann, "push", C + timedelta(hours=1), of=ann_other)  # after the conversion
    order = f.order(bo, C, "50.00")
    bo_cart = f.enrollment(cart, bo, converted_at=C, value="50.00", event=order)
    f.enrollment(win_back, bo, converted_at=C, value="50.00", event=order)
    f.message(bo, "sms", C - DAY, of=bo_cart)
    cy_held = f.converted(cart, cy, C, "70.00", holdout=True)
    f.message(cy, "sms", C - DAY)  # a campaign touch, but holdout conversions are not credited
    return cart, win_back, cy_held


def by_key(rows, model):
    return {row.key: round(row.conversions[model], 6) for row in rows}


@pytest.mark.django_db
def test_across_journeys_every_model_side_by_side_per_channel(ledger):
    cart, win_back, _ = ledger
    with CaptureQueriesContext(connection) as queries:
        table = journey_attribution(None, Period(), 7 * DAY, 7 * DAY)
    assert len(queries) == 2  # the credit sums and totals, the journey names
    assert (table.conversions, table.revenue) == (2, Decimal("150.00"))  # Bo's order once, Cy held out
    # Ann: email 3 days, SMS 2 days, push 1 day before; Bo: one SMS.
    # time decay (half-life 7 days): 2^(-3/7), 2^(-2/7), 2^(-1/7) = 0.742997, 0.820335, 0.905724
    #   (sum 2.469056) -> 0.742997 / 2.469056 = 0.3009, 0.820335 / 2.469056 = 0.3322,
    #   0.905724 / 2.469056 = 0.3668; Bo's SMS gets 1.
    assert by_key(table.by_channel, FIRST) == {"email": 1, "sms": 1, "push": 0}
    assert by_key(table.by_channel, LAST) == {"email": 0, "sms": 1, "push": 1}
    assert by_key(table.by_channel, LINEAR) == {"email": 0.333333, "sms": 1.333333, "push": 0.333333}
    assert {k: round(v, 4) for k, v in by_key(table.by_channel, DECAY).items()} == {"email": 0.3009, "sms": 1.3322, "push": 0.3668}
    assert by_key(table.by_channel, POSITION) == {"email": 0.4, "sms": 1.2, "push": 0.4}
    # Revenue, linear: Ann's 100 in thirds, Bo's 50 to the SMS.
    assert {r.key: round(r.revenue[LINEAR], 2) for r in table.by_channel} == {"email": 33.33, "sms": 83.33, "push": 33.33}
    assert by_key(table.by_journey, POSITION) == {str(cart.pk): 1.4, OUTSIDE_JOURNEYS: 0.2, str(win_back.pk): 0.4}
    # Most credited (linear) first; ties by name.
    assert [r.label for r in table.by_journey] == ["Cart recovery", "Outside journeys", "Win back"]


@pytest.mark.django_db
def test_one_journeys_conversions_with_touches_from_every_journey(ledger):
    _, win_back, _ = ledger
    table = journey_attribution([win_back.pk], Period(), 7 * DAY, 7 * DAY)
    # Win back converted only Bo, whose one touch came from Cart recovery.
    assert (table.conversions, table.revenue) == (1, Decimal("50.00"))
    assert by_key(table.by_channel, LINEAR) == {"sms": 1}


@pytest.mark.django_db
def test_conversions_outside_the_period_are_left_out(ledger):
    assert journey_attribution(None, Period(since=C + timedelta(seconds=1)), 7 * DAY, 7 * DAY).conversions == 0
    assert journey_attribution(None, Period(until=C), 7 * DAY, 7 * DAY).conversions == 0
    assert journey_attribution(None, Period(since=C, until=C + DAY), 7 * DAY, 7 * DAY).conversions == 2


@pytest.mark.django_db
def test_only_the_most_recent_conversions_are_read_past_the_cap_and_the_table_says_so(ledger, monkeypatch):
    monkeypatch.setattr("orchestrator.measurement.ledger.MAX_CONVERSIONS", 1)
    cart, _, _ = ledger
    f.converted(cart, f.customer("Dee"), C + DAY, "10.00")
    table = journey_attribution([cart.pk], Period(), 7 * DAY, 7 * DAY)
    assert (table.conversions, table.revenue, table.truncated) == (1, Decimal("10.00"), True)
    assert journey_attribution([cart.pk], Period(until=C + DAY), 7 * DAY, 7 * DAY).truncated is True
    monkeypatch.setattr("orchestrator.measurement.ledger.MAX_CONVERSIONS", 3)
    assert journey_attribution([cart.pk], Period(until=C + DAY), 7 * DAY, 7 * DAY).truncated is False
