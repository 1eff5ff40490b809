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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
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
    "do_save_segment", "InvalidSegment", "SegmentDefinition", "CONDITIONS", "ConditionType",
    "Match", "Aggregate", "MAX_CONDITIONS", "MAX_DEPTH", "ANY_CHANNEL", "UNSET", "COMPARISONS",
    "RECENCY_OPERATORS", "TEXT_FIELDS", "TEXT_OPERATORS", "TIME_FIELDS", "TIME_OPERATORS",
    "VALUE_OPERATORS",
]


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


def compile_segment(definition: Any) -> QuerySet[Customer]:
    """The members, as one query (event aggregates are correlated subqueries)."""
    ctx = Context(now=timezone.now())
    return Customer.objects.filter(validate_definition(definition).to_q(ctx))


def member_count(definition: Any) -> int:
    return compile_segment(definition).count()


def member_counts(definitions: Mapping[Any, Any]) -> dict[Any, int | None]:
    """Counts for many definitions in ONE query (a filtered COUNT each); None when invalid."""
    ctx, counts, aggregates = Context(now=timezone.now()), {}, {}
    for n, (key, definition) in enumerate(definitions.items()):
        try:
            q = validate_definition(definition).to_q(ctx)
        except InvalidSegment:
            counts[key] = None
            continue
        aggregates[f"c{n}"] = (key, Count("pk", filter=q) if q else Count("pk"))
    if aggregates:
        row = Customer.objects.aggregate(**{alias: agg for alias, (_, agg) in aggregates.items()})
        counts |= {key: row[alias] for alias, (key, _) in aggregates.items()}
    return counts


def is_member(definition: Any, customer: Customer) -> bool:
    return compile_segment(definition).filter(pk=customer.pk).exists()


@transaction.atomic
def do_save_segment(
    segment: Segment | None, *, name: str, description: str, definition: Any, actor=None
) -> Segment:
    """Create or update a segment, storing its definition validated and canonical."""
    canonical = validate_definition(definition).to_json()
    if segment is None:
        return Segment.objects.create(name=name, description=description, definition=canonical, created_by=actor)
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    segment.name, segment.description, segment.definition = name, description, canonical
    segment.save(update_fields=["name", "description", "definition", "updated_at"])
    return segment
