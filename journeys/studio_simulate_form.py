"""The simulate panel's form: what the marketer typed, turned into the simulation API's body.

The form is flat HTML fields (a customer picked or described, a start and an end, and a
script of event rows that can be added and removed); ``SimForm.request()`` builds the
same JSON body ``POST /api/v1/journeys/{id}/simulate`` takes, so the one validator,
``orchestrator.engine.simulator.parse_simulation``, judges both. Its field names
(``events.2.at``, ``customer.inline.timezone``) are mapped back onto the form's inputs so
each problem shows at its field.

Properties and attributes are written one ``key: value`` per line (a value is read as
JSON when it is JSON, so ``280``, ``true`` and ``["a", "b"]`` keep their types; anything
else is text), or as one JSON object.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from django.http import QueryDict

EXISTING, DESCRIBED = "existing", "described"
MAX_ROWS = 50  # the form's rows; the simulator allows more events through the API
_ROW_KEY = re.compile(r"^events-(\d+)-(name|at|properties)$")
_EVENT_FIELD = re.compile(r"^events\.(\d+)(?:\.(at|name|properties))?$")
# Simulator field -> form input.
_FIELDS = {
    "customer": "external_id", "customer.external_id": "external_id", "customer.inline": "tz",
    "customer.inline.timezone": "tz", "customer.inline.email": "email", "customer.inline.phone": "phone",
    "customer.inline.traits": "traits", "customer.inline.locale": "traits",
    "start": "start", "until": "until", "holdout": "holdout", "events": "events",
}


class FormProblems(ValueError):
    """Problems found before the simulator is asked: ``fields`` maps input name -> reason."""

    def __init__(self, fields: dict[str, str]):
        self.fields = fields
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))


@dataclass(frozen=True)
class EventRow:
    name: str = ""
    at: str = ""
    properties: str = ""

    @property
    def blank(self) -> bool:
        return not (self.name.strip() or self.at.strip() or self.properties.strip())


@dataclass(frozen=True)
class SimForm:
    who: str = EXISTING
    external_id: str = ""
    first_name: str = ""
    tz: str = ""
    email: str = ""
    phone: str = ""
    push: bool = False
    traits: str = ""
    start: str = ""
    until: str = ""
    holdout: bool = False
    events: tuple[EventRow, ...] = field(default_factory=tuple)

    @classmethod
    def from_post(cls, data: QueryDict) -> SimForm:
        text = {key: data.get(key, "").strip() for key in ("external_id", "first_name", "tz", "email", "phone", "start", "until")}
        return cls(
            who=DESCRIBED if data.get("who") == DESCRIBED else EXISTING,
            traits=data.get("traits", ""), push=bool(data.get("push")), holdout=bool(data.get("holdout")),
            events=_rows(data), **text,
        )

    def with_rows(self, rows: list[EventRow]) -> SimForm:
        return replace(self, events=tuple(rows[:MAX_ROWS]))

    def request(self) -> tuple[dict, dict[int, int]]:
        """(the simulation body, the event index in it -> the form's row); FormProblems
        when a properties or attributes box cannot be read."""
        problems: dict[str, str] = {}
        events, rows = [], {}
        for index, row in enumerate(self.events):
            if row.blank:
                continue
            properties = _mapping(row.properties, f"events-{index}-properties", problems)
            rows[len(events)] = index
            events.append({"at": row.at or "+0m", "name": row.name, "properties": properties})
        body: dict[str, Any] = {"customer": self._customer(problems), "events": events, "holdout": self.holdout}
        body |= {key: value for key, value in (("start", self.start), ("until", self.until)) if value}
        if problems:
            raise FormProblems(problems)
        return body, rows

    def _customer(self, problems: dict[str, str]) -> dict:
        if self.who == EXISTING:
            if not self.external_id:
                problems["external_id"] = "find a customer below, or describe one"
            return {"external_id": self.external_id}
        traits = _mapping(self.traits, "traits", problems)
        if self.first_name:
            traits = {"first_name": self.first_name, **traits}
        inline = {"timezone": self.tz, "email": self.email, "phone": self.phone, "push": self.push, "traits": traits}
        return {"inline": {key: value for key, value in inline.items() if value not in ("", None)}}


def _rows(data: QueryDict) -> tuple[EventRow, ...]:
    found: dict[int, dict[str, str]] = {}
    for key in data:
        match = _ROW_KEY.match(key)
        if match and int(match[1]) < MAX_ROWS:
            found.setdefault(int(match[1]), {})[match[2]] = data.get(key, "")
    return tuple(EventRow(**found[index]) for index in sorted(found))


def _mapping(text: str, name: str, problems: dict[str, str]) -> dict:
    """``key: value`` lines, or a JSON object."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            problems[name] = f"not a JSON object: {error.msg} (line {error.lineno})"
            return {}
        if not isinstance(value, dict):
            problems[name] = "must be a JSON object"
            return {}
        return value
    out = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, colon, raw = line.partition(":")
        if not colon or not key.strip():
            problems[name] = f"line {number}: write key: value (e.g. cart_value: 280)"
            return {}
        out[key.strip()] = _value(raw.strip())
    return out


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def form_errors(simulator_fields: list[tuple[str, str]], rows: dict[int, int]) -> dict[str, str]:
    """The simulator's (field, reason) pairs as input name -> reason (the first per input);
    what names no input is kept under "form", for the form's head."""
    errors: dict[str, str] = {}
    for name, reason in simulator_fields:
        errors.setdefault(_input(name, rows), reason)
    return errors


def _input(name: str, rows: dict[int, int]) -> str:
    match = _EVENT_FIELD.match(name)
    if match:
        row = rows.get(int(match[1]), int(match[1]))
        return f"events-{row}-{match[2] or 'name'}"
    return _FIELDS.get(name, "form")
