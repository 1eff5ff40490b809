"""The dashboard's filters, read from the query string: period, journey, channel, category."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from django.db.models import QuerySet
from django.http import QueryDict

from customers.enums import Category, Channel

PRESETS = (7, 30, 90)
DEFAULT_PRESET = 30
LONGEST_PERIOD_DAYS = 366


@dataclass(frozen=True)
class Filters:
    since: dt.date  # first UTC day of the period
    until: dt.date  # last UTC day, included
    preset: int | None = DEFAULT_PRESET  # 7, 30 or 90 days ending today; None: chosen dates
    journey_id: int | None = None
    channel: str = ""  # "" = every channel
    category: str = ""  # "" = both categories

    @property
    def since_at(self) -> dt.datetime:
        return dt.datetime.combine(self.since, dt.time(), tzinfo=dt.UTC)

    @property
    def until_at(self) -> dt.datetime:
        """The end of the period, excluded: midnight after its last day."""
        return dt.datetime.combine(self.until + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)

    @property
    def days(self) -> list[dt.date]:
        return [self.since + dt.timedelta(days=i) for i in range((self.until - self.since).days + 1)]

    def narrow(self, qs: QuerySet, *, channel: str | None = "channel", category: str | None = "category",
               journey: str | None = "journey_id") -> QuerySet:
        """``qs`` kept to the chosen channel, category and journey: each argument names the
        field that holds it (None where that filter does not apply to the rows)."""
        for field_name, value in ((channel, self.channel), (category, self.category), (journey, self.journey_id)):
            if field_name and value:
                qs = qs.filter(**{field_name: value})
        return qs

    def query(self, **changes) -> str:
        """This filter set (with changes) as a query string."""
        f = replace(self, **changes) if changes else self
        params = {"period": str(f.preset)} if f.preset else {"from": f.since.isoformat(), "to": f.until.isoformat()}
        if f.journey_id:
            params["journey"] = str(f.journey_id)
        if f.channel:
            params["channel"] = f.channel
        if f.category:
            params["category"] = f.category
        return urlencode(params)


def preset_period(days: int, today: dt.date) -> tuple[dt.date, dt.date]:
    return today - dt.timedelta(days=days - 1), today


def parse_filters(params: QueryDict, today: dt.date) -> tuple[Filters, dict[str, str]]:
    """The filters asked for, and per field what was wrong (that field then keeps its default)."""
    errors: dict[str, str] = {}
    since, until = preset_period(DEFAULT_PRESET, today)
    preset: int | None = DEFAULT_PRESET
    if params.get("from") or params.get("to"):
        period = _dates(params.get("from", ""), params.get("to", ""), errors)
        if period:
            (since, until), preset = period, None
    elif params.get("period"):
        raw = params["period"]
        if raw.isdigit() and int(raw) in PRESETS:
            preset = int(raw)
            since, until = preset_period(preset, today)
        else:
            errors["period"] = f"{raw!r} is not one of {', '.join(map(str, PRESETS))} days"
    return Filters(
        since=since, until=until, preset=preset,
        journey_id=_journey(params.get("journey", ""), errors),
        channel=_choice("channel", params.get("channel", ""), Channel, errors),
        category=_choice("category", params.get("category", ""), Category, errors),
    ), errors


def _dates(raw_from: str, raw_to: str, errors: dict[str, str]) -> tuple[dt.date, dt.date] | None:
    parsed = {}
    for name, raw in (("from", raw_from), ("to", raw_to)):
        try:
            parsed[name] = dt.date.fromisoformat(raw)
        except ValueError:
            errors[name] = f"{raw!r} is not a date (YYYY-MM-DD)" if raw else "required with the other date"
    if errors:
        return None
    if parsed["from"] > parsed["to"]:
        errors["to"] = "must be on or after the start date"
        return None
    if (parsed["to"] - parsed["from"]).days >= LONGEST_PERIOD_DAYS:
        errors["to"] = f"the period may be at most {LONGEST_PERIOD_DAYS} days"
        return None
    return parsed["from"], parsed["to"]


def _journey(raw: str, errors: dict[str, str]) -> int | None:
    if not raw:
        return None
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    errors["journey"] = f"{raw!r} is not a journey id"
    return None


def _choice(name: str, raw: str, enum, errors: dict[str, str]) -> str:
    if not raw or raw in enum.values:
        return raw
    errors[name] = f"{raw!r} is not one of {', '.join(enum.values)}"
    return ""
