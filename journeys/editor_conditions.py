"""A split branch's condition in the node panel: rows of conditions (the segment editor's
own vocabulary and reading, customers.segment_forms), a saved segment, or JSON.

Each branch says how its condition is written with a ``when.N`` select. The rows of
branch N are posted as ``cb.N.`` + the segment editor's input names (``cb.0.match``,
``cb.0.conditions.1.value``), so ``definition_from_post`` reads them unchanged and the
problems ``validate_definition`` names land on their input through ``editor_rows``.
A condition is read from whichever input the form showed, so switching how a branch is
written carries it over (rows → JSON, JSON → rows, a segment → its rows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from customers.models import Segment
from customers.segment_forms import Row, apply_edit, definition_from_post, editor_rows, type_choices

ROWS, SEGMENT, JSON = "conditions", "segment", "json"
MODE_CHOICES = [(ROWS, "people matching conditions"), (SEGMENT, "members of a saved segment"),
                (JSON, "a definition in JSON (advanced)")]
MODES = frozenset(mode for mode, _ in MODE_CHOICES)
MAX_BRANCHES = 20


@dataclass
class ConditionBuilder:
    """What the panel shows for one branch written as rows."""

    prefix: str  # "cb.N." before every input name
    branch: int
    match: str
    rows: list[Row]
    errors: list[str] = field(default_factory=list)  # problems no row shows
    type_choices: list[tuple[str, str]] = field(default_factory=type_choices)

    @property
    def has_errors(self) -> bool:
        return bool(self.errors) or any(row.errors or any(put.error for put in row.inputs) for row in self.rows)


def mode_of(condition: Any) -> str:
    """How a stored condition is best shown: a segment reference, rows, or its JSON."""
    if isinstance(condition, dict) and set(condition) == {"segment_id"}:
        return SEGMENT
    if condition is None or (isinstance(condition, dict) and isinstance(condition.get("conditions", []), list)):
        return ROWS
    return JSON


def _indices(post: QueryDict) -> list[int]:
    found = set()
    for name in post:
        for head in ("c.branches.", "cb.", "when."):
            if name.startswith(head):
                index = name[len(head):].split(".", 1)[0]
                if index.isdigit() and int(index) < MAX_BRANCHES:
                    found.add(int(index))
    return sorted(found)


def _sub(post: QueryDict, prefix: str) -> QueryDict:
    sub = QueryDict(mutable=True)
    for name in post:
        if name.startswith(prefix):
            sub.setlist(name[len(prefix):], post.getlist(name))
    return sub


def _segment_definition(raw: str) -> dict | None:
    if not raw.isdigit():
        return None
    definition = Segment.objects.filter(pk=int(raw)).values_list("definition", flat=True).first()
    return json.loads(json.dumps(definition)) if isinstance(definition, dict) else None


def _read(post: QueryDict, index: int, mode: str, problems: list[tuple[str, str]]) -> Any:
    """The condition branch ``index`` posted, from the input the form showed."""
    at = f"c.branches.{index}."
    if f"cb.{index}.match" in post:
        definition = definition_from_post(_sub(post, f"cb.{index}."))
        return definition if definition["conditions"] else None
    if at + "condition" in post:
        raw = post.get(at + "condition", "").strip()
        if raw:
            try:
                return json.loads(raw)
            except ValueError:
                problems.append((f"branches.{index}.condition", "is not valid JSON"))
                return raw
    segment = post.get(at + "segment", "").strip()
    if not segment:
        return None
    if mode == ROWS:  # a segment written out as rows, to refine it
        return _segment_definition(segment)
    return {"segment_id": int(segment) if segment.isdigit() else segment}


def _is_blank(branch: dict) -> bool:
    return not branch.get("port") and not branch.get("label") and branch.get("condition") is None


def _apply(branches: list[dict], op: str) -> None:
    """``N:<segment editor op>``: add, remove or retype a row of branch N's conditions."""
    index, _, inner = op.partition(":")
    if not index.isdigit() or int(index) >= len(branches):
        return
    branch = branches[int(index)]
    condition = branch.get("condition")
    definition = condition if mode_of(condition) == ROWS and condition is not None else {"match": "all", "conditions": []}
    apply_edit(definition, inner)
    branch["condition"] = definition if definition["conditions"] else None


def read_split(post: QueryDict) -> tuple[dict, list[str], list[tuple[str, str]]]:
    """A split's config from the posted panel, each kept branch's mode, and the problems
    found reading it. A refresh may carry ``op`` (an edit of one branch's rows); blank
    branches (the "add a branch" row left empty) are left out."""
    problems: list[tuple[str, str]] = []
    branches, modes = [], []
    for index in _indices(post):
        at = f"c.branches.{index}."
        mode = post.get(f"when.{index}", "")
        mode = mode if mode in MODES else (SEGMENT if post.get(at + "segment", "").strip() else JSON)
        branch = {key: post.get(at + key, "").strip() for key in ("port", "label")}
        branch = {key: value for key, value in branch.items() if value}
        branch["condition"] = _read(post, index, mode, problems)
        branches.append(branch)
        modes.append(mode)
    if "_refresh" in post and post.get("op"):
        _apply(branches, post["op"])
    kept = [(b, m) for b, m in zip(branches, modes, strict=True) if not _is_blank(b)]
    config = {"branches": [{k: v for k, v in b.items() if v is not None} for b, _ in kept]}
    return config, [m for _, m in kept], problems


def builder(index: int, condition: Any, problems: list[tuple[str, str]]) -> ConditionBuilder:
    """Branch ``index``'s rows, with the problems under ``branches.N.condition`` at their inputs."""
    definition = condition if isinstance(condition, dict) else {"match": "all", "conditions": []}
    at = f"branches.{index}.condition"
    mine: dict[str, str] = {}
    general = []
    for path, reason in problems:
        if path == at:
            general.append("Add at least one condition." if reason.startswith("is required") else reason)
        elif path.startswith(at + "."):
            mine.setdefault(path[len(at) + 1:], reason)
    if condition is not None and not isinstance(condition, dict):
        general.append("This condition is not a definition the rows can show; write it as JSON.")
    rows, rest = editor_rows(definition, mine)
    match = definition.get("match") if definition.get("match") in ("all", "any") else "all"
    return ConditionBuilder(f"cb.{index}.", index, match, rows, general + rest)
