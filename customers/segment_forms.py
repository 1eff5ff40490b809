"""The segment editor's form: condition rows in, a definition out, problems back at the field.

Inputs are named by the definition's own paths (``conditions.2.value``,
``conditions.4.conditions.0.operator``), so a problem reported by
``customers.segments.validate_definition`` lands on the input it names. Text typed in a
row is turned into JSON here: numbers and true/false are read as such ("30" → 30), text in
double quotes stays text (``"75001"``), lists are comma-separated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.http import QueryDict

from customers.enums import Category, Channel, ConsentStatus
from customers.models import Segment
from customers.segments import (
    ANY_CHANNEL,
    COMPARISONS,
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
    ConditionType,
    Match,
)

MAX_ROWS = 60
MAX_PATH_PARTS = 2 * (MAX_DEPTH + 1) + 3  # conditions.N per level, then where.value
# At most 30 digits either side of the point (segment_conditions.MAX_NUMBER): longer text
# stays text, so validation reports it at its field instead of int() or float() failing.
NUMBER = re.compile(r"^-?[0-9]{1,30}(\.[0-9]{1,30})?$")
NO_VALUE = ("exists", "not_exists")

LABELS = {
    "eq": "is", "neq": "is not", "in": "is one of", "not_in": "is none of", "contains": "contains",
    "exists": "is set", "not_exists": "is not set", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤",
    "within_days": "within the last … days", "not_within_days": "not within the last … days",
    "before": "before", "after": "after", "count": "count", "last_occurred": "last occurred",
    "never_occurred": "never occurred", "sum": "sum of", "avg": "average of",
    "trait": "Trait", "field": "Profile field", "event": "Event", "consent": "Consent",
    "reachable": "Reachable", "group": "Group", "all": "all", "any": "any", UNSET: "nothing recorded",
    "true": "reachable", "false": "not reachable", "best_channel": "Best channel",
    UNKNOWN_CHANNEL: "not known yet", "email": "Email", "sms": "SMS", "push": "Push", "in_app": "In-app",
}


def _choices(values) -> list[tuple[str, str]]:
    return [(str(v), LABELS.get(str(v), str(v).replace("_", " "))) for v in values]


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    match = forms.ChoiceField(choices=_choices(Match), initial=Match.ALL)

    def __init__(self, *args, segment: Segment | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.segment = segment

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        others = Segment.objects.filter(name=name)
        if self.segment is not None:
            others = others.exclude(pk=self.segment.pk)
        if others.exists():
            raise forms.ValidationError("Another segment already has this name.")
        return name


# --- POST → definition ----------------------------------------------------------------


def definition_from_post(data: QueryDict) -> dict:
    """The definition the rows describe, typed but not validated."""
    tree: dict = {}
    for key, value in data.items():
        if key.startswith("conditions."):
            _put(tree, key.split("."), value.strip())
    return {"match": data.get("match", Match.ALL), "conditions": [_condition(c) for c in _listed(tree)]}


def _put(tree: dict, parts: list[str], value: str) -> None:
    if len(parts) > MAX_PATH_PARTS:
        return
    node = tree
    for i in range(0, len(parts) - 1):
        part = parts[i]
        if part.isdigit():
            if int(part) >= MAX_ROWS:
                return
            part = int(part)
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return
    node[parts[-1]] = value


def _listed(node: dict) -> list[dict]:
    rows = node.get("conditions", {})
    return [rows[i] for i in sorted(k for k in rows if isinstance(k, int))]


def _condition(row: dict) -> dict:
    kind = row.get("type", "")
    out: dict[str, Any] = {"type": kind}
    if kind == ConditionType.GROUP:
        return out | {"match": row.get("match") or Match.ALL, "conditions": [_condition(c) for c in _listed(row)]}
    for key in ("trait", "field", "event", "aggregate", "property", "channel", "category", "status", "operator"):
        if row.get(key):
            out[key] = row[key]
    operator = out.get("operator", "")
    if kind == ConditionType.TRAIT:
        _set(out, "value", _typed(row.get("value", ""), operator, literal=True))
    elif kind == ConditionType.FIELD:
        days = out.get("field") in TIME_FIELDS and operator in RECENCY_OPERATORS
        _set(out, "value", _number(row.get("value", "")) if days else _typed(row.get("value", ""), operator, literal=False))
    elif kind == ConditionType.EVENT:
        _event(out, row)
    elif kind == ConditionType.REACHABLE:
        out["value"] = row.get("value", "true") != "false"
    return out


def _event(out: dict, row: dict) -> None:
    aggregate = out.get("aggregate")
    if aggregate != Aggregate.NEVER_OCCURRED:
        _set(out, "value", _number(row.get("value", "")))
    else:
        out.pop("operator", None)
    if aggregate not in (Aggregate.SUM, Aggregate.AVG):
        out.pop("property", None)
    if aggregate != Aggregate.LAST_OCCURRED:
        _set(out, "within_days", _number(row.get("within_days", "")))
    where = row.get("where") or {}
    if where.get("property"):
        filt = {"property": where["property"], "operator": where.get("operator", "")}
        out["where"] = filt
        _set(filt, "value", _typed(where.get("value", ""), filt["operator"], literal=True))


def _set(target: dict, key: str, value) -> None:
    if value not in (None, "", ()):
        target[key] = value


def _typed(text: str, operator: str, *, literal: bool):
    if operator in NO_VALUE or text == "":
        return None
    if operator in ("in", "not_in"):
        items = [item.strip() for item in text.split(",") if item.strip()]
        return [_literal(i) if literal else i for i in items] or None
    if operator in COMPARISONS[2:]:
        return _number(text)
    return _literal(text) if literal and operator != "contains" else text


def _number(text: str):
    """A number when the text is one; the text otherwise, so validation names the field."""
    if NUMBER.match(text):
        try:
            return float(text) if "." in text else int(text)
        except (OverflowError, ValueError):  # unreachable with NUMBER's bound; kept as a guard
            return text
    return text or None


def _literal(text: str):
    if text in ("true", "false"):
        return text == "true"
    if NUMBER.match(text):
        return _number(text)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            return text
    return text


def _shown(value, *, literal: bool) -> str:
    """How a JSON value is written back into a text input (the inverse of _typed)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(v, literal=literal) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and literal and _literal(value) != value:
        return json.dumps(value)
    return str(value)


