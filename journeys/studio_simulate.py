"""Simulate: run the journey for one customer and a script of events, and show the timeline.

The form (journeys.studio_simulate_form) becomes the simulation API's body, judged by the
same ``parse_simulation``, and ``simulate`` runs the real engine under a virtual clock in a
transaction it rolls back: nothing is stored or sent. The answer is the form again plus the
timeline as an out-of-band swap, and an ``HX-Trigger`` event ``chorus:simulated`` carrying
the path (node ids in order), which the canvas (and static/js/studio.js) highlights.
Invalid input answers 422 with the form re-rendered, each problem at its field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.http import HttpResponse
from django.views.decorators.http import require_http_methods

from customers.models import Customer
from journeys import graph as graphs
from journeys import summaries
from journeys.graph import entry_node, nodes_by_id
from journeys.models import Journey, JourneyVersion
from journeys.nodes import NODE_KINDS
from journeys.studio import HtmxHttpRequest, canvas_url, get_journey, render_studio, wants_fragment
from journeys.studio_preview import find_customers
from journeys.studio_simulate_form import (
    DESCRIBED,
    EXISTING,
    MAX_ROWS,
    EventRow,
    FormProblems,
    SimForm,
    form_errors,
)
from orchestrator.engine.models import StepOutcome
from orchestrator.engine.simulator import (
    SimulationInputError,
    SimulationResult,
    parse_simulation,
    simulate,
)
from orchestrator.roles import Capability, require_capability

TEMPLATE = "journeys/studio/simulate.html"
SIMULATED_EVENT = "chorus:simulated"
GOVERNED = frozenset({StepOutcome.DEFERRED, StepOutcome.SUPPRESSED})
OUTCOME_LABELS = dict(StepOutcome.choices) | {StepOutcome.SENT: "Sent"}


@dataclass(frozen=True)
class TimelineRow:
    at: datetime  # in the customer's zone
    tone: str  # event, send, governor, goal, exit, step: how the row is drawn
    title: str
    outcome: str = ""
    outcome_label: str = ""
    node_id: str = ""
    port: str = ""  # the branch a split took
    detail: str = ""
    why: str = ""  # why this channel (a best-channel send or a fallback)
    channel: str = ""
    status: str = ""
    content: dict = field(default_factory=dict)
    properties: dict = field(default_factory=dict)


def timeline_rows(result: SimulationResult, nodes: dict[str, dict], zone: ZoneInfo) -> list[TimelineRow]:
    return [_row(entry, nodes, zone) for entry in result.timeline]


def _row(entry: dict, nodes: dict[str, dict], zone: ZoneInfo) -> TimelineRow:
    at = entry["at"].astimezone(zone)
    if entry["kind"] == "event":
        return TimelineRow(at, "event", entry["name"], properties=entry.get("properties") or {})
    outcome, node_id, message = entry["outcome"], entry["node_id"], entry.get("message") or {}
    detail, why = entry.get("detail") or "", ""
    # Only a split's branch says more than the outcome does ("timed out" is the outcome).
    port = summaries.port_label(nodes.get(node_id) or {}, entry["port"]) if outcome == StepOutcome.BRANCH and entry.get("port") else ""
    if outcome == StepOutcome.SENT and message:
        # A send's detail is its channel, or "sms · why it was chosen".
        why = detail.partition(" · ")[2]
        detail = ""
    return TimelineRow(
        at, _tone(outcome, message), summaries.node_label(nodes.get(node_id), node_id), outcome,
        OUTCOME_LABELS.get(outcome, outcome), node_id, port, detail, why,
        message.get("channel", ""), message.get("status", ""), message.get("content") or {},
    )


def _tone(outcome: str, message: dict) -> str:
    if outcome in GOVERNED:
        return "governor"
    if outcome == StepOutcome.CONVERTED:
        return "goal"
    if outcome == StepOutcome.EXITED:
        return "exit"
    return "send" if message else "step"


def result_context(result: SimulationResult, version: JourneyVersion) -> dict[str, Any]:
    summary = result.summary
    zone = ZoneInfo(summary["customer"]["timezone"])
    nodes = nodes_by_id(version.graph)
    return {
        "rows": timeline_rows(result, nodes, zone),
        "summary": summary,
        "zone": zone.key,
        "path_labels": [summaries.node_label(nodes.get(n), n) for n in summary["path"]],
    }


# --- the form -------------------------------------------------------------------------------


def version_to_simulate(journey: Journey) -> JourneyVersion | None:
    """What the simulator runs: the draft, else the live version."""
    return journey.versions.filter(published_at__isnull=True).first() or journey.live_version


def initial_form(version: JourneyVersion | None) -> SimForm:
    """An event-entry journey starts its script with its entry event, now."""
    config = (entry_node(version.graph if version else {}) or {}).get("config") or {}
    rows = [EventRow(name=config["event"], at="+0m")] if config.get("trigger") == "event" and config.get("event") else []
    return SimForm(events=tuple(rows or [EventRow()]))


def edited_form(form: SimForm, op: str) -> SimForm | None:
    """Add or remove an event row, or pick a customer; None when ``op`` runs the simulation."""
    rows = list(form.events)
    if op == "add":
        return form.with_rows([*rows, EventRow()]) if len(rows) < MAX_ROWS else form
    if op.startswith("remove:") and op[7:].isdigit():
        index = int(op[7:])
        return form.with_rows(rows[:index] + rows[index + 1:])
    if op.startswith("pick:") and op[5:].isdigit():
        customer = Customer.objects.filter(pk=int(op[5:])).only("external_id").first()
        return replace(form, who=EXISTING, external_id=customer.external_id if customer else "")
    return None


def run(journey: Journey, form: SimForm) -> tuple[SimulationResult | None, dict[str, str], list[graphs.Problem]]:
    """(the result, or the problems by input, or the graph's problems)."""
    try:
        body, rows = form.request()
    except FormProblems as problems:
        return None, problems.fields, []
    try:
        return simulate(journey, parse_simulation(body)), {}, []
    except SimulationInputError as error:
        return None, form_errors(error.fields, rows), []
    except graphs.InvalidGraph as error:
        return None, {}, list(error.problems)


# --- the view -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowView:
    """One event row of the form with its problems, for the template."""

    index: int
    row: EventRow
    name_error: str = ""
    at_error: str = ""
    properties_error: str = ""


def _row_views(form: SimForm, errors: dict[str, str]) -> list[RowView]:
    return [
        RowView(i, row, *(errors.get(f"events-{i}-{part}", "") for part in ("name", "at", "properties")))
        for i, row in enumerate(form.events)
    ]


def _kind_label(node: dict) -> str:
    spec = NODE_KINDS.get(str(node.get("kind")))  # type: ignore[call-overload]  # a StrEnum key matches its value
    return spec.label if spec else str(node.get("kind") or "Unknown")


def _context(journey: Journey, version: JourneyVersion | None, form: SimForm, **extra: Any) -> dict[str, Any]:
    nodes = summaries.graph_order(version.graph) if version else []
    errors = extra.pop("errors", {})
    return {
        "journey": journey, "version": version, "form": form, "errors": errors, "graph_problems": [],
        "event_rows": _row_views(form, errors), "max_rows": MAX_ROWS,
        "who_choices": ((EXISTING, "A customer"), (DESCRIBED, "Describe one")),
        "outline": [(n, _kind_label(n), summaries.node_label(n), summaries.node_summary(n)) for n in nodes],
        "canvas_url": canvas_url(journey, version), **extra,
    }


@require_capability(Capability.EDIT_JOURNEYS)
@require_http_methods(["GET", "HEAD", "POST"])
def simulate_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    journey = get_journey(pk)
    version = version_to_simulate(journey)
    if request.method != "POST":
        if "q" in request.GET and wants_fragment(request):  # the customer picker's search box
            context = {"journey": journey, "matches": find_customers(request.GET["q"]), "q": request.GET["q"]}
            return render_studio(request, TEMPLATE, context, fragment="matches")
        return render_studio(request, TEMPLATE, _context(journey, version, initial_form(version)))
    form = SimForm.from_post(request.POST)
    edited = edited_form(form, request.POST.get("op", ""))
    if edited is not None:
        return render_studio(request, TEMPLATE, _context(journey, version, edited), fragment="form")
    result, errors, problems = run(journey, form)
    if result is None:
        context = _context(journey, version, form, errors=errors, graph_problems=problems, failed=True)
        return render_studio(request, TEMPLATE, context, fragment="answer", status=422)
    context = _context(journey, version, form, **result_context(result, version), simulated=True)
    response = render_studio(request, TEMPLATE, context, fragment="answer")
    response["HX-Trigger"] = json.dumps({SIMULATED_EVENT: {"path": result.summary["path"]}})
    return response
