"""The node kinds a journey graph is made of: one registry, each kind's config check and ports.

``NODE_KINDS`` maps every ``NodeKind`` to its ``NodeSpec``; the canvas, the graph checks and
the engine all read it, and a test keeps it in step with the enum. A spec's ``validate``
takes a node's config and returns every problem as (path inside the config, reason), ""
naming the config itself; ``ports`` lists the ports an edge may leave from, read from a
config that may itself be invalid. Both are pure: no database access (whether a
segment_id exists is checked in journeys.graph). Formats: docs/journeys.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.core.exceptions import ValidationError

from channels_app.templating import CHANNEL_FIELDS, parse_error
from customers.enums import Channel
from customers.segments import InvalidSegment, validate_definition
from journeys.filters import validate_filters

Problems = list[tuple[str, str]]

HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
PORT = re.compile(r"^[A-Za-z0-9_]{1,64}$")
UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
MAX_DURATION_DAYS = 366
MAX_OFFSET_DAYS = 366
MAX_NAME = 200  # Event.name's length
MAX_TRAIT = 100
MAX_LABEL = 200
MAX_BRANCHES = 20
ELSE_PORT = "else"
# Customer columns, not traits: they are set by identify calls and validated there.
COLUMN_FIELDS = ("email", "phone", "timezone", "locale", "external_id")
ENGAGEMENTS = ("opened", "clicked")
CHANNELS = tuple(Channel.values)


class NodeKind(StrEnum):
    ENTRY = "entry"
    DELAY = "delay"
    SEND = "send"
    WAIT_FOR_EVENT = "wait_for_event"
    SPLIT = "split"
    RANDOM_SPLIT = "random_split"
    UPDATE_PROFILE = "update_profile"
    EXIT = "exit"


@dataclass(frozen=True)
class NodeSpec:
    kind: NodeKind
    label: str
    description: str
    # Blocking nodes put the enrollment to sleep (due_at or an awaited event); a cycle
    # must pass through one, or the engine would loop inside one transaction.
    blocking: bool
    validate: Callable[[Any], Problems]
    ports: Callable[[Any], list[str]]


# --- small readers, each returning problems ---------------------------------------------


def _at(prefix: str, key: str) -> str:
    return ".".join(part for part in (prefix, key) if part)


def _unknown_keys(obj: Mapping, allowed: set[str] | frozenset[str], prefix: str = "") -> Problems:
    return [(_at(prefix, str(key)), "is not a known key here") for key in obj if key not in allowed]


def _name(obj: Mapping, key: str, prefix: str = "", max_length: int = MAX_NAME) -> Problems:
    value, path = obj.get(key), _at(prefix, key)
    if value is None or value == "":
        return [(path, "is required")]
    if not isinstance(value, str):
        return [(path, "must be text")]
    if not value.strip():
        return [(path, "must not be blank")]
    if len(value) > max_length:
        return [(path, f"must be at most {max_length} characters")]
    return []


def _optional_text(obj: Mapping, key: str, prefix: str = "", max_length: int = MAX_LABEL) -> Problems:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, str):
        return [(_at(prefix, key), "must be text")]
    return [(_at(prefix, key), f"must be at most {max_length} characters")] if len(value) > max_length else []


def _choice(obj: Mapping, key: str, choices: tuple[str, ...], prefix: str = "") -> Problems:
    value = obj.get(key)
    if isinstance(value, str) and value in choices:
        return []
    reason = "is required" if value in (None, "") else f"must be one of: {', '.join(choices)}"
    return [(_at(prefix, key), reason)]


def _whole(obj: Mapping, key: str, prefix: str = "", *, minimum: int, maximum: int | None = None) -> Problems:
    value, path = obj.get(key), _at(prefix, key)
    if value is None:
        return [(path, "is required")]
    if isinstance(value, bool) or not isinstance(value, int):
        return [(path, "must be a whole number")]
    if value < minimum:
        return [(path, f"must be at least {minimum}")]
    if maximum is not None and value > maximum:
        return [(path, f"must be at most {maximum}")]
    return []


def _clock(obj: Mapping, key: str, prefix: str = "") -> Problems:
    value = obj.get(key)
    if value is None or value == "":
        return [(_at(prefix, key), "is required")]
    if not isinstance(value, str) or not HHMM.match(value):
        return [(_at(prefix, key), "must be a time as HH:MM, from 00:00 to 23:59")]
    return []


def _weekdays(obj: Mapping, prefix: str = "") -> Problems:
    if "weekdays" not in obj:
        return []  # every day
    days, path = obj["weekdays"], _at(prefix, "weekdays")
    if not isinstance(days, list) or not days:
        return [(path, "must be a non-empty list of days, Monday = 0 to Sunday = 6")]
    if any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6 for d in days):
        return [(path, "must hold only days from 0 (Monday) to 6 (Sunday)")]
    return [(path, "lists a day more than once")] if len(set(days)) != len(days) else []


def _duration(obj: Mapping, prefix: str = "") -> Problems:
    problems = _whole(obj, "amount", prefix, minimum=1) + _choice(obj, "unit", tuple(UNITS), prefix)
    if not problems and obj["amount"] * UNITS[obj["unit"]] > MAX_DURATION_DAYS * UNITS["days"]:
        problems.append((_at(prefix, "amount"), f"must come to at most {MAX_DURATION_DAYS} days"))
    return problems


def _time_of_day(obj: Mapping, prefix: str = "") -> Problems:
    return _clock(obj, "time", prefix) + _weekdays(obj, prefix)


def _optional_filters(config: Mapping) -> Problems:
    return validate_filters(config["filters"], "filters") if "filters" in config else []


Mode = tuple[frozenset[str], Callable[[Mapping], Problems]]


def _by_mode(config: Mapping, key: str, modes: dict[str, Mode]) -> Problems:
    """Check `key` picks a mode, then that mode's keys and values."""
    problems = _choice(config, key, tuple(modes))
    if problems:
        return problems
    allowed, check = modes[config[key]]
    return _unknown_keys(config, allowed | {key}) + check(config)


