"""When delays and wait timeouts end: local wall times, weekdays, DST and date traits."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.engine.timing import (
    customer_zone,
    delay_until,
    duration,
    next_local_time,
    parse_hhmm,
    timeout_at,
)

NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


# A cart abandoned on Tuesday 2025-06-10 at 21:14 in New York (EDT, UTC-4).
TUESDAY_EVENING_NY = utc(2025, 6, 11, 1, 14)


def test_next_nine_am_after_tuesday_evening_is_wednesday_nine_am_local():
    when = next_local_time(TUESDAY_EVENING_NY, NEW_YORK, time(9, 0))
    assert when == utc(2025, 6, 11, 13, 0)
    assert when.tzinfo is UTC


def test_a_time_later_today_is_today():
    assert next_local_time(TUESDAY_EVENING_NY, NEW_YORK, time(22, 0)) == utc(2025, 6, 11, 2, 0)


def test_the_current_minute_itself_is_not_strictly_after_now():
    nine_am = utc(2025, 6, 11, 13, 0)
    assert next_local_time(nine_am, NEW_YORK, time(9, 0)) == utc(2025, 6, 12, 13, 0)


def test_weekdays_skip_to_the_next_allowed_day():
    # Friday 2025-06-13 10:00 New York; only Mondays allowed.
    friday_morning = utc(2025, 6, 13, 14, 0)
    assert next_local_time(friday_morning, NEW_YORK, time(9, 0), weekdays=[0]) == utc(2025, 6, 16, 13, 0)


def test_same_weekday_already_past_waits_a_full_week():
    assert next_local_time(TUESDAY_EVENING_NY, NEW_YORK, time(9, 0), weekdays=[1]) == utc(2025, 6, 17, 13, 0)


def test_empty_weekdays_are_refused():
    with pytest.raises(ValueError, match="weekdays"):
        next_local_time(TUESDAY_EVENING_NY, NEW_YORK, time(9, 0), weekdays=[])


def test_time_skipped_by_spring_forward_runs_at_the_end_of_the_gap():
    # 2025-03-30 in Paris: 02:00 CET jumps to 03:00 CEST, so 02:30 never happens.
    when = next_local_time(utc(2025, 3, 29, 12, 0), PARIS, time(2, 30))
    assert when == utc(2025, 3, 30, 1, 0)
    assert when.astimezone(PARIS).strftime("%H:%M %Z") == "03:00 CEST"


def test_ambiguous_fall_back_time_runs_at_its_first_occurrence():
    # 2025-10-26 in Paris: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice.
    when = next_local_time(utc(2025, 10, 25, 12, 0), PARIS, time(2, 30))
    assert when == utc(2025, 10, 26, 0, 30)
    assert when.astimezone(PARIS).strftime("%H:%M %Z") == "02:30 CEST"


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="aware"):
        next_local_time(datetime(2025, 6, 11, 1, 14), NEW_YORK, time(9, 0))


def test_customer_zone_is_theirs_when_valid():
    assert customer_zone("Europe/Paris") == PARIS


@pytest.mark.parametrize("blank_or_invalid", ["", "Mars/Olympus", "Europe", "../etc/passwd"])
def test_customer_zone_falls_back_to_the_default_setting(settings, blank_or_invalid):
    settings.CHORUS_DEFAULT_TIMEZONE = "Asia/Tokyo"
    assert customer_zone(blank_or_invalid) == ZoneInfo("Asia/Tokyo")


def test_time_of_day_for_customer_without_zone_uses_the_default_setting(settings):
    settings.CHORUS_DEFAULT_TIMEZONE = "Europe/Paris"
    when, note = delay_until({"mode": "time_of_day", "time": "09:00"}, TUESDAY_EVENING_NY, customer_tz="", traits={})
    assert when == utc(2025, 6, 11, 7, 0)
    assert note == "until Wed 09:00 Europe/Paris"


def test_parse_hhmm():
    assert parse_hhmm("09:00") == time(9, 0)
    assert parse_hhmm("23:59") == time(23, 59)
    for bad in ["24:00", "9", "09:60", "nine", ""]:
        with pytest.raises(ValueError, match="HH:MM"):
            parse_hhmm(bad)


def test_duration_units():
    assert duration(45, "minutes") == timedelta(minutes=45)
    assert duration(2, "days") == timedelta(days=2)
    with pytest.raises(ValueError, match="unknown unit"):
        duration(1, "weeks")


def test_duration_delay_is_exact_elapsed_time_across_dst():
    # One day from Saturday noon before the Paris spring-forward is 24 hours later.
    when, note = delay_until(
        {"mode": "duration", "amount": 1, "unit": "days"}, utc(2025, 3, 29, 11, 0), customer_tz="Europe/Paris", traits={}
    )
    assert when == utc(2025, 3, 30, 11, 0)
    assert note == "for 1 day"


def test_time_of_day_delay_explains_when():
    when, note = delay_until(
        {"mode": "time_of_day", "time": "09:00"}, TUESDAY_EVENING_NY, customer_tz="America/New_York", traits={}
    )
    assert (when, note) == (utc(2025, 6, 11, 13, 0), "until Wed 09:00 America/New_York")


def test_time_of_day_delay_on_weekdays_explains_the_day():
    when, note = delay_until(
        {"mode": "time_of_day", "time": "09:00", "weekdays": [0]},
        TUESDAY_EVENING_NY,
        customer_tz="America/New_York",
        traits={},
    )
    assert (when, note) == (utc(2025, 6, 16, 13, 0), "until Mon 09:00 America/New_York")


BIRTHDAY_MINUS_3 = {"mode": "date_trait", "trait": "birthday", "offset_days": -3, "time": "10:00"}


def test_date_trait_three_days_before_birthday_at_ten_local():
    when, note = delay_until(
        BIRTHDAY_MINUS_3, TUESDAY_EVENING_NY, customer_tz="Europe/Paris", traits={"birthday": "2025-07-01"}
    )
    assert when == utc(2025, 6, 28, 8, 0)
    assert note == "until 2025-06-28 10:00 Europe/Paris (birthday -3 days)"


def test_date_trait_counts_calendar_days_across_dst():
    # Three days before 2025-04-01 crosses the Paris spring-forward: still 10:00 local.
    when, _ = delay_until(
        BIRTHDAY_MINUS_3, utc(2025, 3, 1, 0, 0), customer_tz="Europe/Paris", traits={"birthday": "2025-04-01"}
    )
    assert when == utc(2025, 3, 29, 9, 0)
    when, _ = delay_until(
        BIRTHDAY_MINUS_3, utc(2025, 3, 1, 0, 0), customer_tz="Europe/Paris", traits={"birthday": "2025-04-02"}
    )
    assert when == utc(2025, 3, 30, 8, 0)


def test_date_trait_timestamp_takes_the_customers_local_date():
    # 23:30 UTC on 2025-06-30 is already 1 July in Paris.
    when, _ = delay_until(
        BIRTHDAY_MINUS_3,
        TUESDAY_EVENING_NY,
        customer_tz="Europe/Paris",
        traits={"birthday": "2025-06-30T23:30:00Z"},
    )
    assert when == utc(2025, 6, 28, 8, 0)


def test_date_trait_already_past_continues_at_once_with_reason():
    when, note = delay_until(
        BIRTHDAY_MINUS_3, TUESDAY_EVENING_NY, customer_tz="Europe/Paris", traits={"birthday": "1990-07-01"}
    )
    assert when == TUESDAY_EVENING_NY
    assert note == "1990-06-28 10:00 Europe/Paris (birthday -3 days) has already passed; continuing at once"


def test_date_trait_missing_continues_at_once_with_reason():
    when, note = delay_until(BIRTHDAY_MINUS_3, TUESDAY_EVENING_NY, customer_tz="Europe/Paris", traits={})
    assert (when, note) == (TUESDAY_EVENING_NY, "trait 'birthday' is missing; continuing at once")


@pytest.mark.parametrize("unparseable", ["next week", 19900701, "1990-13-45", ["1990-07-01"]])
def test_date_trait_unparseable_continues_at_once_with_reason(unparseable):
    when, note = delay_until(
        BIRTHDAY_MINUS_3, TUESDAY_EVENING_NY, customer_tz="Europe/Paris", traits={"birthday": unparseable}
    )
    assert when == TUESDAY_EVENING_NY
    assert note == f"trait 'birthday' is not a date ({unparseable!r}); continuing at once"


def test_unknown_delay_mode_is_refused():
    with pytest.raises(ValueError, match="unknown delay mode"):
        delay_until({"mode": "forever"}, TUESDAY_EVENING_NY, customer_tz="", traits={})


def test_timeout_as_a_duration():
    timeout = {"amount": 3, "unit": "hours"}
    assert timeout_at(timeout, TUESDAY_EVENING_NY, customer_tz="America/New_York") == utc(2025, 6, 11, 4, 14)


def test_timeout_until_next_local_time():
    timeout = {"until": {"time": "09:00"}}
    assert timeout_at(timeout, TUESDAY_EVENING_NY, customer_tz="America/New_York") == utc(2025, 6, 11, 13, 0)


def test_timeout_until_next_allowed_weekday():
    timeout = {"until": {"time": "09:00", "weekdays": [5, 6]}}
    assert timeout_at(timeout, TUESDAY_EVENING_NY, customer_tz="America/New_York") == utc(2025, 6, 14, 13, 0)
