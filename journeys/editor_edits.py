"""The canvas's edits as pure functions of a graph: each returns a new graph, or raises
EditError naming what is wrong (nothing is written; journeys.editor_services stores them).

A draft may be unfinished (a new node has no config yet), so edits check only what would
make the graph meaningless: unknown nodes or ports, an edge into the entry node or into
itself, a second entry. Publishing checks the rest (journeys.graph.validate_graph).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from journeys.graph import MAX_NODES, entry_node, nodes_by_id
from journeys.nodes import NODE_KINDS, NodeKind

MAX_COORDINATE = 100_000  # far beyond any canvas; keeps positions sane numbers
GRID = 8  # positions snap to it, so nodes line up


class EditError(ValueError):
    """An edit that cannot be made; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def _copy(graph: Mapping) -> dict:
    graph = copy.deepcopy(dict(graph))
    graph.setdefault("nodes", [])
    graph.setdefault("edges", [])
    return graph


def _node(graph: Mapping, node_id: str) -> dict:
    node = nodes_by_id(graph).get(node_id)
    if node is None:
        raise EditError("node", f"there is no node {node_id!r} in this journey")
    return node


def position(x: Any, y: Any) -> dict[str, int]:
    """A snapped position from untrusted input."""
    try:
        px, py = round(float(x)), round(float(y))
    except (TypeError, ValueError):
        raise EditError("position", "must be two numbers, x and y") from None
    if not (-MAX_COORDINATE <= px <= MAX_COORDINATE and -MAX_COORDINATE <= py <= MAX_COORDINATE):
        raise EditError("position", f"must lie within ±{MAX_COORDINATE}")
    return {"x": px - px % GRID, "y": py - py % GRID}


def new_node_id(graph: Mapping, kind: str) -> str:
    taken = set(nodes_by_id(graph))
    base = kind.replace("_", "-")
    number = 1
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def add_node(graph: Mapping, kind: str, at: dict[str, int]) -> tuple[dict, str]:
    """A new, unconfigured node of ``kind`` at ``at``; returns the graph and its id."""
    if kind not in NODE_KINDS:
        raise EditError("kind", f"must be one of: {', '.join(NodeKind)}")
    if kind == NodeKind.ENTRY and entry_node(graph) is not None:
        raise EditError("kind", "this journey already has an entry node: a journey has exactly one")
    graph = _copy(graph)
    if len(graph["nodes"]) >= MAX_NODES:
        raise EditError("kind", f"a journey holds at most {MAX_NODES} nodes")
    node_id = new_node_id(graph, kind)
    graph["nodes"].append({"id": node_id, "kind": kind, "config": {}, "position": at})
    return graph, node_id


def move_node(graph: Mapping, node_id: str, at: dict[str, int]) -> dict:
    graph = _copy(graph)
    _node(graph, node_id)["position"] = at
    return graph


def ports(node: Mapping) -> list[str]:
    return NODE_KINDS[NodeKind(node["kind"])].ports(node.get("config") or {}) if node.get("kind") in NODE_KINDS else []


def connect(graph: Mapping, source: str, port: str, target: str) -> dict:
    """Lead ``port`` of ``source`` to ``target``, replacing the edge it had (a port leads to one node)."""
    graph = _copy(graph)
    node = _node(graph, source)
    if port not in ports(node):
        listed = ", ".join(ports(node)) or "none"
        raise EditError("port", f"{port!r} is not a port of {source} (its ports: {listed})")
    into = _node(graph, target)
    if target == source:
        raise EditError("to", "a node cannot lead into itself")
    if into.get("kind") == NodeKind.ENTRY:
        raise EditError("to", "nothing may lead into the entry node")
    graph["edges"] = [e for e in graph["edges"] if not (e.get("from") == source and e.get("port") == port)]
    graph["edges"].append({"from": source, "port": port, "to": target})
    return graph


def delete_edge(graph: Mapping, source: str, port: str) -> dict:
    graph = _copy(graph)
    kept = [e for e in graph["edges"] if not (e.get("from") == source and e.get("port") == port)]
    if len(kept) == len(graph["edges"]):
        raise EditError("edge", f"there is no edge from {source} {port}")
    graph["edges"] = kept
    return graph


def delete_node(graph: Mapping, node_id: str) -> dict:
    """Remove the node and every edge into or out of it."""
    graph = _copy(graph)
    node = _node(graph, node_id)
    if node.get("kind") == NodeKind.ENTRY:
        raise EditError("node", "the entry node cannot be deleted: it is how people enter the journey")
    graph["nodes"] = [n for n in graph["nodes"] if n is not node]
    graph["edges"] = [e for e in graph["edges"] if node_id not in (e.get("from"), e.get("to"))]
    return graph


def configure_node(graph: Mapping, node_id: str, label: str, config: dict) -> dict:
    """Set the node's label and (already validated) config; edges from ports it no longer
    has are dropped, since they could never be taken."""
    graph = _copy(graph)
    node = _node(graph, node_id)
    node["config"] = config
    if label:
        node["label"] = label
    else:
        node.pop("label", None)
    kept_ports = set(ports(node))
    graph["edges"] = [e for e in graph["edges"] if e.get("from") != node_id or e.get("port") in kept_ports]
    return graph
