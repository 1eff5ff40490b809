"""The scenario the harness plays: its settings, the occasions to send, and the policies
that need no learning (business as usual, fixed, random, oracle).

An *occasion* is a day on which marketing wants to reach someone; it carries the uniforms
every policy will face for it (common random numbers, see ``simulate.respond``), so the
policies differ by their choices, not by their luck.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from types import MappingProxyType

from orchestrator.intelligence.affinity import AffinityConfig, ChannelEstimate
from orchestrator.intelligence.choice import DEFAULT_EXPLORE
from orchestrator.intelligence.sendtime import (
    HOURS_PER_WEEK,
    QuietHours,
    SendTimeConfig,
    SendTimeProfile,
    best_slot,
    candidate_slots,
    distribution,
    quiet_test,
)
from orchestrator.intelligence.simulate import EMAIL, PUSH, SMS, SimPerson

# orchestrator/migrations/0007_default_frequency_policy.py: what Chorus ships.
SHIPPED_QUIET_HOURS: Mapping[str, QuietHours] = MappingProxyType(
    {SMS: ((time(21), time(8)),), PUSH: ((time(21), time(8)),)}
)
BAU_HOURS = range(9, 21)


@dataclass(frozen=True)
class HarnessConfig:
    customers: int = 1000
    days: int = 60
    history_days: int = 20
    cold_start_customers: int = 200
    seed: int = 1
    explore_rate: float = DEFAULT_EXPLORE  # a send node's default
    window: timedelta = timedelta(hours=24)
    decision_hour: int = 8
    fixed_hour: int = 10
    refresh_days: int = 7
    steady_days: int = 30  # the closing stretch also reported on its own
    min_prior_messages: int = 5
    # Spans the autumn clock changes of New York, London and Berlin and Sydney's spring one.
    start: datetime = datetime(2025, 9, 1, tzinfo=UTC)
    affinity: AffinityConfig = field(default_factory=AffinityConfig)
    sendtime: SendTimeConfig = field(default_factory=SendTimeConfig)
    quiet_hours: Mapping[str, QuietHours] = field(default_factory=lambda: SHIPPED_QUIET_HOURS)
    # Diagnostics only (bench/intelligence.py --diagnose): hand the model policy the truth
    # about "channel" (true rates instead of learned estimates) or "time" (true activity
    # instead of the learned profile), to measure what learning each one costs.
    reveal: frozenset[str] = frozenset()

    @property
    def policy_start(self) -> datetime:
        return self.start + timedelta(days=self.history_days)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    def late(self, occasion: Occasion) -> bool:
        return occasion.decide_at >= self.end - timedelta(days=self.steady_days)


@dataclass(frozen=True)
class Occasion:
    """A day marketing wants to reach someone, with the luck every policy will face."""

    decide_at: datetime
    u_engage: float
    u_when: float
    u_channel: float
    u_hour: float


# --- Occasions and the policies that need no learning ---------------------------------------


def occasions_for(person: SimPerson, config: HarnessConfig) -> list[Occasion]:
    rng = random.Random(f"chorus-intelligence:{config.seed}:{person.index}:occasions")
    tz, chance = person.truth.zone, person.sends_per_week / 7
    first_day = config.start.astimezone(tz).date()
    found = []
    for day in range(config.days + 1):
        wanted = rng.random() < chance
        draws = (rng.random(), rng.random(), rng.random(), rng.random())
        local = datetime.combine(first_day + timedelta(days=day), time(config.decision_hour), tz)
        decide_at = local.astimezone(UTC)
        if wanted and config.start <= decide_at < config.end:
            found.append(Occasion(decide_at, *draws))
    return found


def at_local_hour(moment: datetime, hour: int, person: SimPerson) -> datetime:
    tz = person.truth.zone
    return datetime.combine(moment.astimezone(tz).date(), time(hour), tz).astimezone(UTC)


def pick(reachable: Sequence[str], u: float) -> str:
    return reachable[min(len(reachable) - 1, int(u * len(reachable)))]


def business_as_usual(person: SimPerson, occasion: Occasion) -> tuple[str, datetime]:
    hour = BAU_HOURS[min(len(BAU_HOURS) - 1, int(occasion.u_hour * len(BAU_HOURS)))]
    return pick(person.truth.reachable, occasion.u_channel), at_local_hour(
        occasion.decide_at, hour, person
    )


def fixed_send(
    person: SimPerson, occasion: Occasion, config: HarnessConfig
) -> tuple[str, datetime]:
    return EMAIL, at_local_hour(occasion.decide_at, config.fixed_hour, person)


def random_send(
    person: SimPerson, occasion: Occasion, config: HarnessConfig
) -> tuple[str, datetime]:
    return pick(person.truth.reachable, occasion.u_channel), at_local_hour(
        occasion.decide_at, config.fixed_hour, person
    )


def oracle_send(
    person: SimPerson, occasion: Occasion, config: HarnessConfig
) -> tuple[str, datetime]:
    """The true best (channel, allowed moment) of the window."""
    truth = person.truth
    slots = candidate_slots(occasion.decide_at, config.window, truth.zone)
    best: tuple[float, str, datetime] | None = None
    for channel in truth.reachable:
        slot = best_slot(truth.activity, slots, quiet_test(config.quiet_hours.get(channel)))
        if slot is None:
            continue
        value = truth.channel_rates[channel] * truth.response(slot.how)
        if best is None or value > best[0]:
            best = (value, channel, slot.at)
    assert best is not None  # email has no quiet hours
    return best[1], best[2]


def best_allowed_response(
    person: SimPerson, channel: str, occasion: Occasion, config: HarnessConfig
) -> float:
    slots = candidate_slots(occasion.decide_at, config.window, person.truth.zone)
    slot = best_slot(person.truth.activity, slots, quiet_test(config.quiet_hours.get(channel)))
    return person.truth.response(slot.how) if slot is not None else 0.0


def revealed_estimates(person: SimPerson) -> dict[str, ChannelEstimate]:
    """The true rates as certain estimates (diagnostics: ``HarnessConfig.reveal``)."""
    sure = 1e6  # pseudo-sends: Thompson draws land on the mean
    return {
        channel: ChannelEstimate(channel, rate * sure, (1.0 - rate) * sure, sure, rate * sure, raw_sends=1)
        for channel, rate in person.truth.channel_rates.items()
    }


def revealed_profile(person: SimPerson) -> SendTimeProfile:
    """The true activity as a send-time profile (diagnostics: ``HarnessConfig.reveal``)."""
    return SendTimeProfile(distribution(person.truth.activity), events=float(HOURS_PER_WEEK))


BASELINES: Mapping[str, Callable[[SimPerson, Occasion, HarnessConfig], tuple[str, datetime]]] = (
    MappingProxyType({"fixed": fixed_send, "random": random_send, "oracle": oracle_send})
)