# --- definition → rows ----------------------------------------------------------------


@dataclass
class Input:
    name: str
    label: str
    value: str
    choices: list[tuple[str, str]] | None = None
    kind: str = "text"
    placeholder: str = ""
    error: str = ""
    wide: bool = False


@dataclass
class Row:
    """One line of the editor: a condition, or the start or end of a group."""

    kind: str  # "condition", "group-start" or "group-end"
    path: str
    depth: int
    number: str
    type: str = ""
    inputs: list[Input] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    no_nest: bool = False  # a group here would be nested too deep


def editor_rows(definition: dict, problems: dict[str, str]) -> tuple[list[Row], list[str]]:
    """The rows that show ``definition`` (as typed, valid or not), each problem at its input.

    Returns the rows and the problems that belong to no row (the whole definition's).
    """
    problems = dict(problems)
    rows: list[Row] = []
    _rows(definition.get("conditions") or [], "conditions", 0, "", rows, problems)
    for row in rows:  # a problem without an input of its own shows on its row
        if row.kind == "condition":
            mine = [p for p in problems if p == row.path or p.startswith(f"{row.path}.")]
        else:
            mine = [p for p in problems if p in (row.path, f"{row.path}.conditions")]
        row.errors += [problems.pop(p) for p in mine]
    return rows, list(problems.values())


def _rows(conditions: list, prefix: str, depth: int, number: str, rows: list[Row], problems: dict) -> None:
    for i, raw in enumerate(conditions):
        path, label = f"{prefix}.{i}", f"{number}{i + 1}"
        raw = raw if isinstance(raw, dict) else {}
        kind = raw.get("type", "")
        if kind == ConditionType.GROUP:
            match = Input(f"{path}.match", "Match", raw.get("match", Match.ALL), _choices(Match), "select")
            match.error = problems.pop(match.name, "")
            rows.append(Row("group-start", path, depth, label, kind, [match]))
            _rows(raw.get("conditions") or [], f"{path}.conditions", depth + 1, f"{label}.", rows, problems)
            rows.append(Row("group-end", path, depth, label, kind, no_nest=depth + 1 >= MAX_DEPTH))
            continue
        inputs = _inputs(kind, raw, path)
        for put in inputs:
            put.error = problems.pop(put.name, "")
        rows.append(Row("condition", path, depth, label, kind, inputs))


