"""Whole-graph checks and the graph helpers the engine walks with.

``validate_graph`` answers with every problem at once, each naming its node where it has
one, so publishing can show them all on the canvas (docs/journeys.md "Publishing checks").
It is pure: whether referenced segments exist is checked only when the caller passes
``segment_ids``, which ``existing_segment_ids`` reads from the database.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from customers.models import Segment
from journeys.nodes import NODE_KINDS, NodeKind, NodeSpec

NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NODE_KEYS = frozenset({"id", "kind", "label", "config", "position"})
EDGE_KEYS = frozenset({"from", "port", "to"})
MAX_NODES = 500  # far beyond any journey people draw; bounds the loop check's work
MAX_LABEL = 200
KIND_NAMES = ", ".join(NodeKind)


@dataclass(frozen=True)
class Problem:
    node_id: str | None
    field: str
    message: str

    @property
    def path(self) -> str:
        base = "graph" if self.node_id is None else f"nodes.{self.node_id}"
        return f"{base}.{self.field}" if self.field else base

    def to_json(self) -> dict[str, str | None]:
        return {"node_id": self.node_id, "field": self.field, "path": self.path, "message": self.message}


class InvalidGraph(ValueError):
    """A graph that cannot be published; ``problems`` lists every reason."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self.problems))


# --- the entry points -----------------------------------------------------------------


def validate_graph(graph: Any, *, segment_ids: set[int] | None = None) -> list[Problem]:
    """Every problem in the graph; [] when it can be published.

    With ``segment_ids`` (the existing ones, see existing_segment_ids), also every
    reference to a segment that does not exist.
    """
    problems = _shape(graph)
    if problems:
        return problems
    by_id, problems = _read_nodes(graph["nodes"])
    entries = [node_id for node_id, node in by_id.items() if node.get("kind") == NodeKind.ENTRY]
    problems += _entry_problems(entries)
    links, edge_problems = _read_edges(graph["edges"], by_id, entries)
    problems += edge_problems + _unreachable(by_id, links, entries) + _loops(by_id, links)
    if segment_ids is not None:
        problems += segment_problems(graph, segment_ids)
    return problems


def validate_graph_or_raise(graph: Any, segment_ids: set[int] | None = None) -> None:
    problems = validate_graph(graph, segment_ids=segment_ids)
    if problems:
        raise InvalidGraph(problems)


# --- shape and nodes ------------------------------------------------------------------


def _shape(graph: Any) -> list[Problem]:
    if not isinstance(graph, Mapping):
        return [Problem(None, "", "must be an object with nodes and edges")]
    problems = [Problem(None, key, "must be a list") for key in ("nodes", "edges") if not isinstance(graph.get(key), list)]
    if not problems and len(graph["nodes"]) > MAX_NODES:
        problems.append(Problem(None, "nodes", f"may hold at most {MAX_NODES} nodes"))
    return problems


def _read_nodes(nodes: list) -> tuple[dict[str, Mapping], list[Problem]]:
    """Nodes by id (the first of any duplicates), and every problem with them."""
    by_id: dict[str, Mapping] = {}
    problems: list[Problem] = []
    for index, node in enumerate(nodes):
        if not isinstance(node, Mapping):
            problems.append(Problem(None, f"nodes.{index}", "must be an object with id, kind and config"))
        elif not isinstance(node.get("id"), str) or not NODE_ID.match(node["id"]):
            problems.append(Problem(None, f"nodes.{index}.id", "must be 1 to 64 letters, digits, _ or -"))
        elif node["id"] in by_id:
            problems.append(Problem(node["id"], "id", "is used by more than one node"))
        else:
            by_id[node["id"]] = node
            problems += _node_problems(node)
    return by_id, problems


def _node_problems(node: Mapping) -> list[Problem]:
    node_id = node["id"]
    problems = [Problem(node_id, str(key), "is not a known key here") for key in node if key not in NODE_KEYS]
    label = node.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
        problems.append(Problem(node_id, "label", f"must be text of at most {MAX_LABEL} characters"))
    if "position" in node and not _is_position(node["position"]):
        problems.append(Problem(node_id, "position", "must be {x, y} with numbers"))
    return problems + _config_problems(node)


def _is_position(position: Any) -> bool:
    return isinstance(position, Mapping) and set(position) == {"x", "y"} and all(
        isinstance(position[axis], int | float) and not isinstance(position[axis], bool) for axis in ("x", "y")
    )


