"""Segments: audiences defined by conditions on traits, fields, events, consent and reach.

The one entry point for segments. A definition is JSON::

    {"match": "all", "conditions": [
        {"type": "trait", "trait": "plan", "operator": "eq", "value": "pro"},
        {"type": "event", "event": "Order Completed", "aggregate": "count",
         "operator": "gte", "value": 3, "within_days": 180},
        {"type": "group", "match": "any", "conditions": [...]}]}

``validate_definition`` turns it into typed values or raises ``InvalidSegment`` listing
every problem by path (``conditions.2.value``); ``compile_segment`` turns those into ONE
query over Customer (event aggregates are correlated subqueries, never Python loops).

Negations are complements: ``neq``/``not_in`` include customers without the trait,
``never_occurred``, ``last_occurred not_within_days`` and ``count lt 3`` include customers
with no events at all, and ``sum`` of no events is 0. ``avg`` of no events matches nothing.
An empty top-level condition list matches every customer. Time windows are rolling
(``occurred_at >= now - N days``, so an event exactly N days old is inside) and dates
without a time zone are read in the project's (UTC).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from customers.models import Customer, Segment
from customers.segment_conditions import (
    ANY_CHANNEL,
    COMPARISONS,
    CONDITIONS,
    MAX_CONDITIONS,
    MAX_DEPTH,
    RECENCY_OPERATORS,
    TEXT_FIELDS,
    TEXT_OPERATORS,
    TIME_FIELDS,
    TIME_OPERATORS,
    UNKNOWN_CHANNEL,
    UNSET,
    VALUE_OPERATORS,
    Aggregate,
    Condition,
    ConditionType,
    Context,
    Match,
    Reader,
    combine,
    count_conditions,
    read_conditions,
)

__all__ = [  # the entry points, and the vocabulary of definitions re-exported for the editor
    "validate_definition", "compile_segment", "member_count", "member_counts", "is_member",
    "do_save_segment", "InvalidSegment", "SegmentDefinition", "COUNT_FAILED", "CONDITIONS", "ConditionType",
    "Match", "Aggregate", "MAX_CONDITIONS", "MAX_DEPTH", "ANY_CHANNEL", "UNKNOWN_CHANNEL", "UNSET", "COMPARISONS",
    "RECENCY_OPERATORS", "TEXT_FIELDS", "TEXT_OPERATORS", "TIME_FIELDS", "TIME_OPERATORS",
    "VALUE_OPERATORS",
]


logger = logging.getLogger(__name__)

NOT_COMPILABLE = "cannot be turned into a query; change or remove the condition that causes it"


class CountFailed(Enum):
    """A valid definition whose count could not be computed (the error is logged)."""

    FAILED = "failed"


COUNT_FAILED = CountFailed.FAILED


class InvalidSegment(ValidationError):
    """Every problem in a definition, as ``problems``: (path, reason) pairs in order."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        grouped: dict[str, list[str]] = {}
        for path, reason in self.problems:
            grouped.setdefault(path or "definition", []).append(reason)
        super().__init__(grouped)


@dataclass(frozen=True)
class SegmentDefinition:
    match: str
    conditions: tuple[Condition, ...]

    def to_json(self) -> dict:
        return {"match": self.match, "conditions": [c.to_json() for c in self.conditions]}

    def to_q(self, ctx: Context) -> Q:
        return combine(self.match, self.conditions, ctx)


# --- the entry points -----------------------------------------------------------------


def validate_definition(definition: Any) -> SegmentDefinition:
    """Typed definition, or InvalidSegment naming every problem by its path."""
    if isinstance(definition, SegmentDefinition):
        return definition
    problems: list[tuple[str, str]] = []
    r = Reader(definition, "", problems)
    r.used.discard("type")
    match = r.choice("match", list(Match), default=Match.ALL)
    conditions = read_conditions(r, 0, allow_empty=True) if isinstance(definition, Mapping) else ()
    r.finish()
    if count_conditions(conditions) > MAX_CONDITIONS:
        problems.append(("conditions", f"a segment may have at most {MAX_CONDITIONS} conditions"))
    if problems:
        raise InvalidSegment(problems)
    return SegmentDefinition(match, conditions)


