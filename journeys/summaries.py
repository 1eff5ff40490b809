"""A journey in plain words, for the read-only pages: node order, one line per node, its exits.

Pure functions of a graph (and of a journey's settings); nothing here reads the database.
The graph format is docs/journeys.md; a published graph is valid, but drafts may be
unfinished, so every reader tolerates missing or odd config and says "not configured".
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from customers.enums import Channel
from journeys.graph import entry_node, next_node_id, nodes_by_id
from journeys.models import Journey, ReentryPolicy
from journeys.nodes import NODE_KINDS, NodeKind

SNIPPET = 80  # characters of a message shown in a send node's summary
OPS = {
    "eq": "=", "neq": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤",
    "contains": "contains", "in": "in", "exists": "exists", "not_exists": "is missing",
}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))
NOT_CONFIGURED = "Not configured yet"


# --- order and exits --------------------------------------------------------------------


def ports_of(node: Mapping) -> list[str]:
    kind = node.get("kind")
    if kind not in NODE_KINDS:
        return []
    return NODE_KINDS[NodeKind(kind)].ports(node.get("config") or {})


def graph_order(graph: Any) -> list[dict]:
    """Nodes in reading order: breadth-first from the entry, each node after every node
    that leads into it where the graph allows (a loop through a wait cannot), ports in
    their order. Nodes the entry does not reach (only in drafts) come last, as listed."""
    by_id = nodes_by_id(graph)
    found = _breadth_first(graph, by_id)
    rank = {node_id: index for index, node_id in enumerate(found)}
    incoming = {node_id: 0 for node_id in found}
    for node_id in found:
        for target in _targets(graph, by_id[node_id]):
            incoming[target] += 1
    ordered: list[str] = []
    ready = deque(node_id for node_id in found[:1])
    while len(ordered) < len(found):
        if not ready:  # only loops remain: take the earliest found, as breadth-first would
            ready.append(min((n for n in found if n not in ordered), key=rank.__getitem__))
        node_id = ready.popleft()
        if node_id in ordered:
            continue
        ordered.append(node_id)
        for target in _targets(graph, by_id[node_id]):
            incoming[target] -= 1
            if incoming[target] == 0 and target not in ordered:
                ready.append(target)
    return [by_id[n] for n in ordered] + [node for node_id, node in by_id.items() if node_id not in rank]


def _targets(graph: Any, node: Mapping) -> list[str]:
    """Where the node's ports lead, in port order, each node once."""
    by_id = nodes_by_id(graph)
    targets = (next_node_id(graph, node["id"], port) for port in ports_of(node))
    return list(dict.fromkeys(t for t in targets if t is not None and t in by_id))


def _breadth_first(graph: Any, by_id: dict[str, dict]) -> list[str]:
    entry = entry_node(graph)
    found: list[str] = []
    queue = deque([entry["id"]] if entry else [])
    while queue:
        node_id = queue.popleft()
        if node_id in found:
            continue
        found.append(node_id)
        queue.extend(t for t in _targets(graph, by_id[node_id]) if t not in found)
    return found


def node_label(node: Mapping | None, node_id: str = "") -> str:
    if not node:
        return node_id
    return str(node.get("label") or node.get("id") or node_id)


@dataclass(frozen=True)
class Exit:
    """One port of a node and where its edge leads (None: the journey ends there)."""

    port: str
    label: str  # "timed out", a split branch's label
    target_id: str | None
    target_label: str


def port_label(node: Mapping, port: str) -> str:
    config = node.get("config") or {}
    for branch in config.get("branches") or []:
        if isinstance(branch, Mapping) and branch.get("port") == port:
            if node.get("kind") == NodeKind.RANDOM_SPLIT:
                return f"{port} ({_share(branch, config)})"
            return str(branch.get("label") or port)
    return "then" if port == "out" else port.replace("_", " ")


def node_exits(graph: Any, node: Mapping) -> list[Exit]:
    by_id = nodes_by_id(graph)
    exits = []
    for port in ports_of(node):
        target = next_node_id(graph, node["id"], port)
        label = node_label(by_id.get(target), target) if target else "end of journey"
        exits.append(Exit(port, port_label(node, port), target, label))
    return exits


# --- one line per node ------------------------------------------------------------------


def node_summary(node: Mapping, segment_names: Mapping[int, str] | None = None) -> str:
    """What the node does, in one line: "Wait for Order Completed, at most until 09:00"."""
    config = node.get("config")
    if not isinstance(config, Mapping):
        return NOT_CONFIGURED
    summarise = SUMMARIES.get(str(node.get("kind")))
    try:
        return summarise(config, segment_names or {}) if summarise else NOT_CONFIGURED
    except (KeyError, TypeError, ValueError, AttributeError):  # an unfinished draft's config
        return NOT_CONFIGURED


def _entry(config: Mapping, segments: Mapping[int, str]) -> str:
    trigger = config.get("trigger")
    if trigger == "event" and config.get("event"):
        return f"When {config['event']} happens{_if(config.get('filters'))}"
    if trigger == "segment" and config.get("segment_id"):
        name = segments.get(config["segment_id"])
        who = f"segment “{name}”" if name else f"segment #{config['segment_id']}"
        return f"Everyone in {who}, then whoever joins it"
    if trigger == "api":
        return "When triggered through the API"
    return NOT_CONFIGURED


def _delay(config: Mapping, segments: Mapping[int, str]) -> str:
    mode = config.get("mode")
    if mode == "duration":
        return f"Wait {amount(config['amount'], config['unit'])}"
    if mode == "time_of_day":
        return f"Wait until the next {config['time']}{_on(config.get('weekdays'))}, their time"
    if mode == "date_trait":
        offset = int(config.get("offset_days") or 0)
        shift = f" {'+' if offset > 0 else '−'} {amount(abs(offset), 'days')}" if offset else ""
        return f"Wait until their {config['trait']}{shift} at {config['time']}, their time"
    return NOT_CONFIGURED


