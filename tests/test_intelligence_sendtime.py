"""Send-time optimisation: hour-of-week bins in local time (DST included), the smoothing
layers on hand-checked counts, ``best_time`` inside its window and outside quiet hours,
and channel and time chosen together.

Pure functions: no database. ``RAW`` switches every smoothing layer off, so the expected
scores are plain shares of the counts.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.intelligence.affinity import ChannelEstimate
from orchestrator.intelligence.decide import choose_send
from orchestrator.intelligence.sendtime import (
    HOURS_PER_WEEK,
    ActivityCounts,
    SendTimeConfig,
    SendTimeProfile,
    best_time,
    candidate_slots,
    customer_profile,
    hour_of_week,
    peak_summary,
    pooled_distribution,
)

NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
RAW = SendTimeConfig(day_pooling=0.0, cohort_weight=0.0, population_weight=0.0, kernel=(1.0,))
UNIFORM = (1 / HOURS_PER_WEEK,) * HOURS_PER_WEEK
SMS_QUIET = [(time(21), time(8))]  # the governor's shipped quiet hours for SMS and push


def ny(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


def counts_at(bins: dict[int, float]) -> ActivityCounts:
    counts = [0.0] * HOURS_PER_WEEK
    for how, count in bins.items():
        counts[how] = count
    return ActivityCounts(tuple(counts), sum(counts))


def daily(hours: dict[int, float]) -> ActivityCounts:
    """The same counts at the same local hours every day of the week."""
    return counts_at({day * 24 + hour: count for day in range(7) for hour, count in hours.items()})


def raw_profile(counts: ActivityCounts) -> SendTimeProfile:
    return customer_profile(counts, population=UNIFORM, config=RAW)


def nonzero(profile: SendTimeProfile) -> dict[int, float]:
    return {how: score for how, score in enumerate(profile.scores) if score}


# --- Bins in local time ------------------------------------------------------------------------


def test_hour_of_week_starts_monday_midnight_local():
    assert hour_of_week(ny(2025, 11, 3, 0, 30), NEW_YORK) == 0  # a Monday
    assert hour_of_week(ny(2025, 11, 9, 23, 59), NEW_YORK) == 167  # the Sunday after
    assert (
        hour_of_week(datetime(2025, 11, 3, 4, 59, tzinfo=UTC), NEW_YORK) == 6 * 24 + 23
    )  # Sunday 23:59 EST


def test_an_evening_habit_stays_at_20_00_local_across_the_november_dst_change():
    # Thursdays at 20:10 New York time: 00:10 UTC under EDT, 01:10 UTC under EST.
    evenings = [
        ny(2025, 10, 23, 20, 10),
        ny(2025, 10, 30, 20, 10),
        ny(2025, 11, 6, 20, 10),
        ny(2025, 11, 13, 20, 10),
    ]
    assert sorted({at.astimezone(UTC).hour for at in evenings}) == [0, 1]
    profile = raw_profile(ActivityCounts.from_times(evenings, NEW_YORK))
    thursday_20 = 3 * 24 + 20
    assert nonzero(profile) == {thursday_20: 1.0}
    # Asked on a Thursday morning either side of the change, the answer is 20:00 local.
    before = best_time(profile, now=ny(2025, 10, 30, 9), window=timedelta(hours=24), tz=NEW_YORK)
    after = best_time(profile, now=ny(2025, 11, 20, 9), window=timedelta(hours=24), tz=NEW_YORK)
    assert before.at == datetime(2025, 10, 31, 0, 0, tzinfo=UTC)
    assert after.at == datetime(2025, 11, 21, 1, 0, tzinfo=UTC)
    assert (
        before.explain()
        == after.explain()
        == "best hour 20:00–21:00 local, Thursdays (168.0× an average hour)"
    )


def test_candidate_slots_follow_local_hours_through_spring_forward_and_fall_back():
    spring = candidate_slots(ny(2026, 3, 8, 0, 30), timedelta(hours=4), NEW_YORK)
    assert [slot.local.hour for slot in spring] == [0, 1, 3, 4, 5]  # 02:00 never shows
    assert [slot.at.astimezone(UTC).strftime("%H:%M") for slot in spring] == [
        "05:30",
        "06:00",
        "07:00",
        "08:00",
        "09:00",
    ]
    autumn = candidate_slots(ny(2026, 11, 1, 0, 30), timedelta(hours=3), NEW_YORK)
    assert [slot.local.strftime("%H:%M %Z") for slot in autumn] == [
        "00:30 EDT",
        "01:00 EDT",
        "01:00 EST",
        "02:00 EST",
    ]


def test_candidate_slots_start_on_local_hours_in_a_half_hour_zone():
    slots = candidate_slots(
        datetime(2025, 11, 4, 10, 10, tzinfo=KOLKATA), timedelta(hours=2), KOLKATA
    )
    assert [slot.local.strftime("%H:%M") for slot in slots] == ["10:10", "11:00", "12:00"]


# --- Smoothing ------------------------------------------------------------------------------------


def test_the_kernel_spreads_an_event_to_neighbouring_hours_and_wraps_the_week():
    # Kernel (1, 2, 1) / 4: a quarter either side, half in place.
    config = SendTimeConfig(
        day_pooling=0.0, cohort_weight=0.0, population_weight=0.0, kernel=(1.0, 2.0, 1.0)
    )
    tuesday_20 = customer_profile(counts_at({44: 1}), population=UNIFORM, config=config)
    assert nonzero(tuesday_20) == {43: 0.25, 44: 0.5, 45: 0.25}
    monday_0 = customer_profile(counts_at({0: 1}), population=UNIFORM, config=config)
    assert nonzero(monday_0) == {167: 0.25, 0: 0.5, 1: 0.25}  # Sunday 23:00 neighbours Monday 00:00


def test_day_pooling_shares_an_hour_with_the_same_hour_on_other_days():
    # d = 0.7: own[Tue 20] = 0.3·1 + 0.7·1/7 = 0.4; every other day's 20:00 gets 0.7/7 = 0.1.
    config = SendTimeConfig(
        day_pooling=0.7, cohort_weight=0.0, population_weight=0.0, kernel=(1.0,)
    )
    profile = customer_profile(counts_at({44: 1}), population=UNIFORM, config=config)
    expected = {day * 24 + 20: 0.1 for day in range(7)} | {44: 0.4}
    assert nonzero(profile) == pytest.approx(expected, abs=1e-12)


def test_thin_histories_lean_on_the_cohort_and_the_population():
    # Own 2 events at bin 10; population (all at bin 100) × 2; cohort (all at 50) × 1:
    # 2 : 2 : 1 of 5.
    config = SendTimeConfig(
        day_pooling=0.0, cohort_weight=1.0, population_weight=2.0, kernel=(1.0,)
    )
    population = counts_at({100: 1}).counts
    cohort = counts_at({50: 1}).counts
    profile = customer_profile(
        counts_at({10: 2}), population=population, cohort=cohort, config=config
    )
    assert nonzero(profile) == {10: 0.4, 100: 0.4, 50: 0.2}
    assert (profile.events, profile.cold_start) == (2.0, False)


def test_cold_start_is_the_population_and_cohort_shape():
    config = SendTimeConfig(
        day_pooling=0.0, cohort_weight=1.0, population_weight=2.0, kernel=(1.0,)
    )
    profile = customer_profile(
        ActivityCounts(),
        population=counts_at({100: 1}).counts,
        cohort=counts_at({50: 1}).counts,
        config=config,
    )
    assert nonzero(profile) == pytest.approx({100: 2 / 3, 50: 1 / 3}, abs=1e-12)
    assert profile.cold_start
    # Bin 100 is Friday 04:00, within a day of Thursday 09:00.
    choice = best_time(profile, now=ny(2025, 11, 6, 9), window=timedelta(hours=24), tz=NEW_YORK)
    assert (
        choice.explain()
        == "best hour 04:00–05:00 local, Fridays (population profile: no activity of their own yet)"
    )


def test_the_population_profile_pools_everyone_counts():
    assert nonzero(
        SendTimeProfile(pooled_distribution([counts_at({5: 1}), counts_at({6: 3})]), 4.0)
    ) == {5: 0.25, 6: 0.75}


# --- The best moment ------------------------------------------------------------------------------


def test_best_time_respects_quiet_hours_given_as_windows_or_as_a_test():
    # Every day: 3 events at 22:00, 1 at 20:00 → 22:00 scores 3/28, 20:00 1/28.
    profile = raw_profile(daily({22: 3, 20: 1}))
    now, window = ny(2025, 11, 4, 12), timedelta(hours=24)  # a Tuesday noon
    free = best_time(profile, now=now, window=window, tz=NEW_YORK)
    assert free.at.astimezone(NEW_YORK) == ny(2025, 11, 4, 22)
    quiet = best_time(profile, now=now, window=window, tz=NEW_YORK, quiet_hours=SMS_QUIET)
    assert quiet.at.astimezone(NEW_YORK) == ny(2025, 11, 4, 20)
    assert (
        quiet.explain()
        == "best hour 20:00–21:00 local, Tuesdays (6.0× an average hour); 22:00 is in quiet hours"
    )
    as_test = best_time(
        profile,
        now=now,
        window=window,
        tz=NEW_YORK,
        quiet_hours=lambda local: local.hour >= 21 or local.hour < 8,
    )
    assert as_test == quiet


def test_sends_now_when_the_current_hour_is_the_best_one():
    profile = raw_profile(daily({20: 1}))
    now = ny(2025, 11, 4, 20, 40)  # tomorrow's 20:00 ties, but it is a day away
    assert best_time(profile, now=now, window=timedelta(hours=24), tz=NEW_YORK).at == now


def test_a_window_entirely_in_quiet_hours_sends_now_for_the_governor_to_defer():
    profile = raw_profile(daily({20: 1}))
    now = ny(2025, 11, 4, 12)
    choice = best_time(
        profile, now=now, window=timedelta(hours=24), tz=NEW_YORK, quiet_hours=lambda local: True
    )
    assert (choice.at, choice.blocked) == (now, True)
    assert (
        choice.explain()
        == "no hour outside quiet hours in the window: now, for the governor to defer"
    )


def test_exposure_and_peak_summary_read_the_profile():
    profile = raw_profile(daily({23: 10, 20: 2}))
    assert profile.exposure(ny(2025, 11, 4, 20, 30), NEW_YORK) == pytest.approx(0.2, abs=1e-12)
    assert profile.exposure(ny(2025, 11, 4, 23, 5), NEW_YORK) == 1.0
    assert profile.exposure(ny(2025, 11, 4, 9), NEW_YORK) == 0.0
    assert peak_summary(profile) == "most active 23:00–00:00 local, Mondays"


# --- Channel and time together -------------------------------------------------------------------


def estimate(channel: str, mean: float, sends: int) -> ChannelEstimate:
    return ChannelEstimate(
        channel, mean * 20, (1 - mean) * 20, float(sends), mean * sends, raw_sends=sends
    )


def test_a_night_owl_gets_an_email_at_23_00_rather_than_a_text_at_20_00():
    # SMS 40% vs email 30% at the best hour. SMS is quiet after 21:00, and 20:00 scores a
    # fifth of 23:00: 0.40 × 0.2 = 0.08 < 0.30 × 1.
    profile = raw_profile(daily({23: 10, 20: 2}))
    estimates = {"sms": estimate("sms", 0.40, 12), "email": estimate("email", 0.30, 20)}
    arguments = {
        "now": ny(2025, 11, 4, 12),
        "window": timedelta(hours=24),
        "tz": NEW_YORK,
        "fallback_order": ("sms", "email"),
        "explore_rate": 0.0,
        "rng": random.Random(1),
    }
    plan = choose_send(
        estimates, profile, {"sms", "email"}, quiet_hours={"sms": SMS_QUIET}, **arguments
    )
    assert (plan.channel, plan.at.astimezone(NEW_YORK)) == ("email", ny(2025, 11, 4, 23))
    assert dict(plan.choice.timing) == {"sms": pytest.approx(0.2, abs=1e-12), "email": 1.0}
    assert plan.explain() == (
        "Email at a better hour: SMS engages more (40% vs 30%) but its best allowed hour is weaker; "
        "best hour 23:00–00:00 local, Tuesdays (20.0× an average hour)"
    )
    unconstrained = choose_send(estimates, profile, {"sms", "email"}, **arguments)
    assert (unconstrained.channel, unconstrained.at.astimezone(NEW_YORK)) == (
        "sms",
        ny(2025, 11, 4, 23),
    )


def test_a_channel_with_no_allowed_moment_in_the_window_is_not_chosen():
    profile = raw_profile(daily({23: 10, 20: 2}))
    estimates = {"sms": estimate("sms", 0.40, 12), "email": estimate("email", 0.30, 20)}
    plan = choose_send(
        estimates,
        profile,
        {"sms", "email"},
        now=ny(2025, 11, 4, 22),
        window=timedelta(hours=2),
        tz=NEW_YORK,
        fallback_order=("sms", "email"),
        explore_rate=0.0,
        rng=random.Random(1),
        quiet_hours={"sms": SMS_QUIET},
    )
    assert (plan.channel, plan.choice.fallbacks) == ("email", ())