def _inputs(kind: str, raw: dict, path: str) -> list[Input]:
    def put(key, label, choices=None, kind="text", placeholder="", literal=False, wide=False, source=raw):
        value = source.get(key.split(".")[-1])
        shown = _shown(value, literal=literal) if value is not None else ""
        return Input(f"{path}.{key}", label, shown, _choices(choices) if choices else None,
                     "select" if choices else kind, placeholder, wide=wide)

    operator = raw.get("operator", "")
    if kind == ConditionType.TRAIT:
        inputs = [put("trait", "Trait", placeholder="plan"), put("operator", "Operator", VALUE_OPERATORS)]
        return inputs + ([] if operator in NO_VALUE else [put("value", "Value", placeholder="pro", literal=True)])
    if kind == ConditionType.FIELD:
        time = raw.get("field") in TIME_FIELDS
        inputs = [put("field", "Field", TEXT_FIELDS + TIME_FIELDS), put("operator", "Operator", TIME_OPERATORS if time else TEXT_OPERATORS)]
        hint = "days" if operator in RECENCY_OPERATORS else "YYYY-MM-DD" if time else "Europe/Paris, Europe/Berlin"
        return inputs + ([] if operator in NO_VALUE else [put("value", "Value", placeholder=hint)])
    if kind == ConditionType.EVENT:
        return _event_inputs(raw, put)
    if kind == ConditionType.CONSENT:
        return [put("channel", "Channel", Channel.values), put("category", "Category", Category.values),
                put("operator", "Is", ("eq", "neq"), source={"operator": operator or "eq"}),
                put("status", "Status", [*ConsentStatus.values, UNSET])]
    if kind == ConditionType.BEST_CHANNEL:
        return [put("operator", "Is", ("eq", "neq"), source={"operator": operator or "eq"}),
                put("channel", "Channel", [*Channel.values, UNKNOWN_CHANNEL])]
    if kind == ConditionType.REACHABLE:
        reach = put("value", "Reach", ("true", "false"))
        reach.value = "false" if raw.get("value") is False else "true"
        channel = put("channel", "Channel", Channel.values)
        channel.choices = [(ANY_CHANNEL, "any channel"), *(channel.choices or [])]
        channel.value = channel.value or ANY_CHANNEL
        return [channel, reach]
    return []


def _event_inputs(raw: dict, put) -> list[Input]:
    aggregate = raw.get("aggregate", "")
    inputs = [put("event", "Event", placeholder="Order Completed", wide=True), put("aggregate", "Aggregate", list(Aggregate))]
    if aggregate in (Aggregate.SUM, Aggregate.AVG):
        inputs.append(put("property", "Property", placeholder="revenue"))
    if aggregate == Aggregate.LAST_OCCURRED:
        inputs += [put("operator", "Operator", RECENCY_OPERATORS), put("value", "Days", kind="number", placeholder="7")]
    elif aggregate != Aggregate.NEVER_OCCURRED:
        inputs += [put("operator", "Operator", COMPARISONS), put("value", "Value", kind="number", placeholder="3")]
    if aggregate != Aggregate.LAST_OCCURRED:
        inputs.append(put("within_days", "Within days", kind="number", placeholder="any time"))
    where = raw.get("where") or {}
    inputs += [put("where.property", "Where property", placeholder="category", source=where),
               put("where.operator", "Where operator", VALUE_OPERATORS, source=where),
               put("where.value", "Where value", placeholder="dresses", literal=True, source=where)]
    return inputs


# --- structural edits: add and remove rows --------------------------------------------

NEW_CONDITION = {
    ConditionType.TRAIT: {"type": "trait", "operator": "eq"},
    ConditionType.FIELD: {"type": "field", "field": "timezone", "operator": "eq"},
    ConditionType.EVENT: {"type": "event", "aggregate": "count", "operator": "gte", "value": 1},
    ConditionType.CONSENT: {"type": "consent", "channel": "email", "category": "marketing", "status": "opted_in"},
    ConditionType.REACHABLE: {"type": "reachable", "channel": ANY_CHANNEL},
    ConditionType.BEST_CHANNEL: {"type": "best_channel", "channel": "email"},
    ConditionType.GROUP: {"type": "group", "match": "any", "conditions": [{"type": "trait", "operator": "eq"}]},
}


def apply_edit(definition: dict, op: str) -> dict:
    """``add:<list path>:<type>``, ``remove:<condition path>`` or ``retype:<path>:<type>``."""
    verb, _, rest = op.partition(":")
    path, _, kind = rest.partition(":")
    parent, index = _locate(definition, path)
    if parent is None:
        return definition
    if verb == "add" and kind in NEW_CONDITION and len(parent) < MAX_ROWS:
        parent.append(json.loads(json.dumps(NEW_CONDITION[ConditionType(kind)])))
    elif verb == "remove" and index is not None and index < len(parent):
        del parent[index]
    elif verb == "retype" and index is not None and index < len(parent):
        kind = kind or str(parent[index].get("type", ""))
        if kind in NEW_CONDITION:
            parent[index] = json.loads(json.dumps(NEW_CONDITION[ConditionType(kind)]))
    return definition


def _locate(definition: dict, path: str) -> tuple[list | None, int | None]:
    """The list a path points into, and the index in it (None for a path to the list)."""
    parts = path.split(".") if path else []
    node: Any = definition
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        if isinstance(node, dict) and part == "conditions" and isinstance(node.get("conditions"), list):
            node = node["conditions"]
            if last:
                return node, None
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            if last:
                return node, int(part)
            node = node[int(part)]
        else:
            return None, None
    return None, None


def type_choices() -> list[tuple[str, str]]:
    return _choices(ConditionType)
