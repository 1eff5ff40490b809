"""What the canvas draws: nodes with their ports and pinned problems, edges as SVG paths.

Built from a version's graph for ``templates/journeys/editor/canvas.html#board``; the
geometry comes from journeys.editor_layout, which static/js/canvas.js mirrors while a
node is dragged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from journeys import editor_history as history
from journeys import summaries
from journeys.editor_layout import NODE_HEIGHT, NODE_WIDTH, edge_path, in_point, port_point
from journeys.graph import Problem, nodes_by_id
from journeys.models import Journey, JourneyVersion
from journeys.nodes import NODE_KINDS, NodeKind
from journeys.views import segment_names

MARGIN = 400  # room to drop new nodes beyond the furthest one


@dataclass(frozen=True)
class PortView:
    name: str
    label: str
    left: float  # px from the node's left edge to the port's centre
    connected: bool


@dataclass
class NodeView:
    id: str
    kind: str
    kind_label: str
    label: str
    summary: str
    x: float
    y: float
    ports: list[PortView]
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EdgeView:
    source: str
    port: str
    target: str
    d: str
    label: str


@dataclass(frozen=True)
class PaletteItem:
    kind: str
    label: str
    description: str


def palette() -> list[PaletteItem]:
    return [PaletteItem(kind.value, spec.label, spec.description) for kind, spec in NODE_KINDS.items()]


def _problems_by_node(problems: Iterable[Problem]) -> tuple[dict[str, list[str]], list[str]]:
    pinned: dict[str, list[str]] = defaultdict(list)
    loose: list[str] = []
    for problem in problems:
        field = problem.field.removeprefix("config.")  # every node setting is under config: noise on a node
        where = f"{field}: " if field else ""
        if problem.node_id:
            pinned[problem.node_id].append(where + problem.message)
        else:
            loose.append(f"{problem.path}: {problem.message}")
    return pinned, loose


def _node_view(graph: dict, node: dict, names: dict[int, str], pinned: dict[str, list[str]]) -> NodeView:
    kind = str(node.get("kind", ""))
    spec = NODE_KINDS.get(NodeKind(kind)) if kind in NODE_KINDS else None
    ports = summaries.ports_of(node)
    connected = {(e.get("from"), e.get("port")) for e in graph.get("edges", []) if isinstance(e, dict)}
    centre, top = in_point(node)
    left = centre - NODE_WIDTH / 2
    port_views = [
        PortView(p, summaries.port_label(node, p), port_point(node, p, ports)[0] - left, (node["id"], p) in connected)
        for p in ports
    ]
    return NodeView(
        node["id"], kind, spec.label if spec else kind or "Unknown", summaries.node_label(node),
        summaries.node_summary(node, names), left, top, port_views, pinned.get(node["id"], []),
    )


def _edge_views(graph: dict, by_id: dict[str, dict]) -> list[EdgeView]:
    views = []
    for edge in graph.get("edges", []):
        if not isinstance(edge, dict) or edge.get("from") not in by_id or edge.get("to") not in by_id:
            continue
        source, target = by_id[edge["from"]], by_id[edge["to"]]
        start = port_point(source, edge.get("port", ""), summaries.ports_of(source))
        views.append(EdgeView(edge["from"], edge.get("port", ""), edge["to"], edge_path(start, in_point(target)),
                              summaries.port_label(source, edge.get("port", ""))))
    return views


def board_context(journey: Journey, version: JourneyVersion | None, *, read_only: bool,
                  problems: Iterable[Problem] = ()) -> dict[str, Any]:
    graph = version.graph if version is not None else {"nodes": [], "edges": []}
    by_id = nodes_by_id(graph)
    pinned, loose = _problems_by_node(problems)
    names = segment_names(graph)
    nodes = [_node_view(graph, node, names, pinned) for node in by_id.values()]
    draft = version if version is not None and not version.is_published else None
    return {
        "nodes": nodes,
        "edges": _edge_views(graph, by_id),
        "graph_problems": loose,
        "problem_count": sum(len(p) for p in pinned.values()) + len(loose),
        "revision": journey.graph_revision,
        "can_undo": not read_only and history.undoable(draft) is not None,
        "can_redo": not read_only and history.redoable(draft) is not None,
        "world_width": max([n.x + NODE_WIDTH for n in nodes] + [0]) + MARGIN,
        "world_height": max([n.y + NODE_HEIGHT for n in nodes] + [0]) + MARGIN,
        "node_width": NODE_WIDTH,
        "node_height": NODE_HEIGHT,
    }
