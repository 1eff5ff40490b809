"""Segment conditions: reading each kind from JSON, and turning it into a Q over Customer.

Private to customers.segments, the entry point. Each condition type is a frozen dataclass
with ``parse`` (collecting problems by path), ``to_q`` and ``to_json``; ``CONDITIONS`` maps
the ``ConditionType`` enum to them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from django.db.models import (
    Avg,
    Count,
    Exists,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from channels_app.reachability import sendable_q
from customers.enums import Category, Channel, ConsentStatus
from customers.models import ChannelAffinity, Consent, Event
from customers.segment_sql import JSONNumber, json_q, number_q

MAX_DEPTH = 3  # groups inside groups inside groups, no deeper
MAX_CONDITIONS = 50
MAX_LIST = 100
MAX_TEXT = 200
MAX_DAYS = 36_500
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
# Numbers are smaller than 10**30 in magnitude: the bound of numeric text in SQL
# (segment_sql.NUMERIC_TEXT), and far from where floats overflow or int() refuses digits.
MAX_NUMBER = 10**30


class Match(StrEnum):
    ALL = "all"
    ANY = "any"


class Aggregate(StrEnum):
    COUNT = "count"
    LAST_OCCURRED = "last_occurred"
    NEVER_OCCURRED = "never_occurred"
    SUM = "sum"
    AVG = "avg"


COMPARISONS = ("eq", "neq", "gt", "gte", "lt", "lte")
VALUE_OPERATORS = ("eq", "neq", "in", "not_in", "contains", "exists", "not_exists", "gt", "gte", "lt", "lte")
TEXT_OPERATORS = ("eq", "neq", "in", "not_in", "contains", "exists", "not_exists")
TIME_OPERATORS = ("within_days", "not_within_days", "before", "after")
RECENCY_OPERATORS = ("within_days", "not_within_days")
TEXT_FIELDS = ("email", "phone", "timezone", "locale")
TIME_FIELDS = ("first_seen_at", "last_seen_at")
UNSET = "unset"  # consent status: nothing recorded for that channel and category
ANY_CHANNEL = "any"
UNKNOWN_CHANNEL = "unknown"  # best channel: no marketing sent yet, nothing to rank


@dataclass(frozen=True)
class Context:
    now: datetime

    def ago(self, days: int) -> datetime:
        return self.now - timedelta(days=days)


class Reader:
    """Reads one JSON object, collecting problems by path instead of stopping at the first."""

    def __init__(self, raw: Any, path: str, problems: list[tuple[str, str]]):
        self.raw = raw if isinstance(raw, Mapping) else {}
        self.path, self.problems, self.used = path, problems, {"type"}
        if not isinstance(raw, Mapping):
            self.problem("", "must be an object")

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, reason: str) -> None:
        self.problems.append((self.at(key) if key else self.path, reason))

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.raw.get(key, default)

    def text(self, key: str, pattern: re.Pattern | None = None) -> str:
        value = self.get(key)
        if not isinstance(value, str) or not value.strip():
            self.problem(key, "is required" if value in (None, "") else "must be text")
            return ""
        if len(value) > MAX_TEXT:
            self.problem(key, f"must be at most {MAX_TEXT} characters")
        elif pattern and ("__" in value or not all(pattern.match(part) for part in value.split("."))):
            self.problem(key, "must be a name of letters, digits, _ or -, dotted for nesting")
        return value.strip()

    def choice(self, key: str, choices, default: str | None = None) -> str:
        value = self.get(key, default)
        if value not in choices:
            self.problem(key, f"must be one of: {', '.join(choices)}" if value not in (None, "") else "is required")
            return ""
        return value

    def number(self, key: str, *, integer: bool = False, minimum: float | None = None, maximum: float | None = None):
        value = self.get(key)
        if not _number(value, integer=integer):
            self.problem(key, ("is required" if value in (None, "") else "must be a whole number" if integer else "must be a number"))
            return None
        if minimum is not None and value < minimum:
            self.problem(key, f"must be at least {minimum}")
        elif maximum is not None and value > maximum:
            self.problem(key, f"must be at most {maximum}")
        return value

    def days(self, key: str, *, required: bool = True) -> int | None:
        if not required and self.get(key) is None:
            return None
        return self.number(key, integer=True, minimum=1, maximum=MAX_DAYS)

    def forbid(self, key: str, reason: str) -> None:
        self.used.add(key)
        if key in self.raw:
            self.problem(key, reason)

    def finish(self) -> None:
        for key in self.raw:
            if key not in self.used:
                self.problem(str(key), "is not a known key here")


def _read_value(r: Reader, operator: str, key: str = "value"):
    """The value a trait or property operator compares with (None when it takes none)."""
    if operator in ("exists", "not_exists"):
        r.forbid(key, f"is not used with {operator}")
        return None
    if operator in ("gt", "gte", "lt", "lte"):
        return r.number(key)
    value = r.get(key)
    if operator in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            r.problem(key, f"must be a list of 1 to {MAX_LIST} values")
        elif not all(_scalar(item) for item in value):
            r.problem(key, "must hold only text, numbers or true/false")
        else:
            return tuple(value)
        return ()
    if operator == "contains":
        return r.text(key)
    if not _scalar(value):
        r.problem(key, "is required" if value in (None, "") else "must be text, a number or true/false")
    return value


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return value != "" and len(value) <= MAX_TEXT
    return isinstance(value, bool) or _number(value)


def _number(value: Any, *, integer: bool = False) -> bool:
    """A finite int (or float) within ±MAX_NUMBER; never a bool."""
    if isinstance(value, bool) or not isinstance(value, (int,) if integer else (int, float)):
        return False
    return abs(value) < MAX_NUMBER  # False for NaN and ±inf; exact (never overflows) for huge ints


class Condition:
    type: ClassVar[str]

    @classmethod
    def parse(cls, r: Reader, depth: int) -> Condition:
        raise NotImplementedError

    def to_q(self, ctx: Context) -> Q:
        raise NotImplementedError

    def to_json(self) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class TraitCondition(Condition):
    type: ClassVar[str] = "trait"
    trait: str
    operator: str
    value: Any = None

    @classmethod
    def parse(cls, r, depth):
        trait, operator = r.text("trait", KEY), r.choice("operator", VALUE_OPERATORS)
        return cls(trait, operator, _read_value(r, operator) if operator else r.get("value"))

    def to_q(self, ctx):
        return json_q("traits", tuple(self.trait.split(".")), self.operator, self.value)

    def to_json(self):
        return _compact({"type": self.type, "trait": self.trait, "operator": self.operator, "value": _listed(self.value)})


@dataclass(frozen=True)
class FieldCondition(Condition):
    type: ClassVar[str] = "field"
    field: str
    operator: str
    value: Any = None

    @classmethod
    def parse(cls, r, depth):
        field = r.choice("field", TEXT_FIELDS + TIME_FIELDS)
        if field in TIME_FIELDS:
            operator = r.choice("operator", TIME_OPERATORS)
            value = r.days("value") if operator in RECENCY_OPERATORS else _read_instant(r) if operator else None
        else:
            operator = r.choice("operator", TEXT_OPERATORS) if field else r.get("operator")
            value = _read_value(r, operator) if operator in TEXT_OPERATORS else r.get("value")
        if value is not None and operator in TEXT_OPERATORS and not all(isinstance(v, str) for v in _many(value)):
            r.problem("value", "must be text")
        return cls(field, operator, value)

    def to_q(self, ctx):
        f, op, value = self.field, self.operator, self.value
        if op in RECENCY_OPERATORS:
            since = Q(**{f"{f}__gte": ctx.ago(value)})
            return since if op == "within_days" else ~since
        if op in ("before", "after"):
            return Q(**{f"{f}__{'lt' if op == 'before' else 'gt'}": _instant(value)})
        if op in ("exists", "not_exists"):
            blank = Q(**{f: ""})
            return ~blank if op == "exists" else blank
        if op == "contains":
            return Q(**{f"{f}__icontains": value})
        positive = Q()
        for item in _many(value):  # case-insensitive: Paris == paris, Ann@X.com == ann@x.com
            positive |= Q(**{f"{f}__iexact": item})
        return positive if op in ("eq", "in") else ~positive

    def to_json(self):
        return _compact({"type": self.type, "field": self.field, "operator": self.operator, "value": _listed(self.value)})


def _read_instant(r: Reader) -> str | None:
    value = r.get("value")
    if isinstance(value, str) and _instant(value) is not None:
        return value
    r.problem("value", "must be a date (YYYY-MM-DD) or an ISO 8601 date and time")
    return None


def _instant(value: str) -> datetime | None:
    try:
        moment = parse_datetime(value)
        if moment is None and (day := parse_date(value)) is not None:
            moment = datetime(day.year, day.month, day.day)
    except ValueError:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


@dataclass(frozen=True)
class PropertyFilter:
    property: str
    operator: str
    value: Any = None

    def to_json(self) -> dict:
        return _compact({"property": self.property, "operator": self.operator, "value": _listed(self.value)})


@dataclass(frozen=True)
class EventCondition(Condition):
    type: ClassVar[str] = "event"
    event: str
    aggregate: str
    operator: str | None = None
    value: Any = None
    within_days: int | None = None
    property: str | None = None
    where: PropertyFilter | None = None

    @classmethod
    def parse(cls, r, depth):
        event, aggregate = r.text("event"), r.choice("aggregate", list(Aggregate))
        operator, value, prop = None, None, None
        if aggregate in (Aggregate.COUNT, Aggregate.SUM, Aggregate.AVG):
            operator = r.choice("operator", COMPARISONS)
            value = r.number("value", integer=aggregate == Aggregate.COUNT, minimum=0 if aggregate == Aggregate.COUNT else None)
        elif aggregate == Aggregate.LAST_OCCURRED:
            operator, value = r.choice("operator", RECENCY_OPERATORS), r.days("value")
        elif aggregate == Aggregate.NEVER_OCCURRED:
            r.forbid("operator", "is not used with never_occurred")
            r.forbid("value", "is not used with never_occurred")
        if aggregate in (Aggregate.SUM, Aggregate.AVG):
            prop = r.text("property", KEY)
        else:
            r.forbid("property", "is only used with sum and avg")
        if aggregate == Aggregate.LAST_OCCURRED:
            r.forbid("within_days", "is not used with last_occurred: the value is the window")
            within = None
        else:
            within = r.days("within_days", required=False)
        return cls(event, aggregate, operator, value, within, prop, _read_where(r))

    def events(self, ctx: Context) -> QuerySet[Event]:
        events = Event.objects.filter(customer=OuterRef("pk"), name=self.event)
        if self.within_days is not None:
            events = events.filter(occurred_at__gte=ctx.ago(self.within_days))
        if self.where is not None:
            w = self.where
            events = events.filter(json_q("properties", tuple(w.property.split(".")), w.operator, w.value))
        return events.order_by()

    def to_q(self, ctx):
        events = self.events(ctx)
        if self.aggregate == Aggregate.NEVER_OCCURRED:
            return ~Q(Exists(events))
        if self.aggregate == Aggregate.LAST_OCCURRED:
            recent = Q(Exists(events.filter(occurred_at__gte=ctx.ago(self.value))))
            return recent if self.operator == "within_days" else ~recent
        if self.aggregate == Aggregate.COUNT:
            return _count_q(events, self.operator, self.value)
        number = JSONNumber("properties", tuple(self.property.split(".")))
        total = Sum(number) if self.aggregate == Aggregate.SUM else Avg(number)
        per_customer = Subquery(events.values("customer").annotate(v=total).values("v"))
        if self.aggregate == Aggregate.SUM:  # no events sum to 0; an average of nothing is no number
            per_customer = Coalesce(per_customer, 0.0, output_field=FloatField())
        return number_q(per_customer, self.operator, self.value)

    def to_json(self):
        data = {"type": self.type, "event": self.event, "aggregate": self.aggregate, "property": self.property}
        data |= {"operator": self.operator, "value": self.value, "within_days": self.within_days}
        return _compact(data | {"where": self.where.to_json() if self.where else None})


def _count_q(events: QuerySet[Event], operator: str, value: int) -> Q:
    # Counts that only ask "any at all?" are plain EXISTS, which an index answers fastest.
    if (operator, value) in (("gte", 1), ("gt", 0), ("neq", 0)):
        return Q(Exists(events))
    if (operator, value) in (("eq", 0), ("lt", 1), ("lte", 0)):
        return ~Q(Exists(events))
    count = Subquery(events.values("customer").annotate(n=Count("pk")).values("n"))
    return number_q(Coalesce(count, 0, output_field=IntegerField()), operator, value)


def _read_where(r: Reader) -> PropertyFilter | None:
    raw = r.get("where")
    if raw is None:
        return None
    w = Reader(raw, r.at("where"), r.problems)
    w.used.discard("type")
    prop, operator = w.text("property", KEY), w.choice("operator", VALUE_OPERATORS)
    value = _read_value(w, operator) if operator else w.get("value")
    w.finish()
    return PropertyFilter(prop, operator, value)


@dataclass(frozen=True)
class ConsentCondition(Condition):
    type: ClassVar[str] = "consent"
    channel: str
    category: str
    status: str
    operator: str = "eq"

    @classmethod
    def parse(cls, r, depth):
        channel, category = r.choice("channel", Channel.values), r.choice("category", Category.values)
        status = r.choice("status", [*ConsentStatus.values, UNSET])
        return cls(channel, category, status, r.choice("operator", ("eq", "neq"), default="eq"))

    def to_q(self, ctx):
        consents = Consent.objects.filter(customer=OuterRef("pk"), channel=self.channel, category=self.category)
        if self.status == UNSET:
            positive = ~Q(Exists(consents))
        else:
            positive = Q(Exists(consents.filter(status=self.status)))
        return positive if self.operator == "eq" else ~positive

    def to_json(self):
        data = {"type": self.type, "channel": self.channel, "category": self.category, "status": self.status}
        return data | ({"operator": self.operator} if self.operator != "eq" else {})


@dataclass(frozen=True)
class ReachableCondition(Condition):
    """Would (or, with value false, would not) get marketing on a channel, or on any: the
    send-time rule (consent, then an address) of channels_app.reachability, as SQL."""

    type: ClassVar[str] = "reachable"
    channel: str
    value: bool = True

    @classmethod
    def parse(cls, r, depth):
        channel = r.choice("channel", [*Channel.values, ANY_CHANNEL], default=ANY_CHANNEL)
        value = r.get("value", True)
        if not isinstance(value, bool):
            r.problem("value", "must be true or false")
        return cls(channel, value is not False)

    def to_q(self, ctx):
        channels = Channel.values if self.channel == ANY_CHANNEL else [self.channel]
        reachable = Q()
        for channel in channels:
            reachable |= sendable_q(channel, Category.MARKETING)
        return reachable if self.value else ~reachable

    def to_json(self):
        return {"type": self.type, "channel": self.channel} | ({} if self.value else {"value": False})


@dataclass(frozen=True)
class BestChannelCondition(Condition):
    """Their most engaged channel (channel affinity, Braze's "Intelligent Channel"): of the
    channels they were sent marketing on, the one with the highest estimated engagement
    rate (``ChannelAffinity.mean``, as of its last send or engagement; ties go to the
    channel named first alphabetically); ``unknown`` before any marketing send. The same
    ranking as the best-channel send's (orchestrator.intelligence.choice), without the
    send-time factors and exploration of a send."""

    type: ClassVar[str] = "best_channel"
    channel: str
    operator: str = "eq"

    @classmethod
    def parse(cls, r, depth):
        channel = r.choice("channel", [*Channel.values, UNKNOWN_CHANNEL])
        return cls(channel, r.choice("operator", ("eq", "neq"), default="eq"))

    def to_q(self, ctx):
        evidence = ChannelAffinity.objects.filter(raw_sends__gt=0)
        if self.channel == UNKNOWN_CHANNEL:
            positive = ~Q(Exists(evidence.filter(customer=OuterRef("pk"))))
        else:
            better = evidence.filter(customer=OuterRef("customer")).filter(
                Q(mean__gt=OuterRef("mean")) | Q(mean=OuterRef("mean"), channel__lt=OuterRef("channel"))
            )
            positive = Q(Exists(evidence.filter(customer=OuterRef("pk"), channel=self.channel).filter(~Exists(better))))
        return positive if self.operator == "eq" else ~positive

    def to_json(self):
        return {"type": self.type, "channel": self.channel} | ({"operator": self.operator} if self.operator != "eq" else {})


@dataclass(frozen=True)
class GroupCondition(Condition):
    type: ClassVar[str] = "group"
    match: str
    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, r, depth):
        if depth >= MAX_DEPTH:
            r.problem("", f"groups may be nested at most {MAX_DEPTH} deep")
            r.used.update(r.raw)
            return cls(Match.ALL, ())
        match = r.choice("match", list(Match), default=Match.ALL)
        conditions = read_conditions(r, depth + 1, allow_empty=False)
        return cls(match, conditions)

    def to_q(self, ctx):
        return combine(self.match, self.conditions, ctx)

    def to_json(self):
        return {"type": self.type, "match": self.match, "conditions": [c.to_json() for c in self.conditions]}


class ConditionType(StrEnum):
    TRAIT = "trait"
    FIELD = "field"
    EVENT = "event"
    CONSENT = "consent"
    REACHABLE = "reachable"
    BEST_CHANNEL = "best_channel"
    GROUP = "group"


CONDITIONS: dict[ConditionType, type[Condition]] = {
    ConditionType.TRAIT: TraitCondition,
    ConditionType.FIELD: FieldCondition,
    ConditionType.EVENT: EventCondition,
    ConditionType.CONSENT: ConsentCondition,
    ConditionType.REACHABLE: ReachableCondition,
    ConditionType.BEST_CHANNEL: BestChannelCondition,
    ConditionType.GROUP: GroupCondition,
}


def read_conditions(r: Reader, depth: int, *, allow_empty: bool) -> tuple[Condition, ...]:
    raw = r.get("conditions", [] if allow_empty else None)
    if not isinstance(raw, list) or (not raw and not allow_empty):
        r.problem("conditions", "must be a non-empty list" if not allow_empty else "must be a list")
        return ()
    conditions = []
    for index, item in enumerate(raw):
        c = Reader(item, r.at(f"conditions.{index}"), r.problems)
        kind = c.choice("type", list(ConditionType)) if isinstance(item, Mapping) else ""
        if kind:
            conditions.append(CONDITIONS[ConditionType(kind)].parse(c, depth))
            c.finish()
    return tuple(conditions)


def count_conditions(conditions) -> int:
    return sum(1 + (count_conditions(c.conditions) if isinstance(c, GroupCondition) else 0) for c in conditions)


def combine(match: str, conditions: tuple[Condition, ...], ctx: Context) -> Q:
    if not conditions:
        return Q()
    combined = conditions[0].to_q(ctx)
    for condition in conditions[1:]:
        q = condition.to_q(ctx)
        combined = combined | q if match == Match.ANY else combined & q
    return combined


def _many(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _listed(value):
    return list(value) if isinstance(value, tuple) else value


def _compact(data: dict) -> dict:
    return {k: v for k, v in data.items() if v is not None}
