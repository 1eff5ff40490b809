"""Channel affinity: how likely a customer is to engage on each channel, and how sure we are.

Evidence, per (customer, channel), is the customer's marketing sends on that channel and
which of them they engaged with. *Engaged* means clicked (or converted, which implies a
click): SMS opens are invisible and email opens are inflated by privacy proxies (Apple
Mail Privacy Protection opens every message), so clicks are the one signal that compares
across channels.

Recency: a send and its engagement weigh 2^(−age / half_life), the age counted from the
*send* in both cases, so a click always weighs what its send weighs. A send's trial
weight may further be multiplied by its exposure (see ``Send``): how good its moment was.
N (effective sends) and E (effective engagements) are these weighted sums.

Chorus stores every send as a full trial (exposure 1): a send's exposure is what the
send-time profile said *when it went*, which the ledger does not keep, so a rebuild
(``recompute_intelligence``) could not reproduce it; and on the simulator weighting by
the profile made no difference (lift share of the oracle 0.70 with it, 0.69 without,
--quick, within run-to-run noise): the profile measures presence, which overstates the
cost of a bad hour (a message that lands while someone is away is mostly seen later),
so a lucky click at a poor hour counted as several trials' worth. The harness plays
sends as Chorus stores them.

Shrinkage: the estimate is the Beta posterior Beta(α0 + E, β0 + N − E), where the prior
Beta(α0, β0) = Beta(m·k, (1 − m)·k) is the population's rate m on that channel with a
strength of k pseudo-sends. Thin data stays near m; a long history speaks for itself.
m is the pooled (recency-weighted) rate of the whole population on the channel.

k is a fixed pseudo-count by default (3 sends), not the method of moments, although that
is here too (``prior_strength=None``, ``moments_strength``). The method of moments reads
k off how much customers' rates differ, which is right for data collected at random, but
once Chorus targets channels by affinity each channel is mostly sent to the customers
who like it: their rates look alike, the estimated k climbs (2 → 9 over a simulated
quarter) and freezes newer evidence at the population rate. On the simulator
(``bench/intelligence.py``, 400 customers × 90 days) the fixed k = 3 chose the true best
channel for 95% of customers against 90% with the method of moments.

Half-life: 90 days by default. A customer gets a few marketing messages a week, so a
30-day half-life throws half of the evidence away within a month: on the simulator it
chose the true best channel for 82% of customers after 60 days against 89% with 90 days.
(The simulated preferences do not drift, which flatters long half-lives; 90 days still
forgets a habit within a season.)

Incremental: an ``AffinityState`` holds N and E as of a moment. A new send or a new
receipt decays the state to its own moment (multiplying both sums by the elapsed decay)
and adds the send's current weight: O(1), and equal to ``states_from_history`` computed
from scratch (tests/test_intelligence_affinity.py checks that on random histories).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from orchestrator.intelligence.beta import credible_interval

LN2 = math.log(2.0)
RATE_FLOOR = 1e-4


@dataclass(frozen=True)
class Send:
    """One marketing message that left us, and what the customer did with it.

    ``exposure`` (0–1] is how good the moment was: the customer's activity at ``sent_at``
    relative to their best hour, as their send-time profile said when it was sent
    (``SendTimeProfile.exposure``). It is the share of a full trial the send counts as, so the
    estimate is the engagement rate *at a good hour*: an email sent at 03:00 and ignored
    says less against email than one ignored at their usual 20:00, and a channel the
    model happens to send at good hours is not flattered by it (that would make the
    choice self-confirming). 1.0 when unknown: every send a full trial.
    """

    channel: str
    sent_at: datetime
    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    converted_at: datetime | None = None
    exposure: float = 1.0

    @property
    def engaged_at(self) -> datetime | None:
        """The first click or conversion (see the module docstring: opens do not count)."""
        times = [t for t in (self.clicked_at, self.converted_at) if t is not None]
        return min(times) if times else None


@dataclass(frozen=True)
class AffinityConfig:
    half_life: timedelta = timedelta(days=90)
    # A number: that many pseudo-sends on every channel; None: the method of moments.
    prior_strength: float | None = 3.0
    min_strength: float = 2.0
    max_strength: float = 50.0
    # Used while too few customers have history for the method of moments.
    default_strength: float = 10.0
    # The prior of a channel nobody has been sent on yet: a modest rate, held weakly.
    unseen_channel_rate: float = 0.05
    credible_level: float = 0.9
    # Customers need this many raw sends on a channel to enter the method of moments.
    moments_min_sends: int = 3
    moments_min_customers: int = 20


@dataclass(frozen=True)
class AffinityState:
    """Recency-weighted evidence on one (customer, channel) as of ``as_of``."""

    channel: str
    as_of: datetime | None = None
    sends: float = 0.0  # N: Σ decay·exposure over sends, at as_of
    engagements: float = 0.0  # E: Σ decay over engaged sends, at as_of
    # Σ decay²·exposure: E/N varies by about m(1 − m)·spread / N² between customers of
    # equal rate m (exactly so with plain sends), which the method of moments subtracts.
    spread: float = 0.0
    raw_sends: int = 0
    raw_engagements: int = 0
    first_sent_at: datetime | None = None


@dataclass(frozen=True)
class ChannelPrior:
    """The population's rate on a channel, held with the strength of ``strength`` sends."""

    channel: str
    mean: float
    strength: float

    @property
    def alpha(self) -> float:
        return self.mean * self.strength

    @property
    def beta(self) -> float:
        return (1.0 - self.mean) * self.strength


