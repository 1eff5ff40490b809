"""A simulated population with known ground truth, and how its people respond to a send.

Each person has a ``TrueProfile``: true engagement probabilities per channel (one clearly
best channel for most, two tied for some), a true hour-of-week activity curve in a local
time zone (zones with and without daylight saving), and reachability (email always; SMS,
push and in-app for some). Plus a marketing cadence and a rate of organic sessions.

The model of behaviour is the demo's (``orchestrator.demo_history``), made continuous:

- ``activity`` is *presence*: when the person is around (awake, on their phone). It peaks
  at 1 in their active hours, is low in the rest of the waking day and near 0 at night.
  Organic sessions fall in hours in proportion to it (in the demo, 80% of sessions fall
  in the active hours).
- Response: P(engage | channel c, sent at t) = p_c × r(t), r(t) = f + (1 − f)·activity(t),
  so r is 1 in the best hour and f ≈ 0.5 when they are away: a message that lands while
  they are away is seen later, buried, at about half the rate (the demo's
  OFF_HOURS_FACTOR = 0.5). p_c is the engagement rate of a message sent at the best hour.
- Someone who engages does so within the day: in hour k after the send (k = 0…23) with
  probability ∝ activity(bin + k)·½^k, so soon when the message lands in their hours and
  more often later when it lands while they are away (the demo's ``seen_at``, smoothed).
  Engagement timestamps therefore say something about their habits, not only our sends.

Shared with the demo (``orchestrator.demo``): ``draw_truth`` returns a TrueProfile for a
given zone, reachability and mobile-first flag; ``demo._person`` calls it and takes
``channel_rates`` as ``ChannelPropensity.click``, ``best_channels`` as
``preferred_channel`` and ``active_hours()`` as ``active_hours``. The demo keeps its own
off-hours factor (``demo_history.OFF_HOURS_FACTOR``, the middle of ``RESPONSE_FLOOR``).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import accumulate
from types import MappingProxyType
from zoneinfo import ZoneInfo

from orchestrator.intelligence.sendtime import HOURS_PER_WEEK, hour_of_week

EMAIL, SMS, PUSH, IN_APP = "email", "sms", "push", "in_app"
CHANNELS: tuple[str, ...] = (EMAIL, SMS, PUSH, IN_APP)
MOBILE, DESKTOP = "mobile", "desktop"

# (IANA zone, share of people). New York, London, Berlin and Sydney change clocks;
# São Paulo (since 2019), Kolkata (+05:30) and Tokyo do not.
ZONES: tuple[tuple[str, float], ...] = (
    ("America/New_York", 0.22),
    ("America/Los_Angeles", 0.14),
    ("America/Chicago", 0.08),
    ("Europe/London", 0.15),
    ("Europe/Berlin", 0.10),
    ("America/Sao_Paulo", 0.06),
    ("Asia/Kolkata", 0.08),
    ("Asia/Tokyo", 0.07),
    ("Australia/Sydney", 0.10),
)
# Peak local hour of activity and its weight, by cohort: mobile-first people skew late.
ARCHETYPES: Mapping[str, tuple[tuple[int, float], ...]] = MappingProxyType(
    {
        DESKTOP: ((7, 0.15), (10, 0.10), (12, 0.25), (18, 0.20), (20, 0.20), (22, 0.10)),
        MOBILE: ((7, 0.10), (12, 0.15), (18, 0.15), (20, 0.25), (21, 0.20), (23, 0.15)),
    }
)
# Which reachable channel is someone's best, by cohort.
PREFERENCES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        DESKTOP: MappingProxyType({EMAIL: 0.45, SMS: 0.20, PUSH: 0.20, IN_APP: 0.15}),
        MOBILE: MappingProxyType({EMAIL: 0.15, SMS: 0.35, PUSH: 0.32, IN_APP: 0.18}),
    }
)
# The demo's click propensities (orchestrator.demo._propensities): p on the best channel,
# and elsewhere: "clearly best" means at least 3× better.
BEST_RATE = (0.30, 0.55)
OTHER_RATE = (0.02, 0.10)
TIE_SHARE = 0.10  # people whose two best reachable channels are exactly tied
# Response when away, relative to the best hour: the demo halves engagement outside
# active hours (demo_history.OFF_HOURS_FACTOR = 0.5); this is that, varied a little.
RESPONSE_FLOOR = (0.4, 0.6)
AWAKE_FLOOR, NIGHT_FLOOR = 0.10, 0.02  # presence outside the active hours
NIGHT = range(0, 7)  # local hours asleep, unless their peak is there
ENGAGE_WITHIN_HOURS = 24
LATER_HOUR_DISCOUNT = 0.5  # each hour of waiting halves the chance it is that hour


@dataclass(frozen=True)
class TrueProfile:
    """What a model should recover about one person; hidden from the models."""

    timezone: str
    reachable: tuple[str, ...]
    channel_rates: Mapping[str, float] = field(hash=False)  # p_c at the best hour
    activity: tuple[float, ...] = field(hash=False)  # presence: 168 local hour-of-week bins, max 1
    response_floor: float = 0.5  # f: response when away, relative to the best hour
    cohort: str = DESKTOP  # observable (the device they mostly use)

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def best_channels(self) -> frozenset[str]:
        """The reachable channels with the highest true rate (two when tied)."""
        top = max(self.channel_rates[c] for c in self.reachable)
        return frozenset(c for c in self.reachable if self.channel_rates[c] == top)

    def response(self, how: int) -> float:
        """r for a send in hour-of-week bin `how`: 1 at the peak, the floor when away."""
        return self.response_floor + (1.0 - self.response_floor) * self.activity[how]

    def engagement_probability(self, channel: str, at: datetime) -> float:
        return self.channel_rates[channel] * self.response(hour_of_week(at, self.zone))

    def active_hours(self, threshold: float = 0.5) -> tuple[int, ...]:
        """Local hours (0–23) of weekdays with presence at or above `threshold` (demo shape)."""
        return tuple(h for h in range(24) if self.activity[h] >= threshold)


@dataclass(frozen=True)
class SimPerson:
    index: int
    truth: TrueProfile
    sends_per_week: float  # marketing messages we would like to send them
    sessions_per_week: float  # organic visits (sessions and purchases), in their habits


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# --- Drawing the truth ------------------------------------------------------------------


def generate_population(n: int, seed: int, *, first_index: int = 0) -> list[SimPerson]:
    """n people; person i is the same for the same seed whatever n is (one stream each)."""
    return [draw_person(index, seed) for index in range(first_index, first_index + n)]


def draw_person(index: int, seed: int) -> SimPerson:
    rng = random.Random(f"chorus-intelligence:{seed}:{index}")
    mobile_first = rng.random() < 0.45
    truth = draw_truth(
        rng,
        timezone=_weighted(rng, ZONES),
        reachable=draw_reachability(rng, mobile_first),
        mobile_first=mobile_first,
    )
    sessions = min(10.0, max(0.3, rng.lognormvariate(math.log(2.0), 0.6)))
    return SimPerson(index, truth, sends_per_week=rng.uniform(2.0, 4.0), sessions_per_week=sessions)


def draw_reachability(rng: random.Random, mobile_first: bool) -> tuple[str, ...]:
    """Email always; SMS with a phone; push with the app or a browser subscription; in-app with the app."""
    phone = rng.random() < (0.9 if mobile_first else 0.6)
    app = rng.random() < (0.8 if mobile_first else 0.15)
    web_push = not app and rng.random() < 0.2
    have = {EMAIL: True, SMS: phone, PUSH: app or web_push, IN_APP: app}
    return tuple(c for c in CHANNELS if have[c])


def draw_truth(
    rng: random.Random, *, timezone: str, reachable: tuple[str, ...], mobile_first: bool
) -> TrueProfile:
    """One person's hidden truth; reusable by the demo generator (see the module docstring)."""
    cohort = MOBILE if mobile_first else DESKTOP
    return TrueProfile(
        timezone=timezone,
        reachable=reachable,
        channel_rates=MappingProxyType(draw_channel_rates(rng, reachable, cohort)),
        activity=draw_activity(rng, cohort),
        response_floor=rng.uniform(*RESPONSE_FLOOR),
        cohort=cohort,
    )