def _config_object(check: Callable[[Mapping], Problems]) -> Callable[[Any], Problems]:
    @functools.wraps(check)
    def validate(config: Any) -> Problems:
        return check(config) if isinstance(config, Mapping) else [("", "must be an object")]

    return validate


# --- entry, delay ---------------------------------------------------------------------

ENTRY_TRIGGERS: dict[str, Mode] = {
    "event": (frozenset({"event", "filters"}), lambda c: _name(c, "event") + _optional_filters(c)),
    "segment": (frozenset({"segment_id"}), lambda c: _whole(c, "segment_id", minimum=1)),
    "api": (frozenset(), lambda c: []),
}


@_config_object
def validate_entry(config: Mapping) -> Problems:
    return _by_mode(config, "trigger", ENTRY_TRIGGERS)


def _date_trait(config: Mapping) -> Problems:
    offset = _whole(config, "offset_days", minimum=-MAX_OFFSET_DAYS, maximum=MAX_OFFSET_DAYS)
    return _name(config, "trait", max_length=MAX_TRAIT) + offset + _clock(config, "time")


# Until the customer's best moment within the window, outside quiet hours. Checked apart
# from DELAY_MODES so the listed modes (and the problems naming them) stay the plain ones.
BEST_TIME = "best_time"
MAX_BEST_TIME_HOURS = 7 * 24


def _best_time(config: Mapping) -> Problems:
    return _whole(config, "within_hours", minimum=1, maximum=MAX_BEST_TIME_HOURS)


DELAY_MODES: dict[str, Mode] = {
    "duration": (frozenset({"amount", "unit"}), _duration),
    "time_of_day": (frozenset({"time", "weekdays"}), _time_of_day),
    "date_trait": (frozenset({"trait", "offset_days", "time"}), _date_trait),
}


@_config_object
def validate_delay(config: Mapping) -> Problems:
    if config.get("mode") == BEST_TIME:
        return _unknown_keys(config, {"mode", "within_hours"}) + _best_time(config)
    return _by_mode(config, "mode", DELAY_MODES)


# --- send -----------------------------------------------------------------------------


# What a send does when a frequency cap holds it back (quiet hours always defer):
# wait for room (up to the policy's horizon), skip to the next step, or leave the journey.
ON_CAP = ("defer", "skip", "exit")


# "best": the engine picks among the `fallback` channels by the customer's channel affinity
# (accepted beside CHANNELS, which the "must be one of" problem lists).
BEST_CHANNEL = "best"
MAX_EXPLORE = 0.5


@_config_object
def validate_send(config: Mapping) -> Problems:
    allowed = {"channel", "content", "on_cap", "fallback", "explore"}
    best = config.get("channel") == BEST_CHANNEL
    problems = _unknown_keys(config, allowed) + ([] if best else _choice(config, "channel", CHANNELS))
    if "on_cap" in config:
        problems += _choice(config, "on_cap", ON_CAP)
    problems += _fallback(config) + _explore(config)
    content = config.get("content")
    if content is None:
        return problems + [("content", "is required: a send needs content for its channel")]
    if not isinstance(content, Mapping):
        return problems + [("content", "must be an object keyed by channel")]
    if problems:
        return problems  # without a valid channel there is no telling which content counts
    return _content(content, send_channels(config))