def compile_segment(definition: Any, *, now: datetime | None = None) -> QuerySet[Customer]:
    """The members, as one query (event aggregates are correlated subqueries).

    ``now`` anchors relative windows ("in the last 7 days"); a journey passes its step's
    time, so a simulated or late-running step judges by its own clock."""
    ctx = Context(now=now or timezone.now())
    return Customer.objects.filter(validate_definition(definition).to_q(ctx))


def member_count(definition: Any) -> int:
    return compile_segment(definition).count()


def member_counts(definitions: Mapping[Any, Any]) -> dict[Any, int | None | CountFailed]:
    """Counts for many definitions in ONE query (a filtered COUNT each).

    None when a definition is invalid; COUNT_FAILED (logged) when a valid one cannot be
    counted, so one bad segment never takes the others down with it.
    """
    ctx, counts, filters = Context(now=timezone.now()), {}, {}
    for key, definition in definitions.items():
        try:
            q = validate_definition(definition).to_q(ctx)
            _compile(Customer.objects.filter(q))
        except InvalidSegment:
            counts[key] = None
        except Exception:  # noqa: BLE001 - isolate the one segment; the rest are still counted
            logger.exception("Segment %r cannot be compiled; its count is left out", key)
            counts[key] = COUNT_FAILED
        else:
            filters[key] = q
    return counts | _count_together(filters)


def _count_together(filters: dict[Any, Q]) -> dict[Any, int | CountFailed]:
    if not filters:
        return {}
    aliases = {f"c{n}": key for n, key in enumerate(filters)}
    aggregates = {alias: Count("pk", filter=filters[key]) if filters[key] else Count("pk") for alias, key in aliases.items()}
    try:
        with transaction.atomic():  # a savepoint: a failed count must not break the request's transaction
            row = Customer.objects.aggregate(**aggregates)
    except DatabaseError:
        logger.exception("Counting %d segments in one query failed; counting each alone", len(filters))
        return {key: _count_alone(key, q) for key, q in filters.items()}
    return {key: row[alias] for alias, key in aliases.items()}


def _count_alone(key: Any, q: Q) -> int | CountFailed:
    try:
        with transaction.atomic():
            return Customer.objects.filter(q).count()
    except DatabaseError:
        logger.exception("Segment %r cannot be counted", key)
        return COUNT_FAILED


def _compile(members: QuerySet[Customer]) -> None:
    """Turn the query into SQL without running it: raises whatever compiling raises."""
    try:
        members.query.get_compiler(using=members.db).as_sql()
    except EmptyResultSet:  # a condition that can match nobody is still a valid query
        pass


def is_member(definition: Any, customer: Customer, *, now: datetime | None = None) -> bool:
    return compile_segment(definition, now=now).filter(pk=customer.pk).exists()


@transaction.atomic
def do_save_segment(
    segment: Segment | None, *, name: str, description: str, definition: Any, actor=None
) -> Segment:
    """Create or update a segment, storing its definition validated and canonical.

    The definition is also compiled to SQL (not run), so one that validates but cannot
    become a query is refused here, as InvalidSegment, instead of failing every page that
    counts it later.
    """
    validated = validate_definition(definition)
    try:
        _compile(compile_segment(validated))
    except Exception as error:  # noqa: BLE001 - any compile error is a problem with the definition
        logger.exception("A valid segment definition does not compile: %r", validated.to_json())
        raise InvalidSegment([("", NOT_COMPILABLE)]) from error
    canonical = validated.to_json()
    if segment is None:
        return Segment.objects.create(name=name, description=description, definition=canonical, created_by=actor)
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    segment.name, segment.description, segment.definition = name, description, canonical
    segment.save(update_fields=["name", "description", "definition", "updated_at"])
    return segment