def draw_channel_rates(
    rng: random.Random, reachable: tuple[str, ...], cohort: str
) -> dict[str, float]:
    preferences = PREFERENCES[cohort]
    best = _weighted(rng, [(c, preferences[c]) for c in reachable])
    rates = {c: rng.uniform(*OTHER_RATE) for c in CHANNELS}
    rates[best] = rng.uniform(*BEST_RATE)
    others = [c for c in reachable if c != best]
    if others and rng.random() < TIE_SHARE:
        rates[rng.choice(others)] = rates[best]
    return rates


def draw_activity(rng: random.Random, cohort: str) -> tuple[float, ...]:
    """168 local bins of presence: a bump of active hours around a peak hour over a low
    waking-day floor and a lower night, weekends shifted and scaled, normalised to max 1."""
    peak = _weighted(rng, ARCHETYPES[cohort]) + rng.choice((-1, 0, 0, 1))
    weekend_peak = peak + rng.choice((0, 0, 1, 2))
    # Hours either side of the peak at full presence: the demo's 2–4 hour active windows.
    plateau = rng.choice((0.5, 1.0, 1.0, 1.5))
    spread = rng.uniform(0.75, 1.5)  # hours: how fast presence falls off outside the plateau
    weekend_level = rng.uniform(0.7, 1.2)
    curve = []
    for day in range(7):
        centre, level = (weekend_peak, weekend_level) if day >= 5 else (peak, 1.0)
        for hour in range(24):
            away = max(0.0, _circular_hours(hour, centre) - plateau)
            floor = NIGHT_FLOOR if hour in NIGHT else AWAKE_FLOOR
            curve.append(level * max(floor, math.exp(-(away**2) / (2 * spread**2))))
    top = max(curve)
    return tuple(value / top for value in curve)


