"""The channel content rules on a journey's send nodes, where a journey is saved and published.

A journey has no separate templates: each send node's content *is* its template. So the
content rules (``channels_app.content_rules``) run on every send node's raw Liquid text:
the API and the journey page report every problem, pinned on its node and field, and
publishing is refused while any is an error (warnings never block). The engine checks
the rendered text again at send time (``orchestrator.engine.steps``). A send that may
use several channels (``channel: "best"``, or a ``fallback`` list) has each channel's
content checked against that channel's rules, since any of them may be the one sent.

In-app presence is a property of the journey's shape, decided here (docs/journeys.md
"Content rules"): the customer can be in the app at a send node when every way into it
comes straight from an app event, i.e. from an entry triggered by one or from the
``happened`` port of a wait for one, through nodes that take no time (sends, splits,
profile updates). A delay, a timeout or an engagement wait on the way means the customer
may have left. App events are the rule set's ``in_app_presence_events``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from channels_app.content_rules import ContentProblem, RuleSet, check_content
from customers.enums import Category, Channel
from journeys.graph import Problem, nodes_by_id
from journeys.nodes import BEST_CHANNEL, NODE_KINDS, NodeKind


@dataclass(frozen=True)
class NodeContentProblem:
    """A content problem pinned on the send node whose content has it."""

    node_id: str
    problem: ContentProblem
    # Where the node names the channel: "channel", or "fallback" for a channel a best-channel
    # or fallback send may use (a problem with the channel itself is pinned there).
    named_in: str = "channel"

    @property
    def is_error(self) -> bool:
        return self.problem.severity == "error"

    def to_json(self) -> dict[str, str]:
        p = self.problem
        return {"node": self.node_id, "field": p.field, "severity": p.severity, "message": p.message}

    def as_graph_problem(self) -> Problem:
        """As a publishing problem: "sms.body" is at config.content.sms.body; a problem
        with the channel itself (in-app presence) is where the node names the channel."""
        field = self.problem.field
        where = f"config.content.{field}" if "." in field else f"config.{self.named_in}"
        return Problem(self.node_id, where, self.problem.message)


def content_problems(graph: Any, category: str, rules: RuleSet) -> list[NodeContentProblem]:
    """Every content problem of every send node, in graph order. Send nodes whose channel or
    content is malformed are skipped: the graph checks report those."""
    if category not in Category.values:
        return []  # an invalid category is the settings validator's to report
    in_app = app_present_nodes(graph, rules.in_app_presence_events)
    found = []
    for node_id, channel, fields, named_in in _send_contents(graph):
        for problem in check_content(channel, category, fields, rules, customer_can_be_in_app=node_id in in_app):
            found.append(NodeContentProblem(node_id, problem, named_in))
    return found


def publish_problems(graph: Any, category: str, rules: RuleSet) -> list[Problem]:
    """The content errors, as the problems that stop publishing."""
    return [p.as_graph_problem() for p in content_problems(graph, category, rules) if p.is_error]


def _send_contents(graph: Any) -> Iterator[tuple[str, str, Mapping, str]]:
    """(node, channel, that channel's content, where the node names the channel) for every
    channel each send node may use: its channel and its fallbacks, or with ``channel:
    "best"`` every channel it chooses among. Each is checked against its own rules."""
    for node_id, node in nodes_by_id(graph).items():
        config = node.get("config")
        if node.get("kind") != NodeKind.SEND or not isinstance(config, Mapping):
            continue
        content = config.get("content")
        if not isinstance(content, Mapping):
            continue
        for channel, named_in in _channels_of(config):
            if isinstance(content.get(channel), Mapping):
                yield node_id, channel, content[channel], named_in


def _channels_of(config: Mapping) -> list[tuple[str, str]]:
    """The node's channels with where each is named; unknown channels are skipped (the
    graph checks report them)."""
    fallback = config.get("fallback")
    fallback = fallback if isinstance(fallback, list) else []
    named = [] if config.get("channel") == BEST_CHANNEL else [(config.get("channel"), "channel")]
    named += [(channel, "fallback") for channel in fallback]
    seen: set[str] = set()
    channels = []
    for channel, named_in in named:
        if isinstance(channel, str) and channel in Channel.values and channel not in seen:
            seen.add(channel)
            channels.append((channel, named_in))
    return channels


# --- in-app presence ----------------------------------------------------------------------


def app_present_nodes(graph: Any, app_events: tuple[str, ...]) -> set[str]:
    """The nodes at which the customer is surely in the app (see the module docstring).

    Every node starts presumed present and loses it when any edge into it does not carry
    presence, until nothing changes: the largest consistent answer, so a loop of
    instantaneous nodes fed only by app moments stays present.
    """
    by_id = nodes_by_id(graph)
    incoming = _incoming_edges(graph, by_id)
    events = {name.casefold() for name in app_events}
    present = {node_id for node_id, node in by_id.items() if node.get("kind") != NodeKind.ENTRY or _app_entry(node, events)}
    changed = True
    while changed:
        changed = False
        for node_id in list(present):
            if any(not _carries_presence(by_id[source], port, present, events) for source, port in incoming.get(node_id, ())):
                present.discard(node_id)
                changed = True
    return present


def _incoming_edges(graph: Any, by_id: Mapping[str, Mapping]) -> dict[str, list[tuple[str, str]]]:
    incoming: dict[str, list[tuple[str, str]]] = {}
    edges = graph.get("edges") if isinstance(graph, Mapping) else None
    for edge in edges if isinstance(edges, list) else ():
        if isinstance(edge, Mapping) and edge.get("from") in by_id and edge.get("to") in by_id:
            incoming.setdefault(edge["to"], []).append((edge["from"], str(edge.get("port"))))
    return incoming


def _carries_presence(source: Mapping, port: str, present: set[str], events: set[str]) -> bool:
    kind, config = source.get("kind"), source.get("config")
    config = config if isinstance(config, Mapping) else {}
    if kind == NodeKind.ENTRY:
        return _app_entry(source, events)
    if kind == NodeKind.WAIT_FOR_EVENT:
        return port == "happened" and config.get("mode") == "event" and _is_app_event(config.get("event"), events)
    spec = NODE_KINDS.get(NodeKind(kind)) if isinstance(kind, str) and kind in NODE_KINDS else None
    # Time passes at a delay (and an unknown kind proves nothing); instant nodes pass it on.
    return spec is not None and not spec.blocking and source["id"] in present


def _app_entry(node: Mapping, events: set[str]) -> bool:
    config = node.get("config")
    return isinstance(config, Mapping) and config.get("trigger") == "event" and _is_app_event(config.get("event"), events)


def _is_app_event(name: Any, events: set[str]) -> bool:
    return isinstance(name, str) and name.casefold() in events
