"""Which fields the node panel shows for each node kind, filled from a (possibly partial)
config, with the validator's problems put on the fields they name (journeys.node_forms)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from channels_app.templating import CHANNEL_FIELDS
from customers.enums import Channel
from journeys import editor_conditions as conditions
from journeys.filters import OPS
from journeys.node_forms import (
    CHANNEL_LABELS,
    LONG_FIELDS,
    MAX_FALLBACK,
    Field,
    NodeForm,
    Section,
    _send_channels,
)
from journeys.nodes import BEST_CHANNEL, BEST_TIME, ENGAGEMENTS, ON_CAP, UNITS, NodeKind

Segments = list[tuple[str, str]]


def _get(config: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(config, list) and part.isdigit() and int(part) < len(config):
            config = config[int(part)]
        elif isinstance(config, Mapping):
            config = config.get(part)
        else:
            return None
    return config


def _shown(value: Any, widget: str) -> Any:
    if value is None:
        return [] if widget == "weekdays" else ""
    if widget == "json" and not isinstance(value, str):
        return json.dumps(value)
    return value


def _f(config: Any, name: str, label: str, widget: str = "text", **extra: Any) -> Field:
    return Field(name, label, widget, _shown(_get(config, name), widget), **extra)


def _options(pairs: Any, blank: str = "") -> list[tuple[str, str]]:
    options = [("", blank)] if blank else []
    return options + [(str(value), str(label)) for value, label in pairs]


UNIT_CHOICES = _options(((unit, unit) for unit in UNITS), "unit…")
OP_CHOICES = _options(((op, op.replace("_", " ")) for op in OPS), "operator…")


def _filters(config: Mapping, prefix: str = "filters") -> list[Section]:
    rows = config.get(prefix) if isinstance(config.get(prefix), list) else []
    sections = []
    for index in range(len(rows) + 1):  # every filter, then a blank one to add
        at = f"{prefix}.{index}"
        sections.append(Section(f"Property filter {index + 1}" if index < len(rows) else "Add a property filter", [
            _f(config, f"{at}.property", "Property", help="e.g. cart.value"),
            _f(config, f"{at}.op", "Operator", "select", choices=OP_CHOICES),
            _f(config, f"{at}.value", "Value", "json", help="A number, true/false, [a list] or text"),
        ], row=True))
    return sections


def _entry(config: Mapping, segments: Segments) -> list[Section]:
    trigger = config.get("trigger")
    fields = [_f(config, "trigger", "People enter", "select", refresh=True, choices=_options(
        (("event", "when they do an event"), ("segment", "when they join a segment"), ("api", "through the trigger API")),
        "choose…"))]
    if trigger == "event":
        fields.append(_f(config, "event", "Event name", help="e.g. Added to Cart"))
    elif trigger == "segment":
        fields.append(_f(config, "segment_id", "Segment", "select", choices=_options(segments, "choose a segment…")))
    return [Section("Entry", fields)] + (_filters(config) if trigger == "event" else [])


def _delay(config: Mapping, segments: Segments) -> list[Section]:
    mode = config.get("mode")
    fields = [_f(config, "mode", "Wait", "select", refresh=True, choices=_options((
        ("duration", "for a duration"), ("time_of_day", "until a time of day"),
        ("date_trait", "until a date on their profile"), (BEST_TIME, "until their best time"),
    ), "choose…"))]
    if mode == "duration":
        fields += [_f(config, "amount", "Amount", "number"), _f(config, "unit", "Unit", "select", choices=UNIT_CHOICES)]
    elif mode == "time_of_day":
        fields += [_f(config, "time", "Time (their local time)", "time"),
                   _f(config, "weekdays", "On", "weekdays", help="None ticked: every day")]
    elif mode == "date_trait":
        fields += [_f(config, "trait", "Date trait", help="e.g. birthday"),
                   _f(config, "offset_days", "Days after (negative: before)", "number"),
                   _f(config, "time", "At (their local time)", "time")]
    elif mode == BEST_TIME:
        fields.append(_f(config, "within_hours", "Within the next … hours", "number",
                         help="1 to 168; their most active hour, outside quiet hours"))
    return [Section("Delay", fields)]


def _content(config: Mapping, channel: str) -> Section:
    required, optional = CHANNEL_FIELDS[channel]
    fields = [
        _f(config, f"content.{channel}.{name}", name.replace("_", " ").capitalize() + ("" if name in required else " (optional)"),
           "textarea" if name in LONG_FIELDS else "text")
        for name in required + optional
    ]
    return Section(f"{CHANNEL_LABELS[channel]} content", fields, channel=channel)


def _send(config: Mapping, segments: Segments) -> list[Section]:
    channel_choices = _options([*Channel.choices, (BEST_CHANNEL, "Best channel for each person")], "choose…")
    fields = [_f(config, "channel", "Channel", "select", refresh=True, choices=channel_choices)]
    best = config.get("channel") == BEST_CHANNEL
    fallback_label = "Choose among, in order" if best else "If unavailable, fall back to"
    # One empty choice after those made (two for best channel, which needs two), not every
    # possible one at once: each choice re-renders the form with the next.
    chosen = len([c for c in (config.get("fallback") or []) if c])
    for index in range(min(MAX_FALLBACK - (0 if best else 1), max(chosen + 1, 2 if best else 1))):
        fields.append(_f(config, f"fallback.{index}", f"{fallback_label} ({index + 1})", "select", refresh=True,
                         choices=_options(Channel.choices, "—")))
    fields.append(_f(config, "on_cap", "When a frequency cap holds it back", "select",
                     choices=_options(((c, c) for c in ON_CAP), "defer (default)")))
    if config.get("channel") == BEST_CHANNEL:
        fields.append(_f(config, "explore", "Explore share", "number", help="0 to 0.5; default 0.05"))
    return [Section("Send", fields)] + [_content(config, ch) for ch in _send_channels(config)]


def _wait(config: Mapping, segments: Segments, timeout_kind: str = "") -> list[Section]:
    mode = config.get("mode")
    fields = [_f(config, "mode", "Wait for", "select", refresh=True, choices=_options(
        (("event", "an event"), ("engagement", "an engagement with the last message")), "choose…"))]
    if mode == "event":
        fields.append(_f(config, "event", "Event name", help="e.g. Order Completed"))
    elif mode == "engagement":
        fields.append(_f(config, "engagement", "Engagement", "select", choices=_options(((e, e) for e in ENGAGEMENTS), "choose…")))
    sections = [Section("Wait for event", fields)] + (_filters(config) if mode == "event" else [])
    if mode in ("event", "engagement"):
        sections.append(_timeout(config, timeout_kind))
    return sections


def _timeout(config: Mapping, timeout_kind: str) -> Section:
    timeout = config.get("timeout") if isinstance(config.get("timeout"), Mapping) else {}
    kind = timeout_kind or ("until" if "until" in timeout else "duration")
    fields = [Field("timeout_kind", "Give up", "select", kind, refresh=True, plain=True,
                    choices=[("duration", "after a duration"), ("until", "at a time of day")])]
    if kind == "until":
        fields += [_f(config, "timeout.until.time", "At (their local time)", "time"),
                   _f(config, "timeout.until.weekdays", "On", "weekdays", help="None ticked: every day")]
    else:
        fields += [_f(config, "timeout.amount", "After", "number"),
                   _f(config, "timeout.unit", "Unit", "select", choices=UNIT_CHOICES)]
    return Section("Timeout", fields)


def _branches(config: Mapping, row: Callable[[str], list[Field]], title: str, minimum: int) -> list[Section]:
    branches = config.get("branches") if isinstance(config.get("branches"), list) else []
    count = max(len(branches) + 1, minimum)
    return [Section(f"{title} {index + 1}" if index < len(branches) else f"Add a {title.lower()}", row(f"branches.{index}"), row=True)
            for index in range(count)]


def _split(config: Mapping, segments: Segments, modes: list[str] = (),
           problems: list[tuple[str, str]] = ()) -> list[Section]:
    """Each branch: port, label, how its condition is written, and the condition as rows,
    a segment or JSON. Problems inside a branch's rows are placed here, not by _pin."""
    branches = config.get("branches") if isinstance(config.get("branches"), list) else []
    sections = []
    for index in range(len(branches) + 1):  # every branch, then a blank one to add
        at = f"branches.{index}"
        condition = _get(config, f"{at}.condition")
        mode = modes[index] if index < len(modes) else conditions.mode_of(condition)
        fields = [_f(config, f"{at}.port", "Port", help="letters, digits, _"), _f(config, f"{at}.label", "Label"),
                  Field(f"when.{index}", "Who goes this way", "select", mode, refresh=True, plain=True,
                        choices=conditions.MODE_CHOICES)]
        built = None
        if mode == conditions.SEGMENT:
            by_segment = conditions.mode_of(condition) == conditions.SEGMENT
            fields.append(Field(f"{at}.segment", "Members of", "select", str(condition["segment_id"]) if by_segment else "",
                                choices=_options(segments, "a segment…")))
        elif mode == conditions.JSON:
            fields.append(Field(f"{at}.condition", "Segment definition (JSON)", "json",
                                "" if condition is None else _shown(condition, "json")))
        else:
            built = conditions.builder(index, condition, problems)
        title = f"Branch {index + 1}" if index < len(branches) else "Add a branch"
        sections.append(Section(title, fields, row=True, builder=built))
    return sections


