"""Channel affinity: the estimator on hand-checked histories, its incremental form, the
population prior, the Beta quantiles behind its credible intervals, and the channel choice
(fallback order, cold start, exploration, explanation).

Pure functions: no database. Expected numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from channels_app.models import Message
from orchestrator.intelligence.affinity import (
    AffinityConfig,
    AffinityState,
    ChannelEstimate,
    ChannelPrior,
    Send,
    channel_prior,
    decay_factor,
    decayed,
    estimate,
    estimates_for,
    moments_strength,
    population_priors,
    states_from_history,
    with_engagement,
    with_send,
)
from orchestrator.intelligence.beta import beta_cdf, beta_quantile, credible_interval
from orchestrator.intelligence.choice import Reason, choose_channel
from orchestrator.intelligence.ledger import send_from_message

NOW = datetime(2025, 11, 30, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
THIRTY_DAYS = AffinityConfig(half_life=timedelta(days=30))
PRIOR_1_9 = ChannelPrior("email", mean=0.1, strength=10.0)  # Beta(1, 9)
ORDER = ("sms", "push", "email", "in_app")


def sends(
    channel: str, count: int, clicked: int, at: datetime = NOW, exposure: float = 1.0
) -> list[Send]:
    """`count` sends at `at`, the first `clicked` of them clicked at once."""
    return [
        Send(channel, at, clicked_at=at if i < clicked else None, exposure=exposure)
        for i in range(count)
    ]


def posterior(
    history: list[Send], prior: ChannelPrior = PRIOR_1_9, config: AffinityConfig = THIRTY_DAYS
) -> ChannelEstimate:
    states = states_from_history(history, as_of=NOW, config=config)
    return estimate(states.get(prior.channel), prior, as_of=NOW, config=config)


def made(
    channel: str, mean: float, sends: int, *, strength: float = 20.0, first: datetime | None = None
) -> ChannelEstimate:
    """An estimate with a given posterior mean, for the choice tests."""
    return ChannelEstimate(
        channel,
        mean * strength,
        (1 - mean) * strength,
        float(sends),
        mean * sends,
        raw_sends=sends,
        first_sent_at=first if sends else None,
        as_of=NOW,
    )


# --- The estimate ---------------------------------------------------------------------------


def test_three_clicks_of_four_emails_under_a_beta_1_9_prior_give_four_fourteenths():
    # Sent now, so every weight is 1: Beta(1 + 3, 9 + 1) = Beta(4, 10), mean 4/14.
    result = posterior(sends("email", 4, 3))
    assert (result.alpha, result.beta) == (4.0, 10.0)
    assert result.mean == pytest.approx(4 / 14, abs=1e-12)
    assert (result.sends, result.engagements, result.raw_sends, result.raw_engagements) == (
        4.0,
        3.0,
        4,
        3,
    )


def test_a_send_weighs_half_after_one_half_life_and_a_quarter_after_two():
    # A click on the 30-day-old send weighs what its send weighs: E = 0.5, N = 0.5 + 0.25.
    history = [
        Send("email", NOW - 30 * DAY, clicked_at=NOW - 29 * DAY),
        Send("email", NOW - 60 * DAY),
    ]
    result = posterior(history)
    assert decay_factor(30 * DAY, 30 * DAY) == pytest.approx(0.5, abs=1e-15)
    assert (result.sends, result.engagements) == (
        pytest.approx(0.75, abs=1e-12),
        pytest.approx(0.5, abs=1e-12),
    )
    # Beta(1 + 0.5, 9 + 0.25): mean 1.5 / 10.75.
    assert result.mean == pytest.approx(1.5 / 10.75, abs=1e-12)


def test_old_evidence_fades_back_toward_the_population():
    # 5 of 5 clicked, 180 days ago (six half-lives: each weighs 1/64): E = N = 5/64.
    result = posterior(sends("email", 5, 5, at=NOW - 180 * DAY))
    assert result.mean == pytest.approx(
        (1 + 5 / 64) / (10 + 5 / 64), abs=1e-12
    )  # ≈ 0.107, near 0.1


def test_thin_data_is_shrunk_toward_the_population_rate():
    # 1 of 1: Beta(2, 9), mean 2/11 ≈ 0.18, not 100%. 50 of 100: Beta(51, 59), mean ≈ 0.46.
    assert posterior(sends("email", 1, 1)).mean == pytest.approx(2 / 11, abs=1e-12)
    assert posterior(sends("email", 100, 50)).mean == pytest.approx(51 / 110, abs=1e-12)


def test_a_send_at_a_poor_hour_counts_as_part_of_a_trial():
    # Exposure 0.5: one ignored send is half a failure: Beta(1, 9.5), mean 1 / 10.5.
    assert posterior(sends("email", 1, 0, exposure=0.5)).mean == pytest.approx(1 / 10.5, abs=1e-12)


def test_opens_are_not_engagement_but_clicks_and_conversions_are():
    opened = Send("email", NOW, opened_at=NOW)
    converted = Send("email", NOW - DAY, converted_at=NOW - DAY + timedelta(hours=2))
    assert opened.engaged_at is None
    assert converted.engaged_at == NOW - DAY + timedelta(hours=2)
    assert posterior([opened]).engagements == 0.0


def test_a_click_still_on_its_way_is_not_counted_yet():
    late = Send("email", NOW - DAY, clicked_at=NOW + timedelta(minutes=5))
    result = posterior([late])
    assert (result.raw_sends, result.raw_engagements, result.engagements) == (1, 0, 0.0)


def test_no_history_is_the_prior_itself():
    result = estimate(None, PRIOR_1_9, as_of=NOW, config=THIRTY_DAYS)
    assert (result.alpha, result.beta, result.sends, result.has_history) == (1.0, 9.0, 0.0, False)


def test_the_credible_interval_holds_the_configured_mass():
    result = posterior(sends("email", 4, 3))  # Beta(4, 10), 90% by default
    low, high = result.interval
    assert beta_cdf(low, 4, 10) == pytest.approx(0.05, abs=1e-9)
    assert beta_cdf(high, 4, 10) == pytest.approx(0.95, abs=1e-9)
    assert low < result.mean < high


# --- Incremental = batch -------------------------------------------------------------------------

HISTORY = st.lists(
    st.tuples(
        st.sampled_from(("email", "sms")),
        st.integers(min_value=0, max_value=200 * 24 * 60),  # minutes after the start
        st.one_of(st.none(), st.integers(min_value=0, max_value=3 * 24 * 60)),  # click delay
        st.sampled_from((1.0, 0.5, 0.25)),  # exposure
    ),
    max_size=40,
)


@hypothesis_settings(max_examples=100, deadline=None)
@given(HISTORY, st.integers(min_value=0, max_value=220 * 24 * 60))
def test_updating_send_by_send_and_receipt_by_receipt_equals_the_batch(history, as_of_minutes):
    start = datetime(2025, 6, 1, tzinfo=UTC)
    as_of = start + timedelta(minutes=as_of_minutes)
    values = []
    for channel, sent, delay, exposure in history:
        sent_at = start + timedelta(minutes=sent)
        clicked_at = None if delay is None else sent_at + timedelta(minutes=delay)
        values.append(Send(channel, sent_at, clicked_at=clicked_at, exposure=exposure))
    # Events in time order up to as_of, as a webhook and the send path would deliver them.
    events = [(s.sent_at, 0, s) for s in values] + [
        (s.clicked_at, 1, s) for s in values if s.clicked_at
    ]
    states: dict[str, AffinityState] = {}
    for at, kind, send in sorted(events, key=lambda e: (e[0], e[1])):
        if at > as_of:
            continue
        state = states.get(send.channel, AffinityState(send.channel))
        if kind == 0:
            states[send.channel] = with_send(
                state, send.sent_at, THIRTY_DAYS, exposure=send.exposure
            )
        else:
            states[send.channel] = with_engagement(
                state, sent_at=send.sent_at, at=at, config=THIRTY_DAYS
            )
    batch = states_from_history(values, as_of=as_of, config=THIRTY_DAYS)
    assert set(states) == set(batch)
    for channel, state in states.items():
        now, expected = decayed(state, as_of, THIRTY_DAYS), batch[channel]
        assert (now.raw_sends, now.raw_engagements, now.first_sent_at) == (
            expected.raw_sends,
            expected.raw_engagements,
            expected.first_sent_at,
        )
        for name in ("sends", "engagements", "spread"):
            assert math.isclose(
                getattr(now, name), getattr(expected, name), rel_tol=1e-9, abs_tol=1e-12
            )


# --- The population's prior --------------------------------------------------------------------


def test_the_population_prior_is_the_pooled_rate_held_with_the_configured_strength():
    # A: 1 of 4, B: 3 of 6 → pooled 4/10. Nobody was sent push: the unseen-channel prior.
    states = [
        *states_from_history(sends("email", 4, 1), as_of=NOW, config=THIRTY_DAYS).values(),
        *states_from_history(sends("email", 6, 3), as_of=NOW, config=THIRTY_DAYS).values(),
    ]
    config = AffinityConfig(half_life=timedelta(days=30), prior_strength=5.0)
    priors = population_priors(states, channels=("email", "push"), as_of=NOW, config=config)
    assert priors["email"] == ChannelPrior(
        "email", mean=pytest.approx(0.4, abs=1e-12), strength=5.0
    )
    assert priors["push"] == ChannelPrior("push", mean=0.05, strength=2.0)


def test_method_of_moments_strength_on_two_kinds_of_customer():
    # 10 customers at 5 of 10, 10 at 1 of 10: m = 60/200 = 0.3, n_i = 10.
    # Σ n_i (r_i − m)² = 10·(10·0.04 + 10·0.04) = 8; 8 / (0.3·0.7) = 800/21.
    # ρ = (800/21 − 20) / (200 − 20) = 19/189; k = 189/19 − 1 = 170/19 ≈ 8.95.
    states = [
        states_from_history(sends("email", 10, 5), as_of=NOW, config=THIRTY_DAYS)["email"]
        for _ in range(10)
    ]
    states += [
        states_from_history(sends("email", 10, 1), as_of=NOW, config=THIRTY_DAYS)["email"]
        for _ in range(10)
    ]
    moments = AffinityConfig(prior_strength=None)
    assert moments_strength(states, 0.3, moments) == pytest.approx(170 / 19, abs=1e-9)
    assert channel_prior("email", states, moments).strength == pytest.approx(170 / 19, abs=1e-9)


def test_method_of_moments_falls_back_to_the_default_when_noise_explains_everything():
    alike = [
        states_from_history(sends("email", 10, 3), as_of=NOW, config=THIRTY_DAYS)["email"]
        for _ in range(20)
    ]
    moments = AffinityConfig(prior_strength=None)
    assert moments_strength(alike, 0.3, moments) == moments.default_strength == 10.0
    assert moments_strength(alike[:19], 0.3, moments) == 10.0  # fewer than 20 customers


# --- Beta quantiles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "x"), [(4, 10, 0.2), (1, 1, 0.37), (7, 3, 0.81), (30, 170, 0.12), (2, 40, 0.01)]
)
def test_the_beta_cdf_matches_the_binomial_tail_for_whole_parameters(a, b, x):
    # I_x(a, b) = P(Binomial(a + b − 1, x) ≥ a) for whole a and b.
    n = a + b - 1
    tail = sum(math.comb(n, k) * x**k * (1 - x) ** (n - k) for k in range(a, n + 1))
    assert beta_cdf(x, a, b) == pytest.approx(tail, abs=1e-12)


def test_beta_quantiles_match_closed_forms():
    assert beta_quantile(0.37, 1, 1) == pytest.approx(0.37, abs=1e-12)  # uniform
    assert beta_quantile(0.5, 3, 1) == pytest.approx(0.5 ** (1 / 3), abs=1e-12)  # CDF x³
    assert beta_quantile(0.9, 1, 4) == pytest.approx(
        1 - 0.1 ** (1 / 4), abs=1e-12
    )  # CDF 1 − (1 − x)⁴
    assert beta_quantile(0.3, 0.5, 0.5) == pytest.approx(
        math.sin(math.pi * 0.3 / 2) ** 2, abs=1e-12
    )  # arcsine
    assert beta_quantile(0.5, 2, 2) == pytest.approx(0.5, abs=1e-12)  # symmetric
    assert beta_cdf(0.3, 2, 2) == pytest.approx(3 * 0.3**2 - 2 * 0.3**3, abs=1e-15)


@pytest.mark.parametrize(("a", "b"), [(40.5, 300.2), (0.3, 0.7), (1.5, 13.5), (500.0, 500.0)])
def test_beta_quantile_inverts_the_cdf(a, b):
    for p in (0.025, 0.05, 0.5, 0.95, 0.975):
        assert beta_cdf(beta_quantile(p, a, b), a, b) == pytest.approx(p, abs=1e-10)
    low, high = credible_interval(a, b, 0.9)
    assert (beta_cdf(low, a, b), beta_cdf(high, a, b)) == (
        pytest.approx(0.05, abs=1e-10),
        pytest.approx(0.95, abs=1e-10),
    )


# --- Choosing the channel ---------------------------------------------------------------------------


def test_chooses_the_highest_posterior_mean_among_available_channels():
    estimates = {
        "email": made("email", 0.10, 20),
        "sms": made("sms", 0.41, 12),
        "push": made("push", 0.30, 5),
    }
    choice = choose_channel(
        estimates,
        {"email", "sms", "push"},
        fallback_order=ORDER,
        explore_rate=0.0,
        rng=random.Random(1),
    )
    assert (choice.channel, choice.reason, choice.explored) == ("sms", Reason.AFFINITY, False)
    assert choice.fallbacks == ("push", "email")  # the others, in fallback order
    assert [e.channel for e in choice.ranked] == ["sms", "push", "email"]


def test_an_unavailable_best_channel_falls_back_to_the_best_available_one():
    estimates = {
        "email": made("email", 0.10, 20),
        "sms": made("sms", 0.41, 12),
        "push": made("push", 0.30, 5),
    }
    choice = choose_channel(
        estimates, {"email", "push"}, fallback_order=ORDER, explore_rate=0.0, rng=random.Random(1)
    )
    assert (choice.channel, choice.fallbacks) == ("push", ("email",))
    assert choice.unavailable_best == estimates["sms"]
    assert choice.explain().endswith("; SMS engages more (41%) but is unavailable")


def test_ties_go_to_the_channel_earlier_in_the_fallback_order():
    estimates = {"email": made("email", 0.25, 8), "push": made("push", 0.25, 8)}
    for order in (("push", "email"), ("email", "push")):
        choice = choose_channel(
            estimates,
            {"email", "push"},
            fallback_order=order,
            explore_rate=0.0,
            rng=random.Random(1),
        )
        assert choice.channel == order[0]


def test_never_chooses_a_channel_outside_the_fallback_order_and_says_when_none_is_left():
    estimates = {"email": made("email", 0.10, 20), "sms": made("sms", 0.41, 12)}
    only_email = choose_channel(
        estimates,
        {"email", "sms"},
        fallback_order=("email",),
        explore_rate=0.0,
        rng=random.Random(1),
    )
    assert (only_email.channel, only_email.reason, only_email.fallbacks) == (
        "email",
        Reason.ONLY_AVAILABLE,
        (),
    )
    nothing = choose_channel(
        estimates, set(), fallback_order=ORDER, explore_rate=0.5, rng=random.Random(1)
    )
    assert (nothing.channel, nothing.reason, nothing.explain()) == (
        None,
        Reason.NONE_AVAILABLE,
        "no channel available",
    )


def test_cold_start_is_the_population_best_available_channel_never_a_random_one():
    priors = {
        "email": ChannelPrior("email", 0.12, 3.0),
        "sms": ChannelPrior("sms", 0.20, 3.0),
        "push": ChannelPrior("push", 0.15, 3.0),
        "in_app": ChannelPrior("in_app", 0.08, 3.0),
    }
    estimates = estimates_for({}, priors, as_of=NOW, config=THIRTY_DAYS)
    picks = {
        choose_channel(
            estimates,
            {"email", "push", "in_app"},
            fallback_order=ORDER,
            explore_rate=1.0,
            rng=random.Random(seed),
        )
        for seed in range(50)
    }
    assert len(picks) == 1  # the same decision whatever the random stream
    choice = picks.pop()
    assert (choice.channel, choice.reason, choice.explored) == ("push", Reason.COLD_START, False)
    assert (
        choice.explain()
        == "no engagement history: push, the population's best available channel (15% engagement)"
    )


def test_explores_at_the_configured_rate_with_thompson_draws():
    # 5,000 decisions at 20%: 1,000 expected, σ = √(5000·0.2·0.8) ≈ 28; allow 4σ.
    estimates = {
        "email": made("email", 0.10, 20),
        "sms": made("sms", 0.41, 12),
        "push": made("push", 0.30, 5),
    }
    rng = random.Random(8)
    choices = [
        choose_channel(
            estimates, {"email", "sms", "push"}, fallback_order=ORDER, explore_rate=0.2, rng=rng
        )
        for _ in range(5000)
    ]
    explored = [c for c in choices if c.explored]
    assert 1000 - 113 <= len(explored) <= 1000 + 113
    assert all(c.reason == Reason.EXPLORED and len(c.draws) == 3 for c in explored)
    assert all(c.channel == "sms" for c in choices if not c.explored)  # the rest are greedy
    assert {c.channel for c in explored} == {"sms", "push", "email"}  # uncertain ones get tried


def test_thompson_draws_rarely_pick_a_channel_known_to_be_poor():
    # Email is Beta(2, 198) (mean 1%, tight), SMS Beta(40, 60): an email draw above an
    # SMS draw is a 1-in-a-billion event.
    estimates = {
        "email": ChannelEstimate("email", 2.0, 198.0, 200.0, 1.0, raw_sends=200),
        "sms": ChannelEstimate("sms", 40.0, 60.0, 97.0, 37.0, raw_sends=97),
    }
    rng = random.Random(3)
    choices = [
        choose_channel(estimates, {"email", "sms"}, fallback_order=ORDER, explore_rate=1.0, rng=rng)
        for _ in range(2000)
    ]
    assert all(c.explored and c.channel == "sms" for c in choices)


def test_explains_the_choice_with_the_ratio_the_period_and_the_sends():
    first = NOW - 90 * DAY
    estimates = {
        "sms": made("sms", 0.41, 12, first=first),
        "email": made("email", 0.10, 20, first=first),
    }
    choice = choose_channel(
        estimates, {"email", "sms"}, fallback_order=ORDER, explore_rate=0.0, rng=random.Random(1)
    )
    assert choice.explain() == "SMS engagement 4.1× email over 90 days (12 SMS and 20 email sends)"


def test_explains_an_exploring_choice():
    estimates = {"email": made("email", 0.30, 20), "push": made("push", 0.25, 0, strength=2.0)}
    rng = random.Random(0)
    choice = next(
        c
        for c in (
            choose_channel(
                estimates, {"email", "push"}, fallback_order=ORDER, explore_rate=1.0, rng=rng
            )
            for _ in range(50)
        )
        if c.channel == "push"
    )
    drawn = dict(choice.draws)
    assert choice.explain() == (
        f"exploring (Thompson sample): push drew {drawn['push']:.2f} vs email {drawn['email']:.2f}; best estimate email 30%"
    )


# --- Reading the ledger ---------------------------------------------------------------------------


def test_a_message_row_becomes_a_send_whose_time_falls_back_to_its_delivery():
    delivered = NOW - timedelta(hours=3)
    row = Message(
        channel="sms",
        queued_at=delivered - timedelta(seconds=2),
        delivered_at=delivered,
        clicked_at=NOW,
    )
    assert send_from_message(row) == Send("sms", delivered, clicked_at=NOW)
