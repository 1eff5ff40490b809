"""The evaluation harness: a simulated population (``simulate``) played through the real models.

The scenario (settings, occasions, the policies that need no learning) is ``scenario``;
this module plays the model policy and measures.

Timeline: ``days`` days from ``start``. Each person has *occasions*, days on which marketing
wants to reach them (``sends_per_week`` on average); the decision is taken at
``decision_hour`` local time and the message may go at any moment of the next ``window``.

- History, the first ``history_days``: business as usual, identical for every policy: a
  random reachable channel at a random hour from 09:00 to 20:00 local. The models read it
  as they would read the ledger of a shop that installs Chorus.
- Then each policy decides the remaining occasions, all facing the same luck (common
  random numbers, see ``simulate.respond``):
  ``model``: ``decide.choose_send`` (affinity × the best allowed moment, exploring at
  ``explore_rate``, a send node's default), learning incrementally from its own sends
  (full trials, as Chorus stores them) and receipts and the person's organic sessions,
  with population priors and profiles refreshed every ``refresh_days``;
  ``fixed``: email at 10:00 local; ``random``: a random reachable channel at 10:00 local;
  ``oracle``: the true best (channel, hour) of the same window.
  Every policy keeps the governor's shipped quiet hours (SMS and push 21:00–08:00 local).

Figures: ``best_channel_accuracy``, among people with at least 5 messages at the end, the
share whose greedy choice (no exploration) is a true best channel; ``lift_share_of_oracle``,
(model − fixed) / (oracle − fixed) engagement rates over the policy period, exploration
and learning included (``HarnessConfig.reveal`` measures what learning costs: the same
run with the true rates or hours handed to the model); ``cold_start_accuracy``, among people with no history at all, the
share whose choice, at the configured exploration rate, is the population's best
available channel. ``steady_lift_share_of_oracle`` is the lift share over the last
``steady_days`` only, once learning has mostly settled.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from orchestrator.intelligence.affinity import (
    AffinityState,
    ChannelPrior,
    estimates_for,
    population_priors,
    with_engagement,
    with_send,
)
from orchestrator.intelligence.choice import choose_channel
from orchestrator.intelligence.decide import choose_send
from orchestrator.intelligence.scenario import (
    BASELINES,
    HarnessConfig,
    Occasion,
    best_allowed_response,
    business_as_usual,
    occasions_for,
    revealed_estimates,
    revealed_profile,
)
from orchestrator.intelligence.sendtime import (
    ActivityCounts,
    SendTimeProfile,
    customer_profile,
    pooled_distribution,
)
from orchestrator.intelligence.simulate import (
    CHANNELS,
    SimPerson,
    generate_population,
    respond,
    session_times,
)

POLICIES = ("model", "fixed", "random", "oracle")
NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class HarnessResult:
    best_channel_accuracy: float
    lift_share_of_oracle: float
    cold_start_accuracy: float
    steady_lift_share_of_oracle: float  # the same over the last steady_days only
    engagement_rates: Mapping[str, float]
    sends: Mapping[str, int]
    accuracy_after_history: float  # the same measure when the policies take over
    evaluated_customers: int  # people with at least min_prior_messages messages
    cold_start_customers: int
    explored_share: float  # of the model's decisions
    best_channel_send_share: float  # of the model's sends, on a true best channel
    timing_share_of_best: float  # mean response at the model's moment / at the best allowed one

    def lines(self) -> list[str]:
        rates = [
            f"engagement_rate_{policy}: {self.engagement_rates[policy]:.4f}" for policy in POLICIES
        ]
        sends = [f"sends_{policy}: {self.sends[policy]}" for policy in POLICIES]
        return [
            f"best_channel_accuracy: {self.best_channel_accuracy:.2f}",
            f"lift_share_of_oracle: {self.lift_share_of_oracle:.2f}",
            f"cold_start_accuracy: {self.cold_start_accuracy:.2f}",
            *rates,
            f"steady_lift_share_of_oracle: {self.steady_lift_share_of_oracle:.2f}",
            *sends,
            f"accuracy_after_history: {self.accuracy_after_history:.2f}",
            f"evaluated_customers: {self.evaluated_customers}",
            f"cold_start_customers: {self.cold_start_customers}",
            f"explored_share: {self.explored_share:.3f}",
            f"best_channel_send_share: {self.best_channel_send_share:.3f}",
            f"timing_share_of_best: {self.timing_share_of_best:.3f}",
        ]


@dataclass
class _Tally:
    sends: int = 0
    engaged: int = 0
    late_sends: int = 0  # in the last ``steady_days``: learning mostly done
    late_engaged: int = 0
    explored: int = 0
    on_best: int = 0
    timing: float = 0.0

    def record(self, engaged: bool, late: bool) -> None:
        self.sends += 1
        self.engaged += engaged
        self.late_sends += late
        self.late_engaged += engaged and late

    @property
    def rate(self) -> float:
        return self.engaged / self.sends if self.sends else 0.0

    @property
    def late_rate(self) -> float:
        return self.late_engaged / self.late_sends if self.late_sends else 0.0


# --- The policies that need no learning ------------------------------------------------------


def play_baselines(
    person: SimPerson,
    occasions: Sequence[Occasion],
    config: HarnessConfig,
    tallies: Mapping[str, _Tally],
) -> None:
    for occasion in occasions:
        if occasion.decide_at < config.policy_start:
            continue
        for policy, send in BASELINES.items():
            channel, at = send(person, occasion, config)
            engaged = (
                respond(person.truth, channel, at, occasion.u_engage, occasion.u_when) is not None
            )
            tallies[policy].record(engaged, config.late(occasion))


# --- The model policy -------------------------------------------------------------------------


@dataclass
class _World:
    """What Chorus computes over the whole population, refreshed periodically."""

    config: HarnessConfig
    priors: Mapping[str, ChannelPrior] = field(default_factory=dict)
    population: tuple[float, ...] = ()
    generation: int = 0

    def refresh(self, learners: Sequence[_Learner], as_of: datetime) -> None:
        states = [state for learner in learners for state in learner.states.values()]
        self.priors = population_priors(
            states, channels=CHANNELS, as_of=as_of, config=self.config.affinity
        )
        self.population = pooled_distribution(learner.counts for learner in learners)
        self.generation += 1


class _Learner:
    """The model's view of one person, updated event by event in time order: what Chorus
    would store per customer (affinity states, activity counts), nothing it could not see."""

    def __init__(self, person: SimPerson, config: HarnessConfig):
        self.person, self.config = person, config
        self.states: dict[str, AffinityState] = {}
        self.counts = ActivityCounts()
        self.occasions = occasions_for(person, config)
        rng = random.Random(f"chorus-intelligence:{config.seed}:{person.index}:sessions")
        self.sessions = session_times(person, start=config.start, days=config.days, rng=rng)
        self.explore_rng = random.Random(
            f"chorus-intelligence:{config.seed}:{person.index}:explore"
        )
        # (at, seq, kind, channel, sent_at): sends and receipts not yet happened
        self.queue: list[tuple[datetime, int, str, str, datetime]] = []
        self.next_session = self.next_occasion = self.seq = 0
        self.raw_sends = 0
        self.cached: tuple[int, SendTimeProfile] | None = None

    def run_until(self, until: datetime, world: _World, tally: _Tally) -> None:
        """Everything that happens before `until`, in time order (receipts first on a tie)."""
        while True:
            queued = self.queue[0][0] if self.queue else NEVER
            session = (
                self.sessions[self.next_session]
                if self.next_session < len(self.sessions)
                else NEVER
            )
            occasion = (
                self.occasions[self.next_occasion]
                if self.next_occasion < len(self.occasions)
                else None
            )
            decide_at = occasion.decide_at if occasion is not None else NEVER
            moment = min(queued, session, decide_at)
            if moment >= until:
                return
            if moment == queued:
                self.apply(heapq.heappop(self.queue))
            elif moment == session:
                self.observe_activity(session)
                self.next_session += 1
            else:
                assert occasion is not None
                self.act(occasion, world, tally)
                self.next_occasion += 1

    def apply(self, item: tuple[datetime, int, str, str, datetime]) -> None:
        at, _, kind, channel, sent_at = item
        state = self.states.get(channel, AffinityState(channel))
        affinity = self.config.affinity
        if kind == "send":
            # A full trial, as Chorus stores it (store.record_sends; see affinity's docstring).
            self.states[channel] = with_send(state, sent_at, affinity)
            self.raw_sends += 1
        else:
            self.states[channel] = with_engagement(state, sent_at=sent_at, at=at, config=affinity)
            self.observe_activity(at)

    def observe_activity(self, at: datetime) -> None:
        self.counts = self.counts.with_event(at, self.person.truth.zone)
        self.cached = None

    def act(self, occasion: Occasion, world: _World, tally: _Tally) -> None:
        person, config = self.person, self.config
        if occasion.decide_at < config.policy_start:
            channel, at = business_as_usual(person, occasion)
        else:
            channel, at = self.decide(occasion, world, tally)
        engaged_at = respond(person.truth, channel, at, occasion.u_engage, occasion.u_when)
        self.schedule(at, "send", channel, at)
        if engaged_at is not None:
            self.schedule(engaged_at, "receipt", channel, at)
        if occasion.decide_at >= config.policy_start:
            tally.record(engaged_at is not None, config.late(occasion))

    def decide(self, occasion: Occasion, world: _World, tally: _Tally) -> tuple[str, datetime]:
        config, truth = self.config, self.person.truth
        if "channel" in config.reveal:
            estimates = revealed_estimates(self.person)
        else:
            estimates = estimates_for(
                self.states, world.priors, as_of=occasion.decide_at, config=config.affinity
            )
        plan = choose_send(
            estimates,
            self.profile(world),
            truth.reachable,
            now=occasion.decide_at,
            window=config.window,
            tz=truth.zone,
            fallback_order=CHANNELS,
            explore_rate=config.explore_rate,
            rng=self.explore_rng,
            quiet_hours=config.quiet_hours,
        )
        assert plan.channel is not None  # email is always reachable and never quiet
        tally.explored += plan.choice.explored
        tally.on_best += plan.channel in truth.best_channels
        best = best_allowed_response(self.person, plan.channel, occasion, config)
        tally.timing += (
            truth.response(plan.timing.local.weekday() * 24 + plan.timing.local.hour) / best
            if plan.timing
            else 0.0
        )
        return plan.channel, plan.at

    def schedule(self, at: datetime, kind: str, channel: str, sent_at: datetime) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, channel, sent_at))

    def profile(self, world: _World) -> SendTimeProfile:
        if "time" in self.config.reveal:
            return revealed_profile(self.person)
        if self.cached is None or self.cached[0] != world.generation:
            profile = customer_profile(
                self.counts,
                population=world.population,
                config=self.config.sendtime,
            )
            self.cached = (world.generation, profile)
        return self.cached[1]


# --- Measuring --------------------------------------------------------------------------------


def greedy_accuracy(
    learners: Sequence[_Learner], world: _World, as_of: datetime
) -> tuple[float, int]:
    """Share of people with enough messages whose greedy choice is a true best channel."""
    config = learners[0].config if learners else HarnessConfig()
    judged = [ln for ln in learners if ln.raw_sends >= config.min_prior_messages]
    right = 0
    for learner in judged:
        estimates = estimates_for(learner.states, world.priors, as_of=as_of, config=config.affinity)
        choice = choose_channel(
            estimates,
            learner.person.truth.reachable,
            fallback_order=CHANNELS,
            explore_rate=0.0,
            rng=random.Random(0),
        )
        right += choice.channel in learner.person.truth.best_channels
    return (right / len(judged) if judged else 0.0), len(judged)


def population_best(reachable: Sequence[str], priors: Mapping[str, ChannelPrior]) -> str:
    """The available channel with the highest population rate (the first of equals)."""
    return max((c for c in CHANNELS if c in reachable), key=lambda c: priors[c].mean)


def cold_start_accuracy(config: HarnessConfig, priors: Mapping[str, ChannelPrior]) -> float:
    """Newcomers with no history at all, choosing at the configured exploration rate: the
    share whose channel is the population's best among the channels they can receive."""
    newcomers = generate_population(
        config.cold_start_customers, config.seed, first_index=config.customers
    )
    estimates = estimates_for({}, priors, as_of=config.end, config=config.affinity)
    right = 0
    for person in newcomers:
        rng = random.Random(f"chorus-intelligence:{config.seed}:{person.index}:cold")
        choice = choose_channel(
            estimates,
            person.truth.reachable,
            fallback_order=CHANNELS,
            explore_rate=config.explore_rate,
            rng=rng,
        )
        right += choice.channel == population_best(person.truth.reachable, priors)
    return right / len(newcomers) if newcomers else 1.0