def _random_split(config: Mapping, segments: Segments) -> list[Section]:
    def row(at: str) -> list[Field]:
        return [_f(config, f"{at}.port", "Port"), _f(config, f"{at}.label", "Label"),
                _f(config, f"{at}.weight", "Weight", "number")]

    return _branches(config, row, "Branch", 2)


def _update_profile(config: Mapping, segments: Segments) -> list[Section]:
    return [Section("Update profile", [
        _f(config, "trait", "Trait"), _f(config, "value", "Value", "json", help="A number, true/false, null, [a list] or text"),
    ])]


def _exit(config: Mapping, segments: Segments) -> list[Section]:
    return []


BUILDERS = {
    NodeKind.ENTRY: _entry, NodeKind.DELAY: _delay, NodeKind.SEND: _send, NodeKind.SPLIT: _split,
    NodeKind.RANDOM_SPLIT: _random_split, NodeKind.UPDATE_PROFILE: _update_profile, NodeKind.EXIT: _exit,
}


def build_form(kind: str, label: str, config: Mapping, segments: Segments, *, timeout_kind: str = "",
               problems: list[tuple[str, str]] = (), split_modes: list[str] = ()) -> NodeForm:
    if kind == NodeKind.WAIT_FOR_EVENT:
        sections = _wait(config, segments, timeout_kind)
    elif kind == NodeKind.SPLIT:
        sections = _split(config, segments, list(split_modes), problems)
        built = [s for s in sections if s.builder]
        problems = [(path, reason) for path, reason in problems
                    if not any(path == f"branches.{s.builder.branch}.condition"
                               or path.startswith(f"branches.{s.builder.branch}.condition.") for s in built)]
    else:
        sections = BUILDERS[NodeKind(kind)](config, segments)
    name = Field("label", "Name on the canvas", "text", label, plain=True, help="Optional")
    form = NodeForm(kind, [Section("", [name]), *sections])
    _pin(form, problems)
    return form


def _pin(form: NodeForm, problems: list[tuple[str, str]]) -> None:
    """Each problem on the field it names, else on the nearest field inside or around it."""
    fields = form.fields()
    for path, reason in problems:
        found = (next((f for f in fields if f.name == path and not f.plain), None)
                 or next((f for f in fields if f.name.startswith(path + ".") and not f.plain), None)
                 or max((f for f in fields if path.startswith(f.name + ".") and not f.plain),
                        key=lambda f: len(f.name), default=None))
        if found is not None:
            deeper = path.startswith(found.name + ".")  # e.g. a key inside a JSON condition
            found.errors.append(f"{path.removeprefix(found.name + '.')}: {reason}" if deeper else reason)
        else:
            form.errors.append(f"{path or 'config'}: {reason}" if path else reason)