def _circular_hours(hour: int, centre: float) -> float:
    distance = abs(hour - centre) % 24
    return min(distance, 24 - distance)


def _weighted(rng: random.Random, pairs: Sequence[tuple]):
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights=weights)[0]


# --- Behaviour ------------------------------------------------------------------------------


def respond(
    truth: TrueProfile, channel: str, at: datetime, u_engage: float, u_when: float
) -> datetime | None:
    """When the person engages with a message sent at `at` (None: never), given two uniforms.

    Passing the uniforms in lets every policy face the same luck for the same occasion
    (common random numbers), so policies differ by their choices, not by their draws.
    """
    if u_engage >= truth.engagement_probability(channel, at):
        return None
    tz, at = truth.zone, at.astimezone(UTC)  # UTC: arithmetic below is elapsed time
    local = at.astimezone(tz)
    start = local.weekday() * 24 + local.hour
    weights = [
        truth.activity[(start + k) % HOURS_PER_WEEK] * LATER_HOUR_DISCOUNT**k
        for k in range(ENGAGE_WITHIN_HOURS)
    ]
    cumulative = list(accumulate(weights))
    target = u_when * cumulative[-1]
    k = min(bisect_right(cumulative, target), ENGAGE_WITHIN_HOURS - 1)
    within = (target - (cumulative[k - 1] if k else 0.0)) / weights[k]  # a fresh uniform in [0, 1)
    hour_start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC) + timedelta(
        hours=k
    )
    if k == 0:
        return at + (hour_start + timedelta(hours=1) - at) * within
    return hour_start + timedelta(hours=within)


def session_times(
    person: SimPerson, *, start: datetime, days: int, rng: random.Random
) -> list[datetime]:
    """Organic visits over [start, start + days): a Poisson process; each lands in an hour
    of its local day drawn in proportion to the person's true activity."""
    tz, rate_per_day = person.truth.zone, person.sessions_per_week / 7
    first_day = start.astimezone(tz).date()
    times, elapsed = [], rng.expovariate(rate_per_day)
    while elapsed < days:
        day = first_day + timedelta(days=int(elapsed))
        weights = person.truth.activity[day.weekday() * 24 : day.weekday() * 24 + 24]
        hour = rng.choices(range(24), weights=weights)[0]
        local = datetime(day.year, day.month, day.day, hour, rng.randrange(60), tzinfo=tz)
        times.append(local.astimezone(UTC))
        elapsed += rng.expovariate(rate_per_day)
    return times
