"""The node panel's forms, as data: which fields each node kind shows, and how a posted
form becomes a node config.

Inputs are named by their path in the config (``c.timeout.amount``, ``c.filters.0.op``,
``c.content.sms.body``), so the problems ``NodeSpec.validate`` names (docs/journeys.md)
land on the input they concern without a mapping table. Modes (an entry's trigger, a
delay's mode, a wait's timeout) decide which fields exist: changing one re-renders the
form (``refresh``), and only the chosen mode's keys reach the config.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from customers.enums import Channel
from journeys.editor_conditions import ConditionBuilder, read_split
from journeys.nodes import (
    BEST_CHANNEL,
    BEST_TIME,
    DELAY_MODES,
    ENTRY_TRIGGERS,
    NODE_KINDS,
    WAIT_MODES,
    NodeKind,
)

PREFIX = "c."
INTS = frozenset({"amount", "within_hours", "offset_days", "segment_id", "weight"})
NUMBERS = frozenset({"explore"})
JSONISH = frozenset({"value"})  # a filter's or a trait's value: JSON if it parses, else text
STRICT_JSON = frozenset({"condition"})
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CHANNEL_LABELS = dict(Channel.choices)
LONG_FIELDS = frozenset({"html", "body", "text"})
MAX_FALLBACK = len(Channel.values)


@dataclass
class Field:
    name: str  # the path in the config; the input is named PREFIX + name (or name when plain)
    label: str
    widget: str  # text, number, select, textarea, time, weekdays, json
    value: Any = ""
    choices: list[tuple[str, str]] = field(default_factory=list)
    help: str = ""
    refresh: bool = False  # a mode: changing it re-renders the form
    plain: bool = False  # not part of the config (the node's label, a timeout's kind)
    errors: list[str] = field(default_factory=list)

    @property
    def input_name(self) -> str:
        return self.name if self.plain else PREFIX + self.name

    @property
    def input_id(self) -> str:
        return "f-" + self.input_name.replace(".", "-")


@dataclass
class Section:
    title: str
    fields: list[Field]
    row: bool = False  # a repeated row (a filter, a branch), laid out across
    channel: str = ""  # a content editor: checked live against the channel's rules
    builder: ConditionBuilder | None = None  # a split branch's condition rows


@dataclass
class NodeForm:
    kind: str
    sections: list[Section]
    errors: list[str] = field(default_factory=list)  # problems no field shows

    def fields(self) -> list[Field]:
        return [f for section in self.sections for f in section.fields]

    @property
    def has_errors(self) -> bool:
        return (bool(self.errors) or any(f.errors for f in self.fields())
                or any(s.builder.has_errors for s in self.sections if s.builder))


# --- parsing a posted form --------------------------------------------------------------


def _coerce(key: str, raw: str, problems: list[tuple[str, str]], path: str) -> Any:
    if key in INTS:
        try:
            return int(raw)
        except ValueError:
            return raw  # the validator says "must be a whole number" at the field
    if key in NUMBERS:
        try:
            return float(raw)
        except ValueError:
            return raw
    if key in JSONISH or key in STRICT_JSON:
        try:
            return json.loads(raw)
        except ValueError:
            if key in STRICT_JSON:
                problems.append((path, "is not valid JSON"))
            return raw
    return raw


def _put(root: dict, parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        root = root.setdefault(part, {})
        if not isinstance(root, dict):
            return
    root[parts[-1]] = value


def _listify(value: Any) -> Any:
    """Objects keyed 0, 1, … become lists in index order (filters, branches, fallback)."""
    if not isinstance(value, dict):
        return value
    items = {key: _listify(inner) for key, inner in value.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def unflatten(post: QueryDict) -> tuple[dict, list[tuple[str, str]]]:
    """The config the posted ``c.…`` inputs describe, blanks left out (so the validator
    says "is required"), and the problems found reading them (invalid JSON)."""
    root: dict = {}
    problems: list[tuple[str, str]] = []
    for name in post:
        if not name.startswith(PREFIX):
            continue
        path = name[len(PREFIX):]
        key = path.rsplit(".", 1)[-1]
        values = [v for v in post.getlist(name) if v.strip()]
        if key == "weekdays":
            if values:
                _put(root, path.split("."), [int(v) if v.isdigit() else v for v in values])
        elif values:
            _put(root, path.split("."), _coerce(key, values[-1], problems, path))
    return _listify(root), problems


def _only(config: dict, mode_key: str, modes: Mapping) -> dict:
    mode = config.get(mode_key)
    if mode not in modes:
        return {mode_key: mode} if mode else {}
    allowed = modes[mode][0] if isinstance(modes[mode], tuple) else modes[mode]
    return {key: value for key, value in config.items() if key in allowed or key == mode_key}


def _send_channels(config: Mapping) -> list[str]:
    """The channels a send may use, read leniently from a config being edited."""
    fallback = [c for c in config.get("fallback") or [] if c in Channel.values]
    channel = config.get("channel")
    first = [channel] if channel in Channel.values else []
    return list(dict.fromkeys(first + fallback))


def _clean_send(config: dict) -> dict:
    keys = {"channel", "fallback", "on_cap", "content"} | ({"explore"} if config.get("channel") == BEST_CHANNEL else set())
    config = {key: value for key, value in config.items() if key in keys}
    channels = _send_channels(config)
    content = config.get("content") if isinstance(config.get("content"), dict) else {}
    config["content"] = {ch: content.get(ch, {}) for ch in channels}
    return config


def _clean_wait(config: dict, post: QueryDict) -> dict:
    config = _only(config, "mode", WAIT_MODES)
    if config.get("mode") in WAIT_MODES:
        timeout = config.get("timeout") if isinstance(config.get("timeout"), dict) else {}
        if post.get("timeout_kind") == "until":
            config["timeout"] = {"until": timeout.get("until", {})}
        else:
            config["timeout"] = {key: timeout[key] for key in ("amount", "unit") if key in timeout}
    return config


def parse_config(kind: str, post: QueryDict) -> tuple[dict, list[tuple[str, str]]]:
    """A node config from a posted panel form, and the problems found reading it."""
    config, problems = unflatten(post)
    if kind == NodeKind.ENTRY:
        config = _only(config, "trigger", ENTRY_TRIGGERS)
    elif kind == NodeKind.DELAY:
        config = _only(config, "mode", {**DELAY_MODES, BEST_TIME: (frozenset({"within_hours"}), None)})
    elif kind == NodeKind.SEND:
        config = _clean_send(config)
    elif kind == NodeKind.WAIT_FOR_EVENT:
        config = _clean_wait(config, post)
    elif kind == NodeKind.SPLIT:  # conditions as rows, a segment or JSON (editor_conditions)
        config, _, problems = read_split(post)
    elif kind == NodeKind.RANDOM_SPLIT:
        config = {"branches": [b for b in config.get("branches") or [] if isinstance(b, dict)]}
    elif kind == NodeKind.UPDATE_PROFILE:
        config = {key: value for key, value in config.items() if key in ("trait", "value")}
    else:
        config = {}
    return config, problems


def validate_config(kind: str, config: dict) -> list[tuple[str, str]]:
    return NODE_KINDS[NodeKind(kind)].validate(config)
