"""Send-time optimisation: when in the week a customer is around, and the best moment to send.

The profile has 168 hour-of-week bins in the customer's own time zone (bin 0 is Monday
00:00–01:00 local). Each timestamp is converted at its own instant with zoneinfo, so a
habit at 20:00 local lands in the 20:00 bin on both sides of a daylight-saving change.
Evidence is engagement timestamps (opens, clicks, sessions, purchases), counted rather
than rated against sends: they say when the person is around, whatever we sent them.

Smoothing, three linear layers:

1. Day pooling: ``own[b] = (1 − d)·c[b] + d·H[hour(b)] / 7``, H the customer's hour-of-day
   totals. Habits repeat daily, and 30 events cannot fill 168 bins; the customer's own
   mass stays n events whatever d is.
2. Hierarchy: ``mixed[b] = own[b] + w_cohort·cohort[b] + w_population·population[b]``,
   cohort and population as distributions over the bins, so the weights are pseudo-events:
   a thin history leans on its cohort and the population, a rich one on itself. With no
   events of their own (cold start) the profile is the cohort's and population's shape.
3. A kernel over neighbouring hours, wrapping the week (Sunday 23:00 neighbours Monday
   00:00): ``smoothed[b] = Σ_k K[k]·mixed[b + k] / ΣK``.

Scores are normalised to sum to 1, so ``score × 168`` reads as "× an average hour".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo

HOURS_PER_WEEK = 168
HOUR = timedelta(hours=1)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
EMPTY = (0.0,) * HOURS_PER_WEEK
UNIFORM = (1.0 / HOURS_PER_WEEK,) * HOURS_PER_WEEK

# Local wall-clock windows [(start, end)…] (start after end spans midnight, as the
# governor's quiet hours), or a test of a local datetime; None: nothing is quiet.
QuietHours = Callable[[datetime], bool] | Sequence[tuple[time, time]] | None


@dataclass(frozen=True)
class SendTimeConfig:
    day_pooling: float = 0.9  # d above: 0 keeps weekdays apart, 1 treats every day alike
    cohort_weight: float = 3.0  # pseudo-events
    population_weight: float = 3.0  # pseudo-events
    kernel: tuple[float, ...] = (0.25, 0.5, 1.0, 0.5, 0.25)  # hours −2…+2 (odd length)


@dataclass(frozen=True)
class ActivityCounts:
    """Engagement timestamps of one customer, counted per local hour-of-week bin."""

    counts: tuple[float, ...] = EMPTY
    total: float = 0.0

    def with_event(self, at: datetime, tz: ZoneInfo, weight: float = 1.0) -> ActivityCounts:
        return self.with_bin(hour_of_week(at, tz), weight)

    def with_bin(self, how: int, weight: float = 1.0) -> ActivityCounts:
        counts = list(self.counts)
        counts[how] += weight
        return ActivityCounts(tuple(counts), self.total + weight)

    @classmethod
    def from_times(cls, times: Iterable[datetime], tz: ZoneInfo) -> ActivityCounts:
        counts = [0.0] * HOURS_PER_WEEK
        for at in times:
            counts[hour_of_week(at, tz)] += 1.0
        return cls(tuple(counts), sum(counts))


@dataclass(frozen=True)
class SendTimeProfile:
    scores: tuple[float, ...]  # 168 bins, summing to 1
    events: float  # the customer's own events behind it (0: cold start, population shape)

    @property
    def cold_start(self) -> bool:
        return self.events == 0

    @cached_property
    def peak(self) -> float:
        return max(self.scores)

    def exposure(self, at: datetime, tz: ZoneInfo) -> float:
        """The hour of `at` relative to the best hour of the week (0–1]: the share of a
        full trial a send at that moment counts as in the affinity estimate."""
        return self.scores[hour_of_week(at, tz)] / self.peak

    def hour_of_day_scores(self) -> tuple[float, ...]:
        return tuple(sum(self.scores[day * 24 + hour] for day in range(7)) for hour in range(24))


@dataclass(frozen=True)
class Slot:
    """A moment we could send at: an instant, its local reading and hour-of-week bin."""

    at: datetime
    local: datetime
    how: int


@dataclass(frozen=True)
class TimeChoice:
    at: datetime
    local: datetime
    score: float
    cold_start: bool
    blocked: bool = False  # every moment of the window was quiet: ``at`` is ``now``
    passed_over: datetime | None = None  # a better local hour that quiet hours ruled out

    @property
    def lift(self) -> float:
        """How many times an average hour of the week this hour is."""
        return self.score * HOURS_PER_WEEK

    def explain(self) -> str:
        if self.blocked:
            return "no hour outside quiet hours in the window: now, for the governor to defer"
        hour = self.local.hour
        sentence = f"best hour {hour:02d}:00–{(hour + 1) % 24:02d}:00 local, {WEEKDAYS[self.local.weekday()]}s"
        source = (
            "population profile: no activity of their own yet"
            if self.cold_start
            else f"{self.lift:.1f}× an average hour"
        )
        sentence += f" ({source})"
        if self.passed_over is not None:
            sentence += f"; {self.passed_over:%H:%M} is in quiet hours"
        return sentence


# --- Bins and profiles -----------------------------------------------------------------------


def hour_of_week(at: datetime, tz: ZoneInfo) -> int:
    """The local hour-of-week bin of an aware instant: Monday 00:00–01:00 local is 0."""
    local = at.astimezone(tz)
    return local.weekday() * 24 + local.hour


def distribution(counts: Sequence[float]) -> tuple[float, ...]:
    """Counts as shares summing to 1 (uniform when there are none)."""
    total = sum(counts)
    return tuple(c / total for c in counts) if total > 0 else UNIFORM


def pooled_distribution(members: Iterable[ActivityCounts]) -> tuple[float, ...]:
    """A cohort's or the population's profile: everyone's counts added, then normalised."""
    totals = [0.0] * HOURS_PER_WEEK
    for member in members:
        totals = [t + c for t, c in zip(totals, member.counts, strict=True)]
    return distribution(totals)