@dataclass(frozen=True)
class ChannelEstimate:
    """The posterior Beta(alpha, beta) of one customer's engagement rate on one channel."""

    channel: str
    alpha: float
    beta: float
    sends: float  # effective (recency-weighted) sends behind it
    engagements: float
    raw_sends: int = 0
    raw_engagements: int = 0
    first_sent_at: datetime | None = None
    as_of: datetime | None = None
    level: float = field(default=0.9, compare=False)

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def has_history(self) -> bool:
        return self.raw_sends > 0

    @cached_property
    def interval(self) -> tuple[float, float]:
        """The equal-tailed credible interval at ``level`` (bisection: computed on demand)."""
        return credible_interval(self.alpha, self.beta, self.level)


# --- Recency weighting -------------------------------------------------------------------


def decay_factor(elapsed: timedelta, half_life: timedelta) -> float:
    """2^(−elapsed / half_life): 1 now, ½ one half-life ago."""
    return math.exp(-LN2 * (elapsed / half_life))


def elapsed(since: datetime, until: datetime) -> timedelta:
    """Real time between two aware moments. Subtracting two datetimes that share a zone
    gives wall-clock time (an hour off across a DST change), so both go to UTC first."""
    return until.astimezone(UTC) - since.astimezone(UTC)


def decayed(state: AffinityState, to: datetime, config: AffinityConfig) -> AffinityState:
    """The state as seen at a later moment `to` (an earlier `to` leaves it as it is)."""
    if state.as_of is not None and to <= state.as_of:
        return state
    factor = (
        decay_factor(elapsed(state.as_of, to), config.half_life) if state.as_of is not None else 1.0
    )
    return AffinityState(
        state.channel,
        to,
        state.sends * factor,
        state.engagements * factor,
        state.spread * factor * factor,
        state.raw_sends,
        state.raw_engagements,
        state.first_sent_at,
    )


def _weight_now(state: AffinityState, sent_at: datetime, config: AffinityConfig) -> float:
    """What a send made at `sent_at` weighs at the state's moment (sends never weigh > 1)."""
    assert state.as_of is not None
    return decay_factor(max(timedelta(0), elapsed(sent_at, state.as_of)), config.half_life)


def with_send(
    state: AffinityState, sent_at: datetime, config: AffinityConfig, *, exposure: float = 1.0
) -> AffinityState:
    """The state after one more send (made at `sent_at`, with its exposure), in O(1)."""
    state = decayed(state, sent_at, config)
    weight = _weight_now(state, sent_at, config)
    first = sent_at if state.first_sent_at is None else min(state.first_sent_at, sent_at)
    return AffinityState(
        state.channel,
        state.as_of,
        state.sends + exposure * weight,
        state.engagements,
        state.spread + exposure * weight * weight,
        state.raw_sends + 1,
        state.raw_engagements,
        first,
    )


def with_engagement(
    state: AffinityState, *, sent_at: datetime, at: datetime, config: AffinityConfig
) -> AffinityState:
    """The state after the receipt, arriving `at`, of an engagement with a send made at `sent_at`."""
    state = decayed(state, at, config)
    return AffinityState(
        state.channel,
        state.as_of,
        state.sends,
        state.engagements + _weight_now(state, sent_at, config),
        state.spread,
        state.raw_sends,
        state.raw_engagements + 1,
        state.first_sent_at,
    )


def states_from_history(
    sends: Iterable[Send], *, as_of: datetime, config: AffinityConfig
) -> dict[str, AffinityState]:
    """Every channel's state at `as_of`, computed from scratch: sends made and receipts
    arrived by then (a click still on its way at `as_of` is not known yet)."""
    per_channel: dict[str, list[Send]] = defaultdict(list)
    for send in sends:
        if send.sent_at <= as_of:
            per_channel[send.channel].append(send)
    return {
        channel: _batch_state(channel, items, as_of, config)
        for channel, items in per_channel.items()
    }


