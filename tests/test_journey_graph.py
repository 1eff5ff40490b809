"""Whole-graph checks: every problem at once, each naming its node; and the engine's helpers."""

from __future__ import annotations

import copy

import pytest

from customers.models import Segment
from journeys.graph import (
    MAX_NODES,
    InvalidGraph,
    Problem,
    entry_node,
    event_names,
    existing_segment_ids,
    next_node_id,
    nodes_by_id,
    segment_problems,
    validate_graph,
    validate_graph_or_raise,
)

# The example of docs/journeys.md.
CART_RECOVERY = {
    "nodes": [
        {"id": "entry", "kind": "entry", "label": "Cart abandoned",
         "config": {"trigger": "event", "event": "Cart Abandoned",
                    "filters": [{"property": "cart_value", "op": "gte", "value": 100}]},
         "position": {"x": 40, "y": 40}},
        {"id": "wait45", "kind": "delay", "config": {"mode": "duration", "amount": 45, "unit": "minutes"}},
        {"id": "sms", "kind": "send", "config": {"channel": "sms", "content": {"sms": {
            "body": "{{ event.product_name }} looks great with these: {{ event.accessories | join: ', ' }}"}}}},
        {"id": "bought", "kind": "wait_for_event", "config": {"mode": "event", "event": "Order Completed",
                                                              "timeout": {"until": {"time": "09:00"}}}},
        {"id": "done", "kind": "exit", "config": {}},
    ],
    "edges": [
        {"from": "entry", "port": "out", "to": "wait45"},
        {"from": "wait45", "port": "out", "to": "sms"},
        {"from": "sms", "port": "out", "to": "bought"},
        {"from": "bought", "port": "happened", "to": "done"},
        {"from": "bought", "port": "timed_out", "to": "done"},
    ],
}


def node(node_id: str, kind: str, config=None) -> dict:
    return {"id": node_id, "kind": kind, "config": {} if config is None else config}


def edge(source: str, port: str, target: str) -> dict:
    return {"from": source, "port": port, "to": target}


ENTRY = node("entry", "entry", {"trigger": "api"})
DELAY = {"mode": "duration", "amount": 1, "unit": "days"}
SPLIT = {"branches": [{"port": "vip", "condition": {"segment_id": 3}}]}
SMS = {"channel": "sms", "content": {"sms": {"body": "Hi"}}}


def messages(graph, **kwargs) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in validate_graph(graph, **kwargs)]


# --- valid graphs ---------------------------------------------------------------------


def test_the_cart_recovery_example_is_valid():
    assert validate_graph(CART_RECOVERY) == []
    validate_graph_or_raise(CART_RECOVERY)


def test_a_lone_entry_node_is_valid():
    assert validate_graph({"nodes": [ENTRY], "edges": []}) == []


def test_ports_without_edges_end_the_journey_and_are_fine():
    graph = {"nodes": [ENTRY, node("w", "wait_for_event", {"mode": "engagement", "engagement": "opened", "timeout": {"amount": 1, "unit": "days"}})],
             "edges": [edge("entry", "out", "w")]}
    assert validate_graph(graph) == []


def test_a_loop_through_a_delay_or_wait_is_allowed():
    graph = {"nodes": [ENTRY, node("send", "send", SMS), node("pause", "delay", DELAY)],
             "edges": [edge("entry", "out", "send"), edge("send", "out", "pause"), edge("pause", "out", "send")]}
    assert validate_graph(graph) == []
    graph = {"nodes": [ENTRY, node("pause", "delay", DELAY)], "edges": [edge("entry", "out", "pause"), edge("pause", "out", "pause")]}
    assert validate_graph(graph) == []


def test_split_ports_come_from_its_branches():
    graph = {"nodes": [ENTRY, node("split", "split", SPLIT), node("a", "exit"), node("b", "exit")],
             "edges": [edge("entry", "out", "split"), edge("split", "vip", "a"), edge("split", "else", "b")]}
    assert validate_graph(graph) == []


# --- broken graphs --------------------------------------------------------------------