def _spec(node: Mapping) -> NodeSpec | None:
    kind = node.get("kind")
    return NODE_KINDS.get(NodeKind(kind)) if isinstance(kind, str) and kind in NODE_KINDS else None


def _config_problems(node: Mapping) -> list[Problem]:
    spec = _spec(node)
    if spec is None:
        reason = "is required" if node.get("kind") in (None, "") else f"must be one of: {KIND_NAMES}"
        return [Problem(node["id"], "kind", reason)]
    found = spec.validate(node.get("config", {}))
    return [Problem(node["id"], f"config.{where}" if where else "config", reason) for where, reason in found]


def _entry_problems(entries: list[str]) -> list[Problem]:
    if not entries:
        return [Problem(None, "nodes", "needs an entry node: it is how people enter the journey")]
    return [Problem(node_id, "kind", "is a second entry node: a journey has exactly one") for node_id in entries[1:]]


# --- edges ----------------------------------------------------------------------------


def _read_edges(edges: list, by_id: dict[str, Mapping], entries: list[str]) -> tuple[list[tuple[str, str]], list[Problem]]:
    """The links (from, to) the engine can follow, and every problem with the edges."""
    links: list[tuple[str, str]] = []
    problems: list[Problem] = []
    used: set[tuple[str, str]] = set()
    for index, edge in enumerate(edges):
        found = _edge_shape(edge, index, by_id) or _edge_problems(edge, by_id, entries, used)
        problems += found
        if not found:
            used.add((edge["from"], edge["port"]))
            links.append((edge["from"], edge["to"]))
    return links, problems


def _edge_shape(edge: Any, index: int, by_id: dict[str, Mapping]) -> list[Problem]:
    if not isinstance(edge, Mapping):
        return [Problem(None, f"edges.{index}", "must be an object with from, port and to")]
    problems = [Problem(None, f"edges.{index}.{key}", "is not a known key here") for key in edge if key not in EDGE_KEYS]
    for key in ("from", "port", "to"):
        if not isinstance(edge.get(key), str) or not edge[key]:
            problems.append(Problem(None, f"edges.{index}.{key}", "is required" if edge.get(key) in (None, "") else "must be text"))
    if not problems and edge["from"] not in by_id:
        problems.append(Problem(None, f"edges.{index}.from", f"names {edge['from']!r}, which is not a node"))
    return problems


def _edge_problems(edge: Mapping, by_id: dict[str, Mapping], entries: list[str], used: set[tuple[str, str]]) -> list[Problem]:
    source, port, target = edge["from"], edge["port"], edge["to"]
    field = f"ports.{port}"
    ports = _ports(by_id[source])
    if ports is not None and port not in ports:
        listed = f"its ports: {', '.join(ports)}" if ports else "it has no ports"
        return [Problem(source, field, f"is not a port of this {by_id[source]['kind']} node ({listed})")]
    if (source, port) in used:
        return [Problem(source, field, "has more than one edge: a port leads to one node")]
    if target not in by_id:
        return [Problem(source, field, f"leads to {target!r}, which is not a node")]
    if target in entries:
        return [Problem(source, field, "leads into the entry node: nothing may lead into it")]
    return []


def _ports(node: Mapping) -> list[str] | None:
    """The node's ports; None when its kind is unknown (already reported)."""
    spec = _spec(node)
    return None if spec is None else spec.ports(node.get("config", {}))


# --- reachability and loops -----------------------------------------------------------


def _successors(links: list[tuple[str, str]], keep: Iterable[str] | None = None) -> dict[str, list[str]]:
    allowed = None if keep is None else set(keep)
    out: dict[str, list[str]] = {}
    for source, target in links:
        if allowed is None or (source in allowed and target in allowed):
            out.setdefault(source, []).append(target)
    return out


