"""Auto-layout: the journey as a tidy top-down tree, and the geometry the canvas draws with.

Each node hangs under the first node (in reading order) that leads to it, so a loop back
or a second way in does not move it; a parent is centred over its children, and nodes the
entry does not reach are laid in a row underneath. Node size and port places are here, so
the server-rendered edges and the browser's dragging (static/js/canvas.js) agree.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from journeys import summaries
from journeys.graph import nodes_by_id

NODE_WIDTH = 216
NODE_HEIGHT = 140
GAP_X = 40
GAP_Y = 64
ORIGIN = 40


def port_point(node: Mapping, port: str, ports: list[str]) -> tuple[float, float]:
    """Where an edge leaves ``port``: spread evenly along the node's bottom edge."""
    x, y = _xy(node)
    index = ports.index(port) if port in ports else 0
    return x + NODE_WIDTH * (index + 1) / (len(ports) + 1), y + NODE_HEIGHT


def in_point(node: Mapping) -> tuple[float, float]:
    x, y = _xy(node)
    return x + NODE_WIDTH / 2, y


def edge_path(start: tuple[float, float], end: tuple[float, float]) -> str:
    """A cubic curve leaving downwards and arriving from above (canvas.js draws the same)."""
    (sx, sy), (ex, ey) = start, end
    bend = max(40.0, abs(ey - sy) / 2)
    return f"M {sx:g} {sy:g} C {sx:g} {sy + bend:g}, {ex:g} {ey - bend:g}, {ex:g} {ey:g}"


def _xy(node: Mapping) -> tuple[float, float]:
    position = node.get("position")
    if isinstance(position, Mapping) and all(isinstance(position.get(k), int | float) for k in ("x", "y")):
        return float(position["x"]), float(position["y"])
    return 0.0, 0.0


def _depths(graph: Any, order: list[str]) -> dict[str, int]:
    """Each node's layer: the longest way to it from the entry over forward edges (an edge
    to a node earlier in reading order is a loop back, ignored), so a node sits below every
    node that leads to it."""
    by_id = nodes_by_id(graph)
    rank = {node_id: index for index, node_id in enumerate(order)}
    depth = dict.fromkeys(order, 0)
    for node_id in order:
        for exit_ in summaries.node_exits(graph, by_id[node_id]):
            target = exit_.target_id
            if target in rank and rank[target] > rank[node_id]:
                depth[target] = max(depth[target], depth[node_id] + 1)
    return depth


def _tree(graph: Any) -> tuple[list[str], dict[str, list[str]]]:
    """Roots and children: each node under the first node in reading order leading to it."""
    by_id = nodes_by_id(graph)
    order = [node["id"] for node in summaries.graph_order(graph)]
    placed: set[str] = set()
    children: dict[str, list[str]] = {node_id: [] for node_id in order}
    roots: list[str] = []
    for node_id in order:
        if node_id not in placed:
            roots.append(node_id)
            placed.add(node_id)
        for exit_ in summaries.node_exits(graph, by_id[node_id]):
            if exit_.target_id in by_id and exit_.target_id not in placed:
                placed.add(exit_.target_id)
                children[node_id].append(exit_.target_id)
    return roots, children


def needs_layout(graph: Any) -> bool:
    """True when a node has no usable position (a graph made through the API or imported):
    the canvas would stack such nodes at the origin, on top of each other."""
    nodes = graph.get("nodes") if isinstance(graph, Mapping) else None
    return any(isinstance(node, Mapping) and not _placed(node) for node in nodes or [])


def _placed(node: Mapping) -> bool:
    position = node.get("position")
    return isinstance(position, Mapping) and all(
        isinstance(position.get(k), int | float) and not isinstance(position.get(k), bool) for k in ("x", "y"))


def auto_layout(graph: Mapping) -> dict:
    """The graph with every node's position set for a tidy tree."""
    graph = copy.deepcopy(dict(graph))
    roots, children = _tree(graph)
    depths = _depths(graph, [node["id"] for node in summaries.graph_order(graph)])
    columns: dict[str, int] = {}
    left = ORIGIN
    for root in roots[:1]:
        left = _place(root, ORIGIN, children, columns)
    # Nodes the entry does not reach (and what they lead to) in a row below the tree.
    below = max((depths[node_id] for node_id in columns), default=-1) + 1
    left = ORIGIN
    for root in roots[1:]:
        placed = set(columns)
        left = _place(root, left, children, columns)
        for node_id in set(columns) - placed:
            depths[node_id] += below
    for node in graph.get("nodes", []):
        if isinstance(node, dict) and node.get("id") in columns:
            node["position"] = {"x": columns[node["id"]], "y": ORIGIN + depths[node["id"]] * (NODE_HEIGHT + GAP_Y)}
    return graph


def _place(node_id: str, left: int, children: dict[str, list[str]], out: dict[str, int]) -> int:
    """Give a subtree its columns from ``left`` (a parent centred over its children);
    returns the next free x."""
    kids = children.get(node_id, [])
    start = left
    for child in kids:
        left = _place(child, left, children, out)
    x = (out[kids[0]] + out[kids[-1]]) // 2 if kids else start
    out[node_id] = x
    return max(left, x + NODE_WIDTH + GAP_X)