def test_a_broken_graph_reports_every_problem_at_once_each_naming_its_node():
    graph = {
        "nodes": [
            node("entry", "entry", {"trigger": "event"}),
            node("entry2", "entry", {"trigger": "api"}),
            node("bad id!", "exit"),
            node("sms", "send", {"channel": "sms", "content": {"sms": {"body": "{{ name"}}}),
            node("sms", "exit"),
            node("wait", "wait_for_event", {"mode": "event", "event": "Order Completed"}),
            node("teleport", "teleport"),
            node("orphan", "exit"),
            {"id": "pos", "kind": "exit", "config": {}, "position": {"x": "1"}, "confg": {}},
            "not a node",
        ],
        "edges": [
            edge("entry", "out", "sms"),
            edge("sms", "out", "wait"),
            edge("sms", "out", "pos"),
            edge("wait", "happened", "ghost"),
            edge("wait", "maybe", "pos"),
            edge("wait", "timed_out", "entry"),
            edge("ghost", "out", "sms"),
            {"from": "entry", "port": 3},
        ],
    }
    assert [(p.node_id, p.field, p.message) for p in validate_graph(graph)] == [
        ("entry", "config.event", "is required"),
        (None, "nodes.2.id", "must be 1 to 64 letters, digits, _ or -"),
        ("sms", "config.content.sms.body", "is not a valid template: expected '}}', found end of file (line 1)"),
        ("sms", "id", "is used by more than one node"),
        ("wait", "config.timeout", "is required: a wait needs a timeout, {amount, unit} or {until: {time}}"),
        ("teleport", "kind", "must be one of: entry, delay, send, wait_for_event, split, random_split, update_profile, exit"),
        ("pos", "confg", "is not a known key here"),
        ("pos", "position", "must be {x, y} with numbers"),
        (None, "nodes.9", "must be an object with id, kind and config"),
        ("entry2", "kind", "is a second entry node: a journey has exactly one"),
        ("sms", "ports.out", "has more than one edge: a port leads to one node"),
        ("wait", "ports.happened", "leads to 'ghost', which is not a node"),
        ("wait", "ports.maybe", "is not a port of this wait_for_event node (its ports: happened, timed_out)"),
        ("wait", "ports.timed_out", "leads into the entry node: nothing may lead into it"),
        (None, "edges.6.from", "names 'ghost', which is not a node"),
        (None, "edges.7.port", "must be text"),
        (None, "edges.7.to", "is required"),
        ("teleport", "", "cannot be reached from the entry node"),
        ("orphan", "", "cannot be reached from the entry node"),
        ("pos", "", "cannot be reached from the entry node"),
    ]


def test_problem_paths_name_the_node_or_the_graph():
    assert Problem("sms", "config.channel", "is required").path == "nodes.sms.config.channel"
    assert Problem("orphan", "", "cannot be reached").path == "nodes.orphan"
    assert Problem(None, "edges.0.from", "x").path == "graph.edges.0.from"
    assert Problem(None, "", "x").path == "graph"
    assert Problem("a", "id", "m").to_json() == {"node_id": "a", "field": "id", "path": "nodes.a.id", "message": "m"}


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        (None, [("graph", "must be an object with nodes and edges")]),
        ([], [("graph", "must be an object with nodes and edges")]),
        ({}, [("graph.nodes", "must be a list"), ("graph.edges", "must be a list")]),
        ({"nodes": [], "edges": {}}, [("graph.edges", "must be a list")]),
        ({"nodes": [], "edges": []}, [("graph.nodes", "needs an entry node: it is how people enter the journey")]),
        ({"nodes": [node(f"n{i}", "exit") for i in range(MAX_NODES + 1)], "edges": []},
         [("graph.nodes", f"may hold at most {MAX_NODES} nodes")]),
    ],
)
def test_the_graph_must_be_nodes_and_edges(graph, expected):
    assert messages(graph) == expected


def test_without_an_entry_reachability_is_not_reported_again():
    graph = {"nodes": [node("a", "exit"), node("b", "exit")], "edges": []}
    assert messages(graph) == [("graph.nodes", "needs an entry node: it is how people enter the journey")]


def test_a_node_without_config_is_checked_as_an_empty_config():
    graph = {"nodes": [ENTRY, {"id": "d", "kind": "delay"}, {"id": "x", "kind": "exit"}],
             "edges": [edge("entry", "out", "d"), edge("d", "out", "x")]}
    assert messages(graph) == [("nodes.d.config.mode", "is required")]


def test_a_node_with_an_unknown_kind_has_no_known_ports_so_its_edges_are_not_judged():
    graph = {"nodes": [ENTRY, node("x", "teleport"), node("y", "exit")],
             "edges": [edge("entry", "out", "x"), edge("x", "anywhere", "y")]}
    assert messages(graph) == [
        ("nodes.x.kind", "must be one of: entry, delay, send, wait_for_event, split, random_split, update_profile, exit"),
    ]


def test_exit_nodes_have_no_ports():
    graph = {"nodes": [ENTRY, node("x", "exit")], "edges": [edge("entry", "out", "x"), edge("x", "out", "entry")]}
    assert messages(graph) == [("nodes.x.ports.out", "is not a port of this exit node (it has no ports)")]


def test_a_loop_without_a_delay_or_wait_is_reported_once_naming_its_nodes():
    graph = {
        "nodes": [ENTRY, node("a", "send", SMS), node("b", "split", SPLIT), node("c", "update_profile", {"trait": "t", "value": 1}),
                  node("self", "random_split", {"branches": [{"port": "x", "weight": 1}, {"port": "y", "weight": 1}]})],
        "edges": [edge("entry", "out", "a"), edge("a", "out", "b"), edge("b", "vip", "c"), edge("c", "out", "a"),
                  edge("b", "else", "self"), edge("self", "x", "self")],
    }
    assert messages(graph) == [
        ("nodes.a", "is on a loop with no delay or wait on it (a, b, c)"),
        ("nodes.self", "is on a loop with no delay or wait on it (self)"),
    ]


