"""Priority arbitration: the sends of other journeys due for the same customer now.

Within one engine batch, a customer's enrollments run highest priority first, so the
higher priority takes the last slot under a cap. Across batches and workers that order
alone does not hold: a low-priority send claimed by one worker could take the slot while
a higher-priority send due at the same moment sits in another worker's batch, or in the
backlog. So the governor, holding the customer's row lock, also reads these *rivals*:
enrollments of the customer, not in the deciding batch, due now in a live journey and
standing at a send node (or at a node that leads straight to one, such as a fresh
enrollment's entry). A send yields (a short deferral) when the slot it would take is
needed by a higher-priority rival; the rival takes it when its own worker reaches it, and
the yielding send is judged again after that. Deferred sends released at the same moment
(quiet hours ending, a cap's window rolling on) therefore go out in priority order too.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from journeys.graph import next_node_id, nodes_by_id
from journeys.models import JourneyStatus, JourneyVersion
from journeys.nodes import NodeKind

# Sends due within this much of the deciding moment count as "at the same moment": an
# event that fans out to many journeys enrols them in separate transactions a few
# milliseconds apart.
SAME_MOMENT = dt.timedelta(seconds=2)
# How long a yielding send waits before it is judged again: long enough for the rival's
# worker (due now, so claimed fresh-first) to have sent it.
YIELD_FOR = dt.timedelta(seconds=5)

_MAX_CACHED_VERSIONS = 2000
# Published versions are immutable: their send nodes are read once per process.
_send_nodes_cache: dict[int, dict[str, str]] = {}


@dataclass(frozen=True)
class Rival:
    enrollment_id: int
    journey_id: int
    journey_name: str
    priority: int
    channel: str
    category: str
    tags: frozenset[str]


def due_rivals(customer_ids: list[int], *, now: dt.datetime, exclude: Iterable[int]) -> dict[int, list[Rival]]:
    """Per customer, the sends due now in other batches, highest priority first."""
    from orchestrator.engine.models import (  # the engine imports the governor
        Enrollment,
        EnrollmentState,
        Phase,
    )

    rows = list(
        Enrollment.objects.filter(
            customer_id__in=customer_ids, due_at__lte=now + SAME_MOMENT, state=EnrollmentState.ACTIVE,
            phase=Phase.ARRIVE, holdout=False, journey__status=JourneyStatus.LIVE,
        )
        .exclude(pk__in=list(exclude))
        .values_list(
            "pk", "customer_id", "version_id", "current_node", "journey_id",
            "journey__name", "journey__priority", "journey__category", "journey__tags",
        )
    )
    if not rows:
        return {}
    send_nodes = _send_nodes({row[2] for row in rows})
    rivals: dict[int, list[Rival]] = defaultdict(list)
    for pk, customer_id, version_id, node_id, journey_id, name, priority, category, tags in rows:
        channel = send_nodes.get(version_id, {}).get(node_id)
        if channel:
            rivals[customer_id].append(Rival(pk, journey_id, name, priority, channel, category, frozenset(tags or ())))
    for found in rivals.values():
        found.sort(key=lambda r: (-r.priority, r.enrollment_id))
    return dict(rivals)


def _send_nodes(version_ids: set[int]) -> dict[int, dict[str, str]]:
    """version id -> {node id: the channel of the send it reaches at once}."""
    found = {pk: _send_nodes_cache[pk] for pk in version_ids if pk in _send_nodes_cache}
    missing = version_ids - found.keys()
    if not missing:
        return found
    if len(_send_nodes_cache) > _MAX_CACHED_VERSIONS:
        _send_nodes_cache.clear()
    for pk, graph, published_at in JourneyVersion.objects.filter(pk__in=missing).values_list("pk", "graph", "published_at"):
        found[pk] = _instant_sends(graph or {})
        if published_at is not None:  # a draft (the simulator's) may still change: not cached
            _send_nodes_cache[pk] = found[pk]
    return found


# Nodes that take no time and have one way out: an enrollment standing at one goes on at
# once. A split is not followed (which branch is taken depends on the customer).
_INSTANT = frozenset({NodeKind.ENTRY, NodeKind.UPDATE_PROFILE})


def _instant_sends(graph: dict) -> dict[str, str]:
    """{node id: channel} for every node from which a send is reached with no time passing
    (a send node itself, an entry that leads straight to one): a fresh enrollment stands at
    its entry node, yet is about to send."""
    nodes = nodes_by_id(graph)
    sends: dict[str, str] = {}
    for start in nodes:
        current, seen = start, set()
        while current in nodes and current not in seen:
            seen.add(current)
            node = nodes[current]
            if node.get("kind") == NodeKind.SEND:
                sends[start] = (node.get("config") or {}).get("channel", "")
                break
            if node.get("kind") not in _INSTANT:
                break
            current = next_node_id(graph, current, "out")
    return sends
