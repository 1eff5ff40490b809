"""When delays and wait timeouts end: pure functions of the config, the clock and the zone.

Wall-clock times ("09:00", "on Mondays", "3 days before the birthday") are read in the
customer's own time zone, falling back to CHORUS_DEFAULT_TIMEZONE. Results are aware
datetimes in UTC, ready for Enrollment.due_at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

UNITS = ("seconds", "minutes", "hours", "days")
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HHMM = re.compile(r"(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)")


def customer_zone(customer_tz: str) -> ZoneInfo:
    """The customer's IANA zone, or CHORUS_DEFAULT_TIMEZONE when blank or unknown."""
    if customer_tz:
        try:
            return ZoneInfo(customer_tz)
        # Unknown names raise ZoneInfoNotFoundError, odd paths ValueError, and a zone
        # *directory* such as "Europe" raises IsADirectoryError (an OSError).
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    return ZoneInfo(settings.CHORUS_DEFAULT_TIMEZONE)


def parse_hhmm(value: str) -> time:
    """"09:00" -> time(9, 0); ValueError for anything else."""
    match = _HHMM.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected a time as HH:MM, got {value!r}")
    return time(int(match["hour"]), int(match["minute"]))


def duration(amount: int, unit: str) -> timedelta:
    """Exact elapsed time: "1 day" is 24 hours even across a daylight-saving change."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}")
    if amount < 0:
        raise ValueError(f"a duration cannot be negative ({amount} {unit})")
    return timedelta(**{unit: amount})


def next_local_time(
    now: datetime, zone: ZoneInfo, at: time, weekdays: Iterable[int] | None = None
) -> datetime:
    """The first instant after `now` showing `at` on the wall clock on an allowed weekday.

    Monday = 0; `weekdays` None means every day. Each day contributes one instant: the
    first occurrence of an ambiguous (fall-back) time, the end of the gap for a time a
    spring-forward change skips.
    """
    _require_aware(now)
    allowed = set(range(7)) if weekdays is None else set(weekdays)
    if not allowed <= set(range(7)) or not allowed:
        raise ValueError(f"weekdays must be a non-empty subset of 0..6, got {sorted(allowed)}")
    today = now.astimezone(zone).date()
    # Today and the next seven days hold every weekday, including today's next week.
    for offset in range(8):
        day = today + timedelta(days=offset)
        if day.weekday() in allowed:
            candidate = local_instant(day, at, zone)
            if candidate > now:
                return candidate
    raise AssertionError("unreachable: a week always contains an allowed weekday")


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall time `at` on `day` in `zone` (gap -> its end, fold -> first)."""
    wall = datetime.combine(day, at)
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    # A wall time in a spring-forward gap does not survive the round trip through UTC.
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return _end_of_gap(wall, zone)
    return instant


def _end_of_gap(wall: datetime, zone: ZoneInfo) -> datetime:
    """The transition instant that skipped `wall`, found by bisection to the second.

    Read with the offset after the change, `wall` lands before the transition; read with
    the offset before it, after the transition. zoneinfo does not expose transitions.
    """
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    new_offset = after.astimezone(zone).utcoffset()
    low, high = int(before.timestamp()), int(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def delay_until(
    config: dict[str, Any], now: datetime, *, customer_tz: str, traits: dict[str, Any]
) -> tuple[datetime, str]:
    """When a delay node ends, and a note for the step log.

    A date_trait delay that cannot be scheduled (trait missing, unparseable or already
    past) returns `now` with the reason, so the engine continues at once and logs it.
    """
    _require_aware(now)
    mode = config.get("mode")
    if mode == "duration":
        amount, unit = config["amount"], config["unit"]
        return now + duration(amount, unit), f"for {_quantity(amount, unit)}"
    zone = customer_zone(customer_tz)
    if mode == "time_of_day":
        when = next_local_time(now, zone, parse_hhmm(config["time"]), config.get("weekdays"))
        return when, f"until {_local_label(when, zone)}"
    if mode == "date_trait":
        return _date_trait_until(config, now, zone, traits)
    raise ValueError(f"unknown delay mode {mode!r}")


def timeout_at(timeout: dict[str, Any], now: datetime, *, customer_tz: str) -> datetime:
    """When a wait times out: {"amount", "unit"} or {"until": {"time", "weekdays"?}}."""
    _require_aware(now)
    if "until" in timeout:
        until = timeout["until"]
        zone = customer_zone(customer_tz)
        return next_local_time(now, zone, parse_hhmm(until["time"]), until.get("weekdays"))
    return now + duration(timeout["amount"], timeout["unit"])


def _date_trait_until(
    config: dict[str, Any], now: datetime, zone: ZoneInfo, traits: dict[str, Any]
) -> tuple[datetime, str]:
    name = config["trait"]
    offset = int(config.get("offset_days", 0))
    raw = traits.get(name)
    if raw in (None, ""):
        return now, f"trait '{name}' is missing; continuing at once"
    day = trait_date(raw, zone)
    if day is None:
        return now, f"trait '{name}' is not a date ({raw!r}); continuing at once"
    # Calendar arithmetic in local time: "3 days before" keeps the wall time across DST.
    when = local_instant(day + timedelta(days=offset), parse_hhmm(config["time"]), zone)
    label = f"{_local_label(when, zone, with_date=True)} ({name} {offset:+d} days)"
    if when <= now:
        return now, f"{label} has already passed; continuing at once"
    return when, f"until {label}"


def trait_date(value: Any, zone: ZoneInfo) -> date | None:
    """A trait's date: ISO YYYY-MM-DD, or an ISO timestamp read in `zone`; None otherwise."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    # An aware timestamp names an instant: its date is the customer's local date then.
    return moment.astimezone(zone).date() if moment.tzinfo else moment.date()


def _local_label(when: datetime, zone: ZoneInfo, *, with_date: bool = False) -> str:
    local = when.astimezone(zone)
    day = local.strftime("%Y-%m-%d") if with_date else WEEKDAY_NAMES[local.weekday()]
    return f"{day} {local:%H:%M} {zone.key}"


def _quantity(amount: int, unit: str) -> str:
    return f"{amount} {unit[:-1] if amount == 1 else unit}"


def _require_aware(now: datetime) -> None:
    # A naive `now` would silently be read as the server's local time.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