def test_validate_graph_or_raise_carries_every_problem():
    graph = copy.deepcopy(CART_RECOVERY)
    graph["nodes"][3]["config"].pop("timeout")
    graph["edges"].pop(0)
    with pytest.raises(InvalidGraph) as raised:
        validate_graph_or_raise(graph)
    assert raised.value.problems == [
        Problem("bought", "config.timeout", "is required: a wait needs a timeout, {amount, unit} or {until: {time}}"),
        Problem("wait45", "", "cannot be reached from the entry node"),
        Problem("sms", "", "cannot be reached from the entry node"),
        Problem("bought", "", "cannot be reached from the entry node"),
        Problem("done", "", "cannot be reached from the entry node"),
    ]
    assert str(raised.value).startswith("nodes.bought.config.timeout: is required")


def test_validating_does_not_change_the_graph():
    graph = copy.deepcopy(CART_RECOVERY)
    validate_graph(graph, segment_ids=set())
    assert graph == CART_RECOVERY


# --- segments -------------------------------------------------------------------------

SEGMENT_GRAPH = {
    "nodes": [node("entry", "entry", {"trigger": "segment", "segment_id": 3}),
              node("split", "split", {"branches": [
                  {"port": "vip", "condition": {"segment_id": 3}},
                  {"port": "old", "condition": {"segment_id": 99}},
                  {"port": "new", "condition": {"match": "all", "conditions": []}}]})],
    "edges": [edge("entry", "out", "split")],
}


def test_segments_are_checked_only_when_the_existing_ids_are_given():
    assert validate_graph(SEGMENT_GRAPH) == []
    assert messages(SEGMENT_GRAPH, segment_ids={3}) == [
        ("nodes.split.config.branches.1.condition.segment_id", "names segment 99, which does not exist"),
    ]
    assert segment_problems(SEGMENT_GRAPH, set()) == [
        Problem("entry", "config.segment_id", "names segment 3, which does not exist"),
        Problem("split", "config.branches.0.condition.segment_id", "names segment 3, which does not exist"),
        Problem("split", "config.branches.1.condition.segment_id", "names segment 99, which does not exist"),
    ]


@pytest.mark.django_db
def test_existing_segment_ids_reads_only_the_segments_the_graph_names(django_assert_num_queries):
    named = Segment.objects.create(name="VIP", definition={"match": "all", "conditions": []})
    Segment.objects.create(name="Unrelated", definition={"match": "all", "conditions": []})
    # Ids no segment has (the sequence is not reset between tests: 3 or 99 may be taken).
    gone, older = named.pk + 1000, named.pk + 2000
    graph = copy.deepcopy(SEGMENT_GRAPH)
    graph["nodes"][0]["config"]["segment_id"] = named.pk
    graph["nodes"][1]["config"]["branches"][0]["condition"]["segment_id"] = gone
    graph["nodes"][1]["config"]["branches"][1]["condition"]["segment_id"] = older
    with django_assert_num_queries(1):
        found = existing_segment_ids(graph)
    assert found == {named.pk}
    assert messages(graph, segment_ids=found) == [
        ("nodes.split.config.branches.0.condition.segment_id", f"names segment {gone}, which does not exist"),
        ("nodes.split.config.branches.1.condition.segment_id", f"names segment {older}, which does not exist"),
    ]


@pytest.mark.django_db
def test_existing_segment_ids_asks_nothing_of_a_graph_without_segments(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert existing_segment_ids(CART_RECOVERY) == set()


# --- the engine's helpers -------------------------------------------------------------


def test_nodes_by_id_and_entry_node():
    by_id = nodes_by_id(CART_RECOVERY)
    assert list(by_id) == ["entry", "wait45", "sms", "bought", "done"]
    assert by_id["sms"]["kind"] == "send"
    assert entry_node(CART_RECOVERY) is CART_RECOVERY["nodes"][0]
    assert entry_node({"nodes": [node("x", "exit")], "edges": []}) is None
    assert nodes_by_id({}) == {} and entry_node(None) is None


def test_next_node_id_follows_the_edge_from_a_port():
    assert next_node_id(CART_RECOVERY, "entry", "out") == "wait45"
    assert next_node_id(CART_RECOVERY, "bought", "timed_out") == "done"
    assert next_node_id(CART_RECOVERY, "done", "out") is None
    assert next_node_id(CART_RECOVERY, "bought", "nowhere") is None


def test_event_names_are_the_entry_event_and_the_event_waits():
    assert event_names(CART_RECOVERY) == {"Cart Abandoned", "Order Completed"}
    assert event_names(SEGMENT_GRAPH) == set()
    graph = {"nodes": [ENTRY, node("w", "wait_for_event", {"mode": "engagement", "engagement": "opened", "event": "Ignored"})]}
    assert event_names(graph) == set()