def customer_profile(
    counts: ActivityCounts,
    *,
    population: Sequence[float],
    cohort: Sequence[float] | None = None,
    config: SendTimeConfig,
) -> SendTimeProfile:
    """The smoothed profile of one customer (the three layers of the module docstring)."""
    mixed = [
        own + config.population_weight * pop
        for own, pop in zip(
            pooled_over_days(counts.counts, config.day_pooling), population, strict=True
        )
    ]
    if cohort is not None:
        mixed = [m + config.cohort_weight * c for m, c in zip(mixed, cohort, strict=True)]
    return SendTimeProfile(distribution(circular_smooth(mixed, config.kernel)), counts.total)


def pooled_over_days(counts: Sequence[float], share: float) -> list[float]:
    """(1 − share)·c[b] + share·(the same hour's total over the week) / 7."""
    by_hour = [sum(counts[day * 24 + hour] for day in range(7)) / 7.0 for hour in range(24)]
    return [(1.0 - share) * c + share * by_hour[b % 24] for b, c in enumerate(counts)]


def circular_smooth(values: Sequence[float], kernel: Sequence[float]) -> list[float]:
    """Σ_k kernel[k]·values[b + k − r] / Σ kernel, indices wrapping around the week."""
    if len(kernel) % 2 != 1:
        raise ValueError(f"the kernel needs an odd length (a centre), got {len(kernel)}")
    reach, n, weight = len(kernel) // 2, len(values), sum(kernel)
    wrapped = list(values[n - reach :]) + list(values) + list(values[:reach])
    out = [0.0] * n
    for offset, k in enumerate(kernel):
        out = [o + k * v for o, v in zip(out, wrapped[offset : offset + n], strict=True)]
    return [o / weight for o in out]


# --- The best moment -----------------------------------------------------------------------


