"""The proof: a simulated population with known ground truth played through the real models.

One small seeded run (150 customers × 90 days, 30 of them history) checks the aims: it
takes a few seconds. ``bench/intelligence.py`` runs the same harness at
5,000 customers. The simulator's own tests come first: the models are only as well tested
as the truth they are measured against.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.intelligence.affinity import ChannelPrior
from orchestrator.intelligence.harness import (
    boundaries,
    cold_start_accuracy,
    population_best,
    run,
)
from orchestrator.intelligence.scenario import HarnessConfig, occasions_for, oracle_send
from orchestrator.intelligence.sendtime import hour_of_week
from orchestrator.intelligence.simulate import (
    BEST_RATE,
    CHANNELS,
    EMAIL,
    OTHER_RATE,
    generate_population,
    respond,
)

SMALL = HarnessConfig(customers=150, days=90, history_days=30, cold_start_customers=100, seed=1)


# --- The simulated truth --------------------------------------------------------------------


def test_the_population_is_the_same_person_by_person_whatever_its_size():
    assert generate_population(4, seed=7)[3] == generate_population(40, seed=7)[3]
    assert generate_population(4, seed=7)[3] != generate_population(4, seed=8)[3]


def test_most_people_have_one_clearly_best_channel_and_some_a_tie():
    people = generate_population(1000, seed=3)
    tied = [p for p in people if len(p.truth.best_channels) == 2]
    assert 0.05 <= len(tied) / len(people) <= 0.12  # TIE_SHARE is 10% of those with 2+ channels
    for person in people:
        truth = person.truth
        rates = sorted((truth.channel_rates[c] for c in truth.reachable), reverse=True)
        assert BEST_RATE[0] <= rates[0] <= BEST_RATE[1]
        if len(truth.best_channels) == 1 and len(rates) > 1:
            assert (
                rates[1] <= OTHER_RATE[1] and rates[0] >= 3 * OTHER_RATE[1]
            )  # clearly best: 3× or more


def test_reachability_and_zones_vary_and_email_is_always_there():
    people = generate_population(1000, seed=3)
    assert all(EMAIL in p.truth.reachable for p in people)
    assert any("sms" not in p.truth.reachable for p in people)
    assert any("push" not in p.truth.reachable for p in people)
    zones = {p.truth.timezone for p in people}
    assert {"America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata"} <= zones
    assert all(max(p.truth.activity) == 1.0 for p in people)


def test_a_message_at_the_best_hour_engages_at_the_channel_rate():
    truth = generate_population(1, seed=11)[0].truth
    peak = truth.activity.index(1.0)
    at = datetime(2025, 9, 1, tzinfo=UTC)
    while hour_of_week(at, truth.zone) != peak:
        at += timedelta(hours=1)
    rng = random.Random(5)
    for channel in truth.reachable:
        # 20,000 draws: the share is within 4σ of p (σ ≤ 0.0036).
        hits = [respond(truth, channel, at, rng.random(), rng.random()) for _ in range(20_000)]
        assert sum(h is not None for h in hits) / 20_000 == pytest.approx(
            truth.channel_rates[channel], abs=0.015
        )
        assert all(at <= h < at + timedelta(hours=24) for h in hits if h is not None)


def test_responding_is_decided_by_the_uniforms_it_is_given():
    truth = generate_population(1, seed=11)[0].truth
    at = datetime(2025, 9, 3, 18, tzinfo=UTC)
    probability = truth.engagement_probability(EMAIL, at)
    assert respond(truth, EMAIL, at, probability, 0.5) is None
    assert respond(truth, EMAIL, at, probability * 0.99, 0.5) == respond(truth, EMAIL, at, 0.0, 0.5)


def test_the_oracle_sends_on_the_true_best_channel_at_the_true_best_allowed_hour():
    person = next(p for p in generate_population(50, seed=2) if p.truth.best_channels == {EMAIL})
    occasion = occasions_for(person, SMALL)[0]
    channel, at = oracle_send(person, occasion, SMALL)
    assert channel == EMAIL  # email has no quiet hours, so its best hour is the day's best
    window = [occasion.decide_at + timedelta(hours=h) for h in range(24)]
    assert person.truth.response(hour_of_week(at, person.truth.zone)) == max(
        person.truth.response(hour_of_week(t, person.truth.zone)) for t in window
    )


def test_priors_are_refreshed_weekly_and_when_the_policies_take_over():
    moments = boundaries(HarnessConfig(days=20, history_days=10))
    start = HarnessConfig().start
    assert [(m - start).days for m in moments] == [0, 7, 10, 14, 20]


# --- The aims, on a small seeded population ---------------------------------------------------


def test_the_models_meet_the_channel_and_cold_start_aims_and_beat_the_baselines():
    # One run for all the figures (a few seconds): under pytest-xdist a shared fixture
    # would run once per worker.
    result = run(SMALL)

    # The chosen channel is the true best for nine customers in ten, and it kept learning
    # after the history period.
    assert result.evaluated_customers == 150  # everyone has 5+ messages by day 90
    assert result.best_channel_accuracy >= 0.90
    assert result.best_channel_accuracy > result.accuracy_after_history

    # Newcomers get the population's best available channel, every one of them.
    assert result.cold_start_accuracy == 1.0

    # Better than fixed and random sends, below the oracle, on the same occasions.
    rates = result.engagement_rates
    assert len(set(result.sends.values())) == 1
    assert rates["oracle"] > rates["model"] > max(rates["fixed"], rates["random"])

    # The issue aims at 80% of the oracle's lift. Over the whole policy period, learning
    # included, this population gets 0.69; once learning has settled (the last 30 days)
    # 0.73. (0.70 and 0.76 while the harness, unlike Chorus, smoothed each send-time
    # profile toward the person's true cohort.) What is missing is the cost of learning
    # (bench/intelligence.py --diagnose: the same models handed the true rates and hours
    # get 0.98). Pinned so it cannot regress.
    assert result.lift_share_of_oracle >= 0.68
    assert result.steady_lift_share_of_oracle >= 0.73

    # About 5% of decisions (a send node's default) with history and a choice explore;
    # sends land near the best hour.
    assert 0.025 <= result.explored_share <= 0.05
    assert result.timing_share_of_best >= 0.93


def test_handed_the_truth_the_models_get_nearly_all_of_the_oracles_lift():
    """The diagnostic behind the shortfall: what learning the channel and the hour costs."""
    knowing = run(replace(SMALL, customers=60, reveal=frozenset({"channel", "time"})))

    assert knowing.lift_share_of_oracle >= 0.95
    assert knowing.best_channel_send_share >= 0.95


def test_cold_start_stays_deterministic_even_when_every_decision_may_explore():
    priors = {
        c: ChannelPrior(c, mean, 3.0)
        for c, mean in zip(CHANNELS, (0.20, 0.25, 0.30, 0.10), strict=True)
    }
    always_explore = HarnessConfig(
        customers=150, cold_start_customers=300, seed=4, explore_rate=1.0
    )
    assert cold_start_accuracy(always_explore, priors) == 1.0
    assert population_best(("email", "sms"), priors) == "sms"
    assert population_best(("email", "push", "in_app"), priors) == "push"