def _reach(successors: dict[str, list[str]], starts: Iterable[str]) -> set[str]:
    seen, queue = set(starts), deque(starts)
    while queue:
        for target in successors.get(queue.popleft(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _unreachable(by_id: dict[str, Mapping], links: list[tuple[str, str]], entries: list[str]) -> list[Problem]:
    if not entries:
        return []  # already reported; every node would otherwise be flagged as well
    reached = _reach(_successors(links), entries)
    return [Problem(node_id, "", "cannot be reached from the entry node") for node_id in by_id if node_id not in reached]


def _loops(by_id: dict[str, Mapping], links: list[tuple[str, str]]) -> list[Problem]:
    """One problem per loop of non-blocking nodes, which would spin inside one transaction.

    Blocking nodes are left out of the graph searched (so a loop through a delay or wait
    is fine), and so are unknown kinds, already reported. A node is on such a loop when it
    reaches itself; the loop's members are the nodes it reaches that reach it back.
    """
    quick = [node_id for node_id, node in by_id.items() if _runs_through(node)]
    successors = _successors(links, quick)
    onward = {node_id: _reach(successors, successors.get(node_id, ())) for node_id in quick}
    problems, seen = [], set()
    for node_id in quick:
        if node_id in seen or node_id not in onward[node_id]:
            continue
        loop = [other for other in quick if other in onward[node_id] and node_id in onward[other]]
        seen.update(loop)
        problems.append(Problem(node_id, "", f"is on a loop with no delay or wait on it ({', '.join(loop)})"))
    return problems


def _runs_through(node: Mapping) -> bool:
    spec = _spec(node)
    return spec is not None and not spec.blocking


# --- segments (the one check that needs the database) ---------------------------------


def _segment_refs(graph: Any) -> list[tuple[str, str, int]]:
    """(node id, field, segment id) for every segment the graph names by id."""
    refs = []
    for node_id, node in nodes_by_id(graph).items():
        config = node.get("config")
        if not isinstance(config, Mapping):
            continue
        if node.get("kind") == NodeKind.ENTRY and config.get("trigger") == "segment":
            refs.append((node_id, "config.segment_id", config.get("segment_id")))
        elif node.get("kind") == NodeKind.SPLIT and isinstance(config.get("branches"), list):
            refs += _branch_segment_refs(node_id, config["branches"])
    return [(node_id, field, sid) for node_id, field, sid in refs if _is_id(sid)]


def _branch_segment_refs(node_id: str, branches: list) -> list[tuple[str, str, Any]]:
    return [
        (node_id, f"config.branches.{index}.condition.segment_id", branch["condition"].get("segment_id"))
        for index, branch in enumerate(branches)
        if isinstance(branch, Mapping) and isinstance(branch.get("condition"), Mapping)
    ]


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def segment_problems(graph: Any, segment_ids: set[int]) -> list[Problem]:
    """A problem for every segment the graph names that is not among ``segment_ids``."""
    return [
        Problem(node_id, field, f"names segment {sid}, which does not exist")
        for node_id, field, sid in _segment_refs(graph)
        if sid not in segment_ids
    ]


def existing_segment_ids(graph: Any) -> set[int]:
    """Of the segment ids the graph names, those that exist (one query)."""
    wanted = {sid for _, _, sid in _segment_refs(graph)}
    if not wanted:
        return set()
    return set(Segment.objects.filter(pk__in=wanted).values_list("pk", flat=True))


# --- helpers the engine walks with ----------------------------------------------------


def _items(graph: Any, key: str) -> list[Mapping]:
    items = graph.get(key) if isinstance(graph, Mapping) else None
    return [item for item in items if isinstance(item, Mapping)] if isinstance(items, list) else []


def nodes_by_id(graph: Any) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for node in _items(graph, "nodes"):
        if isinstance(node.get("id"), str):
            found.setdefault(node["id"], node)  # type: ignore[arg-type]
    return found


def entry_node(graph: Any) -> dict | None:
    return next((node for node in _items(graph, "nodes") if node.get("kind") == NodeKind.ENTRY), None)  # type: ignore[misc]


def next_node_id(graph: Any, node_id: str, port: str) -> str | None:
    """Where the edge leaving ``port`` of ``node_id`` leads; None ends the journey there."""
    for edge in _items(graph, "edges"):
        if edge.get("from") == node_id and edge.get("port") == port and isinstance(edge.get("to"), str):
            return edge["to"]
    return None


def event_names(graph: Any) -> set[str]:
    """The event names the graph listens for: its entry event and its event waits."""
    names = set()
    for node in _items(graph, "nodes"):
        config = node.get("config")
        if isinstance(config, Mapping) and _listens(node.get("kind"), config) and isinstance(config.get("event"), str):
            names.add(config["event"])
    return names


def _listens(kind: Any, config: Mapping) -> bool:
    if kind == NodeKind.ENTRY:
        return config.get("trigger") == "event"
    return kind == NodeKind.WAIT_FOR_EVENT and config.get("mode") == "event"
