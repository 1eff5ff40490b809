"""Live statistics on the canvas: every node's entered, waiting now, sent and converted.

The canvas page holds one polling element (templates/journeys/studio/_canvas_extras.html)
that asks this view every 5 seconds; the answer is only out-of-band swaps, one
``#node-stats-<node id>`` per node of the shown version, so the canvas's own markup (and
any node being dragged) is never replaced. The numbers are journeys.views.node_stats: two
GROUP BYs over the step log and the people inside, whatever the journey's size.

A draft shows the numbers of the live version for the nodes it shares with it (the same
step, edited). A journey that never ran answers zeros once, with HTTP 286, which tells
htmx to stop polling: nothing can change until it is published. So does a stopped or
archived journey, whose numbers are final.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpResponse
from django.views.decorators.http import require_http_methods

from journeys import summaries
from journeys.models import Journey, JourneyStatus, JourneyVersion
from journeys.studio import HtmxHttpRequest, get_journey, render_studio, studio_version
from journeys.views import NodeStats, node_stats
from orchestrator.roles import Capability, require_capability

STOP_POLLING = 286  # htmx cancels a polling trigger on this status
# Numbers can still change while people may be inside: live, or paused (they resume).
RUNNING = frozenset({JourneyStatus.LIVE, JourneyStatus.PAUSED})


@dataclass(frozen=True)
class NodeFigures:
    node_id: str
    kind: str
    entered: int
    waiting: int
    sent: int
    converted: int

    @property
    def sends(self) -> bool:
        return self.kind == "send"


def counted_version(journey: Journey, shown: JourneyVersion | None) -> JourneyVersion | None:
    """Whose numbers the shown version displays: its own once published, else the live one's."""
    if shown is not None and shown.is_published:
        return shown
    return journey.live_version if journey.live_version_id else None


def node_figures(shown: JourneyVersion | None, counted: JourneyVersion | None) -> list[NodeFigures]:
    stats = node_stats(counted) if counted is not None else {}
    figures = []
    for node in summaries.graph_order(shown.graph if shown else {}):
        s = stats.get(node["id"], NodeStats())
        figures.append(NodeFigures(node["id"], str(node.get("kind", "")), s.entered, s.here_now, s.sent, s.converted))
    return figures


def keeps_polling(journey: Journey, counted: JourneyVersion | None) -> bool:
    return counted is not None and journey.status in RUNNING


@require_capability(Capability.VIEW_JOURNEYS)
@require_http_methods(["GET", "HEAD"])
def node_stats_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    journey = get_journey(pk)
    shown = studio_version(journey, request.GET.get("version"))
    counted = counted_version(journey, shown)
    context = {"figures": node_figures(shown, counted), "counted": counted, "shown": shown}
    status = 200 if keeps_polling(journey, counted) else STOP_POLLING
    return render_studio(request, "journeys/studio/_stats.html", context, fragment=None, status=status)