@lru_cache(maxsize=4096)  # pure, and the same window is often asked for twice (the harness)
def candidate_slots(now: datetime, window: timedelta, tz: ZoneInfo) -> tuple[Slot, ...]:
    """``now`` (the rest of the current hour) and every local hour start in (now, now + window).

    Walking whole hours of elapsed time from a local hour start keeps to local hour
    starts across DST changes: the spring-forward hour is skipped, the fall-back hour
    offered twice (two real hours). A half-hour change (Lord Howe) is re-aligned.
    """
    local_now = now.astimezone(tz)
    slots = [Slot(now, local_now, _bin(local_now))]
    at = local_now.replace(minute=0, second=0, microsecond=0).astimezone(UTC) + HOUR
    end = now.astimezone(UTC) + window  # elapsed time: aware + timedelta in a zone is wall time
    while at < end:
        local = at.astimezone(tz)
        if local.minute:
            at -= timedelta(minutes=local.minute)
            local = at.astimezone(tz)
        if at > now:
            slots.append(Slot(at, local, _bin(local)))
        at += HOUR
    return tuple(slots)


def _bin(local: datetime) -> int:
    return local.weekday() * 24 + local.hour


def quiet_test(quiet_hours: QuietHours) -> Callable[[datetime], bool]:
    """Quiet hours as a test of a local datetime."""
    if quiet_hours is None:
        return lambda local: False
    if callable(quiet_hours):
        return quiet_hours
    windows = tuple(quiet_hours)
    return lambda local: _in_any(local.time(), windows)


def _in_any(wall: time, windows: tuple[tuple[time, time], ...]) -> bool:
    for start, end in windows:  # a loop, not any(): this runs for every slot of every send
        if in_window(wall, start, end):
            return True
    return False


def in_window(local: time, start: time, end: time) -> bool:
    """[start, end), start after end spanning midnight; the governor's rule
    (orchestrator.governor.rules.in_quiet_hours), restated so this package needs no Django."""
    if start < end:
        return start <= local < end
    return start != end and (local >= start or local < end)


def best_slot(
    scores: Sequence[float], slots: Sequence[Slot], is_quiet: Callable[[datetime], bool]
) -> Slot | None:
    """The highest-scoring slot outside quiet hours; the earliest one of equal score."""
    allowed = [slot for slot in slots if not is_quiet(slot.local)]
    return max(allowed, key=lambda slot: scores[slot.how]) if allowed else None


def time_choice(
    profile: SendTimeProfile, slots: Sequence[Slot], quiet_hours: QuietHours = None
) -> TimeChoice:
    """The best allowed slot of `slots` (the first is ``now``), with why."""
    chosen = best_slot(profile.scores, slots, quiet_test(quiet_hours))
    if chosen is None:
        now = slots[0]
        return TimeChoice(
            now.at, now.local, profile.scores[now.how], profile.cold_start, blocked=True
        )
    overall = best_slot(profile.scores, slots, quiet_test(None))
    passed = (
        overall.local
        if overall is not None and profile.scores[overall.how] > profile.scores[chosen.how]
        else None
    )
    return TimeChoice(
        chosen.at, chosen.local, profile.scores[chosen.how], profile.cold_start, passed_over=passed
    )


def best_time(
    profile: SendTimeProfile,
    *,
    now: datetime,
    window: timedelta,
    tz: ZoneInfo,
    quiet_hours: QuietHours = None,
) -> TimeChoice:
    """The best moment in [now, now + window): on a local hour start, or now if the current
    hour is the best, outside quiet hours; ``.at`` is the instant, ``.explain()`` the why."""
    return time_choice(profile, candidate_slots(now, window, tz), quiet_hours)


def peak_hour(profile: SendTimeProfile) -> str:
    """The profile's best hour of the day, all days pooled: "20:00–21:00 local"."""
    by_hour = profile.hour_of_day_scores()
    hour = max(range(24), key=lambda h: by_hour[h])
    return f"{hour:02d}:00–{(hour + 1) % 24:02d}:00 local"


def peak_summary(profile: SendTimeProfile) -> str:
    """The profile in a phrase, for the customer page: "most active 20:00–21:00 local, Tuesdays"."""
    day = max(range(7), key=lambda d: sum(profile.scores[d * 24 : d * 24 + 24]))
    return f"most active {peak_hour(profile)}, {WEEKDAYS[day]}s"