def boundaries(config: HarnessConfig) -> list[datetime]:
    """Refresh moments: every refresh_days, the policy start, and the end."""
    step = timedelta(days=config.refresh_days)
    moments = {config.start + step * k for k in range(config.days // config.refresh_days + 1)}
    moments |= {config.policy_start, config.end}
    return sorted(m for m in moments if config.start <= m <= config.end)


def run(config: HarnessConfig) -> HarnessResult:
    people = generate_population(config.customers, config.seed)
    learners = [_Learner(person, config) for person in people]
    tallies = {policy: _Tally() for policy in POLICIES}
    for learner in learners:
        play_baselines(learner.person, learner.occasions, config, tallies)
    world = _World(config)
    after_history = 0.0
    moments = boundaries(config)
    for begin, until in zip(moments, moments[1:], strict=False):
        world.refresh(learners, begin)
        if begin == config.policy_start:
            after_history, _ = greedy_accuracy(learners, world, begin)
        for learner in learners:
            learner.run_until(until, world, tallies["model"])
    world.refresh(learners, config.end)
    accuracy, judged = greedy_accuracy(learners, world, config.end)
    return _result(
        config, tallies, accuracy, judged, after_history, cold_start_accuracy(config, world.priors)
    )


def lift_share(rates: Mapping[str, float]) -> float:
    """(model − fixed) / (oracle − fixed): how much of the oracle's lift the model gets."""
    span = rates["oracle"] - rates["fixed"]
    return (rates["model"] - rates["fixed"]) / span if span > 0 else 0.0


def _result(config, tallies, accuracy, judged, after_history, cold) -> HarnessResult:
    rates = {policy: tallies[policy].rate for policy in POLICIES}
    late = {policy: tallies[policy].late_rate for policy in POLICIES}
    model = tallies["model"]
    sends = max(1, model.sends)
    return HarnessResult(
        best_channel_accuracy=accuracy,
        lift_share_of_oracle=lift_share(rates),
        cold_start_accuracy=cold,
        steady_lift_share_of_oracle=lift_share(late),
        engagement_rates=MappingProxyType(rates),
        sends=MappingProxyType({policy: tallies[policy].sends for policy in POLICIES}),
        accuracy_after_history=after_history,
        evaluated_customers=judged,
        cold_start_customers=config.cold_start_customers,
        explored_share=model.explored / sends,
        best_channel_send_share=model.on_best / sends,
        timing_share_of_best=model.timing / sends,
    )
