"""Property filters: conditions on an event's properties, all of which must hold.

Entry, wait and goal filters share this format (docs/journeys.md "Property filters")::

    [{"property": "cart.value", "op": "gte", "value": 100}]

``validate_filters`` names every problem by path (``filters.0.op``); ``matches`` decides a
list against one event's properties. Comparisons never coerce: a number compares with a
number and text with text (ISO dates order correctly as text), and any other pairing is
simply false, so ``"100" gt 5`` neither matches nor raises. Like segments, ``exists``
means present and not null, and ``neq`` also holds when the property is missing. A
malformed filter never holds (and never raises).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "contains", "exists", "not_exists", "in")
ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
}
KEYS = frozenset({"property", "op", "value"})
MAX_FILTERS = 50
MAX_PATH = 200
_MISSING = object()


# --- validation -----------------------------------------------------------------------


def validate_filters(filters: Any, field: str = "filters") -> list[tuple[str, str]]:
    """Every problem in a filter list, as (path, reason) pairs in order."""
    if not isinstance(filters, list):
        return [(field, "must be a list of filters")]
    if len(filters) > MAX_FILTERS:
        return [(field, f"may hold at most {MAX_FILTERS} filters")]
    problems: list[tuple[str, str]] = []
    for index, item in enumerate(filters):
        problems += _validate_filter(item, f"{field}.{index}")
    return problems


def _validate_filter(item: Any, path: str) -> list[tuple[str, str]]:
    if not isinstance(item, Mapping):
        return [(path, "must be an object with property, op and value")]
    problems = [(f"{path}.{key}", "is not a known key here") for key in item if key not in KEYS]
    problems += _validate_property(item.get("property"), f"{path}.property")
    op = item.get("op")
    if op not in OPS:
        reason = "is required" if op in (None, "") else f"must be one of: {', '.join(OPS)}"
        return problems + [(f"{path}.op", reason)]
    return problems + _validate_value(op, item, f"{path}.value")


def _validate_property(prop: Any, path: str) -> list[tuple[str, str]]:
    if prop in (None, ""):
        return [(path, "is required")]
    if not isinstance(prop, str):
        return [(path, "must be text")]
    if len(prop) > MAX_PATH:
        return [(path, f"must be at most {MAX_PATH} characters")]
    if any(not part.strip() for part in prop.split(".")):
        return [(path, "must be a property name, dotted for nesting (a.b), with no empty parts")]
    return []


def _validate_value(op: str, item: Mapping, path: str) -> list[tuple[str, str]]:
    if op in ("exists", "not_exists"):
        return [(path, f"is not used with {op}")] if "value" in item else []
    if "value" not in item:
        return [(path, "is required")]
    value = item["value"]
    if op == "in":
        if not isinstance(value, list) or not value:
            return [(path, "must be a non-empty list of values")]
        return [] if all(_is_scalar(v) for v in value) else [(path, "must hold only text, numbers or true/false")]
    if op in ORDERINGS:
        return [] if _is_number(value) or isinstance(value, str) else [(path, "must be a number or text")]
    return [] if _is_scalar(value) else [(path, "must be text, a number or true/false")]


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but true is not 1 in JSON.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or _is_number(value)


# --- matching -------------------------------------------------------------------------


def matches(filters: list[dict] | None, properties: Mapping[str, Any]) -> bool:
    """True when every filter holds for these properties (an empty list always holds)."""
    return all(_holds(f, properties) for f in filters or ())


def _resolve(properties: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or _MISSING when any step is absent or not an object."""
    value: Any = properties
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _holds(f: Mapping[str, Any], properties: Mapping[str, Any]) -> bool:
    # Filters are validated before they are stored, but the engine must never crash a
    # worker on one that was not: a malformed filter simply does not hold.
    if not isinstance(f, Mapping) or validate_filters([f]):
        return False
    actual, op, expected = _resolve(properties, f["property"]), f["op"], f.get("value")
    if op == "exists":
        return actual is not _MISSING and actual is not None
    if op == "not_exists":
        return actual is _MISSING or actual is None
    if op == "neq":
        return actual is _MISSING or not _equal(actual, expected)
    if actual is _MISSING:
        return False
    return _compare(op, actual, expected)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "eq":
        return _equal(actual, expected)
    if op == "in":
        return any(_equal(actual, candidate) for candidate in expected)
    if op == "contains":
        return _contains(actual, expected)
    if _is_number(actual) and _is_number(expected) or isinstance(actual, str) and isinstance(expected, str):
        return ORDERINGS[op](actual, expected)
    return False


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 equals 1.0, but true never equals 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(_equal(item, expected) for item in actual)
    return False