def _batch_state(
    channel: str, sends: list[Send], as_of: datetime, config: AffinityConfig
) -> AffinityState:
    weights = [decay_factor(elapsed(s.sent_at, as_of), config.half_life) for s in sends]
    engaged = [s.engaged_at is not None and s.engaged_at <= as_of for s in sends]
    return AffinityState(
        channel,
        as_of,
        sends=sum(w * s.exposure for w, s in zip(weights, sends, strict=True)),
        engagements=sum(w for w, hit in zip(weights, engaged, strict=True) if hit),
        spread=sum(w * w * s.exposure for w, s in zip(weights, sends, strict=True)),
        raw_sends=len(sends),
        raw_engagements=sum(engaged),
        first_sent_at=min(s.sent_at for s in sends),
    )


# --- The population's prior ---------------------------------------------------------------


def population_priors(
    states: Iterable[AffinityState],
    *,
    channels: Iterable[str],
    as_of: datetime,
    config: AffinityConfig,
) -> dict[str, ChannelPrior]:
    """Each channel's prior from every customer's state on it (see the module docstring)."""
    grouped: dict[str, list[AffinityState]] = defaultdict(list)
    for state in states:
        grouped[state.channel].append(decayed(state, as_of, config))
    return {
        channel: channel_prior(channel, grouped.get(channel, []), config) for channel in channels
    }


def channel_prior(
    channel: str, states: list[AffinityState], config: AffinityConfig
) -> ChannelPrior:
    """The pooled rate m, held with the configured strength or the method-of-moments one."""
    sends = sum(s.sends for s in states)
    if sends <= 0:
        return ChannelPrior(channel, config.unseen_channel_rate, config.min_strength)
    # Kept off 0 and 1: a Beta parameter must be positive.
    mean = min(1.0 - RATE_FLOOR, max(RATE_FLOOR, sum(s.engagements for s in states) / sends))
    strength = (
        config.prior_strength
        if config.prior_strength is not None
        else moments_strength(states, mean, config)
    )
    return ChannelPrior(channel, mean, strength)


def moments_strength(states: list[AffinityState], mean: float, config: AffinityConfig) -> float:
    """The prior strength k by the (weighted) method of moments for the Beta-Binomial.

    With customer i's rate r_i = E_i / N_i on n_i = N_i² / spread_i effective sends (Kish;
    n_i is the plain count of sends when there is no decay or exposure), the Beta-Binomial
    gives Var(r_i) = m(1 − m)·(1/n_i + ρ(1 − 1/n_i)), ρ = 1 / (k + 1). Weighting by n_i:
    E[Σ n_i (r_i − m)²] = m(1 − m)·(C + ρ(Σ n_i − C)) over C customers; solved for ρ.
    Weighting keeps customers with one or two sends from drowning the signal in noise.

    When sampling noise explains all the spread seen (ρ ≤ 0), the data cannot say how
    much customers differ: ``default_strength``, not the maximum (which would freeze
    everyone at the population rate just because histories are short).
    """
    usable = [
        s
        for s in states
        if s.raw_sends >= config.moments_min_sends and s.sends > 0 and s.spread > 0
    ]
    if len(usable) < config.moments_min_customers or not 0.0 < mean < 1.0:
        return config.default_strength
    sizes = [s.sends * s.sends / s.spread for s in usable]
    spread = sum(
        n * (s.engagements / s.sends - mean) ** 2 for n, s in zip(sizes, usable, strict=True)
    )
    customers, total = len(usable), sum(sizes)
    if total <= customers:
        return config.default_strength
    rho = (spread / (mean * (1.0 - mean)) - customers) / (total - customers)
    if rho <= 0:
        return config.default_strength
    return _clamped(1.0 / rho - 1.0, config)


def _clamped(strength: float, config: AffinityConfig) -> float:
    return min(config.max_strength, max(config.min_strength, strength))


# --- Estimates -------------------------------------------------------------------------------


def estimate(
    state: AffinityState | None, prior: ChannelPrior, *, as_of: datetime, config: AffinityConfig
) -> ChannelEstimate:
    """The posterior at `as_of`: Beta(α0 + E, β0 + N − E), E and N decayed to `as_of`."""
    if state is None:
        return ChannelEstimate(
            prior.channel,
            prior.alpha,
            prior.beta,
            0.0,
            0.0,
            as_of=as_of,
            level=config.credible_level,
        )
    state = decayed(state, as_of, config)
    # E can exceed N when engagements came at hours the profile thought poor (N counts
    # exposure): no negative failures.
    failures = max(0.0, state.sends - state.engagements)
    return ChannelEstimate(
        prior.channel,
        prior.alpha + state.engagements,
        prior.beta + failures,
        state.sends,
        state.engagements,
        state.raw_sends,
        state.raw_engagements,
        state.first_sent_at,
        as_of,
        config.credible_level,
    )


def estimates_for(
    states: Mapping[str, AffinityState],
    priors: Mapping[str, ChannelPrior],
    *,
    as_of: datetime,
    config: AffinityConfig,
) -> dict[str, ChannelEstimate]:
    """One customer's estimate on every channel that has a prior (no history: the prior)."""
    return {
        channel: estimate(states.get(channel), prior, as_of=as_of, config=config)
        for channel, prior in priors.items()
    }
