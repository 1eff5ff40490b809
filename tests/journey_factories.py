"""Building live journeys for engine tests without going through the API."""

from __future__ import annotations

from django.utils import timezone

from journeys.graph import event_names, validate_graph
from journeys.models import Journey, JourneyStatus, JourneyVersion


def linear_graph(*nodes: dict) -> dict:
    """Nodes joined out → in, in the order given (each node's 'out' port)."""
    edges = [{"from": a["id"], "port": "out", "to": b["id"]} for a, b in zip(nodes, nodes[1:], strict=False)]
    return {"nodes": list(nodes), "edges": edges}


def node(node_id: str, kind: str, **config) -> dict:
    return {"id": node_id, "kind": kind, "config": config, "position": {"x": 0, "y": 0}}


def make_live_journey(graph: dict, *, name: str = "Test journey", **fields) -> Journey:
    """A live journey whose version 1 is the (valid) graph."""
    problems = validate_graph(graph)
    assert problems == [], problems
    journey = Journey.objects.create(name=name, status=JourneyStatus.LIVE, **fields)
    version = JourneyVersion.objects.create(journey=journey, number=1, graph=graph, published_at=timezone.now())
    names = set(event_names(graph))
    if journey.goal_event:
        names.add(journey.goal_event)
    journey.live_version = version
    journey.event_names = sorted(names)
    journey.save()
    return journey