def send_channels(config: Mapping) -> list[str]:
    """The channels a (valid) send node may send on, in the order it tries them."""
    fallback = list(config.get("fallback") or [])
    return fallback if config["channel"] == BEST_CHANNEL else [config["channel"], *fallback]


def _fallback(config: Mapping) -> Problems:
    best = config.get("channel") == BEST_CHANNEL
    if "fallback" not in config:
        return [("fallback", "is required: the channels to choose among, in fallback order")] if best else []
    value = config["fallback"]
    if not isinstance(value, list) or any(not isinstance(c, str) or c not in CHANNELS for c in value):
        return [("fallback", f"must be a list of channels ({', '.join(CHANNELS)})")]
    if len(set(value)) != len(value) or config.get("channel") in value:
        return [("fallback", "lists a channel more than once")]
    if best and len(value) < 2:
        return [("fallback", "must list at least two channels to choose among")]
    return []


def _explore(config: Mapping) -> Problems:
    value = config.get("explore", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_EXPLORE:
        return [("explore", f"must be a share from 0 to {MAX_EXPLORE}")]
    return []


def _content(content: Mapping, channels: list[str]) -> Problems:
    # Only the node's channels are sent; content for another would silently never go out.
    sends = " or ".join(channels)
    problems = [(f"content.{key}", f"is not used: this node sends {sends}") for key in content if key not in channels]
    for channel in channels:
        if channel not in content:
            problems.append((f"content.{channel}", f"is required: the {channel} to send"))
        else:
            problems += _channel_fields(content[channel], channel, f"content.{channel}")
    return problems


def _channel_fields(fields: Any, channel: str, prefix: str) -> Problems:
    if not isinstance(fields, Mapping):
        return [(prefix, "must be an object")]
    required, optional = CHANNEL_FIELDS[channel]
    problems = [(_at(prefix, str(key)), f"is not a field of {channel} content")
                for key in fields if key not in required + optional]
    for key in required + optional:
        problems += _template(fields, key, prefix, required=key in required)
    return problems


def _template(fields: Mapping, key: str, prefix: str, *, required: bool) -> Problems:
    value, path = fields.get(key), _at(prefix, key)
    if value is None:
        return [(path, "is required")] if required else []
    if not isinstance(value, str):
        return [(path, "must be text")]
    if required and not value.strip():
        return [(path, "is required")]
    reason = parse_error(value)
    return [(path, f"is not a valid template: {reason}")] if reason else []


# --- wait_for_event -------------------------------------------------------------------


def _timeout(config: Mapping) -> Problems:
    timeout = config.get("timeout")
    if timeout is None:
        return [("timeout", "is required: a wait needs a timeout, {amount, unit} or {until: {time}}")]
    if not isinstance(timeout, Mapping):
        return [("timeout", "must be {amount, unit} or {until: {time, weekdays}}")]
    if "until" not in timeout:
        return _unknown_keys(timeout, {"amount", "unit"}, "timeout") + _duration(timeout, "timeout")
    until = timeout["until"]
    problems = _unknown_keys(timeout, {"until"}, "timeout")
    if not isinstance(until, Mapping):
        return problems + [("timeout.until", "must be an object with time and optional weekdays")]
    return problems + _unknown_keys(until, {"time", "weekdays"}, "timeout.until") + _time_of_day(until, "timeout.until")


WAIT_MODES: dict[str, Mode] = {
    "event": (
        frozenset({"event", "filters", "timeout"}),
        lambda c: _name(c, "event") + _optional_filters(c) + _timeout(c),
    ),
    "engagement": (
        frozenset({"engagement", "timeout"}),
        lambda c: _choice(c, "engagement", ENGAGEMENTS) + _timeout(c),
    ),
}


@_config_object
def validate_wait_for_event(config: Mapping) -> Problems:
    return _by_mode(config, "mode", WAIT_MODES)


# --- split, random_split --------------------------------------------------------------


def _port(branch: Mapping, path: str, seen: set[str], reserved: tuple[str, ...]) -> Problems:
    port, path = branch.get("port"), f"{path}.port"
    if port is None or port == "":
        return [(path, "is required")]
    if not isinstance(port, str) or not PORT.match(port):
        return [(path, "must be 1 to 64 letters, digits or _")]
    if port in reserved:
        return [(path, f'"{port}" is reserved: it is the port taken when no branch matches')]
    if port in seen:
        return [(path, "is used by another branch")]
    seen.add(port)
    return []


def _branches(config: Mapping, *, minimum: int, check: Callable[[Mapping, str], Problems],
              reserved: tuple[str, ...] = ()) -> Problems:
    branches = config.get("branches")
    if branches is None:
        return [("branches", "is required")]
    if not isinstance(branches, list) or not minimum <= len(branches) <= MAX_BRANCHES:
        return [("branches", f"must be a list of {minimum} to {MAX_BRANCHES} branches")]
    problems: Problems = []
    seen: set[str] = set()
    for index, branch in enumerate(branches):
        path = f"branches.{index}"
        if not isinstance(branch, Mapping):
            problems.append((path, "must be an object"))
            continue
        problems += _port(branch, path, seen, reserved) + _optional_text(branch, "label", path) + check(branch, path)
    return problems


def _condition(branch: Mapping, path: str) -> Problems:
    problems = _unknown_keys(branch, {"port", "label", "condition"}, path)
    condition, path = branch.get("condition"), f"{path}.condition"
    if condition is None:
        return problems + [(path, "is required: a segment definition or {segment_id}")]
    if isinstance(condition, Mapping) and "segment_id" in condition:
        return problems + _unknown_keys(condition, {"segment_id"}, path) + _whole(condition, "segment_id", path, minimum=1)
    try:
        validate_definition(condition)
    except InvalidSegment as invalid:
        return problems + [(_at(path, where), reason) for where, reason in invalid.problems]
    except ValidationError as invalid:
        return problems + [(path, "; ".join(invalid.messages))]
    return problems


def _weight(branch: Mapping, path: str) -> Problems:
    return _unknown_keys(branch, {"port", "label", "weight"}, path) + _whole(branch, "weight", path, minimum=1)


@_config_object
def validate_split(config: Mapping) -> Problems:
    checked = _branches(config, minimum=1, check=_condition, reserved=(ELSE_PORT,))
    return _unknown_keys(config, {"branches"}) + checked


@_config_object
def validate_random_split(config: Mapping) -> Problems:
    return _unknown_keys(config, {"branches"}) + _branches(config, minimum=2, check=_weight)


# --- update_profile, exit -------------------------------------------------------------


@_config_object
def validate_update_profile(config: Mapping) -> Problems:
    problems = _unknown_keys(config, {"trait", "value"})
    trait_problems = _name(config, "trait", max_length=MAX_TRAIT)
    if not trait_problems and config["trait"] in COLUMN_FIELDS:
        trait_problems = [("trait", f"{config['trait']} is a profile field, not a trait")]
    value = [] if "value" in config else [("value", "is required (any JSON value, null included)")]
    return problems + trait_problems + value


@_config_object
def validate_exit(config: Mapping) -> Problems:
    return [(str(key), "is not used: an exit node has no config") for key in config]


# --- ports ----------------------------------------------------------------------------


def _branch_ports(config: Any) -> list[str]:
    branches = config.get("branches") if isinstance(config, Mapping) else None
    if not isinstance(branches, list):
        return []
    ports = (b.get("port") for b in branches if isinstance(b, Mapping))
    return list(dict.fromkeys(p for p in ports if isinstance(p, str) and p))


def _out(config: Any) -> list[str]:
    return ["out"]


# --- the registry ---------------------------------------------------------------------

NODE_KINDS: dict[NodeKind, NodeSpec] = {
    spec.kind: spec
    for spec in (
        NodeSpec(NodeKind.ENTRY, "Entry", "How people enter: an event, a segment or the trigger API.",
                 False, validate_entry, _out),
        NodeSpec(NodeKind.DELAY, "Delay", "Wait a duration, until a time of day, or until a date trait.",
                 True, validate_delay, _out),
        NodeSpec(NodeKind.SEND, "Send", "Send an email, SMS, push or in-app message.",
                 False, validate_send, _out),
        NodeSpec(NodeKind.WAIT_FOR_EVENT, "Wait for event",
                 "Wait for an event or an engagement with the last message, up to a timeout.",
                 True, validate_wait_for_event, lambda config: ["happened", "timed_out"]),
        NodeSpec(NodeKind.SPLIT, "Split", "Take the first branch whose condition holds, else the else port.",
                 False, validate_split, lambda config: list(dict.fromkeys([*_branch_ports(config), ELSE_PORT]))),
        NodeSpec(NodeKind.RANDOM_SPLIT, "Random split", "Send each person down one branch by weight.",
                 False, validate_random_split, _branch_ports),
        NodeSpec(NodeKind.UPDATE_PROFILE, "Update profile", "Set one trait on the customer's profile.",
                 False, validate_update_profile, _out),
        NodeSpec(NodeKind.EXIT, "Exit", "End the journey here.", False, validate_exit, lambda config: []),
    )
}

# Choices for forms and model fields, derived from the registry so they cannot drift.
NODE_KIND_CHOICES = [(kind.value, spec.label) for kind, spec in NODE_KINDS.items()]