def _send(config: Mapping, segments: Mapping[int, str]) -> str:
    channel = config.get("channel")
    if channel not in Channel.values:
        return NOT_CONFIGURED
    fields = (config.get("content") or {}).get(channel) or {}
    text = next((str(fields[k]) for k in ("subject", "title", "body") if fields.get(k)), "")
    text = " ".join(text.split())
    if len(text) > SNIPPET:  # cut at a word, so a template tag is not cut in half
        text = f"{text[:SNIPPET].rsplit(' ', 1)[0].rstrip(' ,;:')}…"
    return f"{Channel(channel).label}: {text}" if text else f"{Channel(channel).label}: no content yet"


def _wait(config: Mapping, segments: Mapping[int, str]) -> str:
    if config.get("mode") == "engagement":
        what = "a click on" if config.get("engagement") == "clicked" else "an open of"
        return f"Wait for {what} the previous message{_timeout(config.get('timeout'))}"
    if config.get("event"):
        return f"Wait for {config['event']}{_if(config.get('filters'))}{_timeout(config.get('timeout'))}"
    return NOT_CONFIGURED


def _split(config: Mapping, segments: Mapping[int, str]) -> str:
    labels = [str(b.get("label") or b.get("port")) for b in config.get("branches") or [] if isinstance(b, Mapping)]
    if not labels:
        return NOT_CONFIGURED
    return f"First that holds: {', '.join(labels)}; otherwise else"


def _random_split(config: Mapping, segments: Mapping[int, str]) -> str:
    branches = [b for b in config.get("branches") or [] if isinstance(b, Mapping)]
    if not branches:
        return NOT_CONFIGURED
    return "At random: " + " · ".join(f"{b.get('port')} {_share(b, config)}" for b in branches)


def _update_profile(config: Mapping, segments: Mapping[int, str]) -> str:
    if not config.get("trait"):
        return NOT_CONFIGURED
    return f"Set {config['trait']} to {json.dumps(config.get('value'), ensure_ascii=False)}"


def _exit(config: Mapping, segments: Mapping[int, str]) -> str:
    return "End of the journey"


SUMMARIES = {
    NodeKind.ENTRY: _entry,
    NodeKind.DELAY: _delay,
    NodeKind.SEND: _send,
    NodeKind.WAIT_FOR_EVENT: _wait,
    NodeKind.SPLIT: _split,
    NodeKind.RANDOM_SPLIT: _random_split,
    NodeKind.UPDATE_PROFILE: _update_profile,
    NodeKind.EXIT: _exit,
}


# --- pieces -----------------------------------------------------------------------------


def amount(count: Any, unit: str) -> str:
    """'45 minutes', '1 day'."""
    count = int(count)
    return f"{count} {unit.rstrip('s') if count == 1 else unit}"


def duration(seconds: int) -> str:
    """The largest whole unit: 604800 → '7 days', 5400 → '90 minutes'."""
    for unit, size in UNITS:
        if seconds and seconds % size == 0:
            return amount(seconds // size, unit)
    return amount(seconds, "seconds")


def filters_text(filters: Any) -> str:
    """'cart_value ≥ 100 and tier = gold'."""
    parts = []
    for item in filters if isinstance(filters, list) else []:
        if not isinstance(item, Mapping):
            continue
        op = OPS.get(str(item.get("op")), str(item.get("op")))
        if item.get("op") in ("exists", "not_exists"):
            parts.append(f"{item.get('property')} {op}")
        else:
            parts.append(f"{item.get('property')} {op} {_value(item.get('value'))}")
    return " and ".join(parts)


def _if(filters: Any) -> str:
    text = filters_text(filters)
    return f", if {text}" if text else ""


def _on(weekdays: Any) -> str:
    if not isinstance(weekdays, list) or not weekdays or len(set(weekdays)) == 7:
        return ""
    return " (" + ", ".join(WEEKDAYS[d] for d in sorted(set(weekdays)) if isinstance(d, int) and 0 <= d < 7) + ")"


def _timeout(timeout: Any) -> str:
    if not isinstance(timeout, Mapping):
        return ""
    until = timeout.get("until")
    if isinstance(until, Mapping) and until.get("time"):
        return f", at most until {until['time']}{_on(until.get('weekdays'))}"
    if timeout.get("amount") is not None and timeout.get("unit"):
        return f", at most {amount(timeout['amount'], timeout['unit'])}"
    return ""


def _share(branch: Mapping, config: Mapping) -> str:
    weights = [int(b.get("weight") or 0) for b in config.get("branches") or [] if isinstance(b, Mapping)]
    total = sum(weights)
    weight = int(branch.get("weight") or 0)
    return f"{weight * 100 / total:.0f}%" if total else "?"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    return json.dumps(value, ensure_ascii=False)


# --- the journey's settings ---------------------------------------------------------------


def goal_summary(journey: Journey) -> str:
    if not journey.goal_event:
        return "No goal"
    text = f"{journey.goal_event}{_if(journey.goal_filters)} within {duration(journey.goal_window_seconds)} of entering"
    if journey.goal_value_property:
        text += f", worth its {journey.goal_value_property}"
    return text + ("; exits on conversion" if journey.exit_on_conversion else "; stays in after converting")


def reentry_summary(journey: Journey) -> str:
    if journey.reentry == ReentryPolicy.COOLDOWN:
        return f"Again once out, at least {duration(journey.reentry_cooldown_seconds)} after the last entry"
    return journey.get_reentry_display()
