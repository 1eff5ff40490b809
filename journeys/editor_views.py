"""The canvas page and its edits: every change is a POST the server checks and stores,
answered with the re-rendered board (``editor/canvas.html#board``).

Each POST carries ``revision``, the graph revision the page last saw (static/js/canvas.js
adds it); a stale one is answered 409 with who changed the journey and when, into the
page's alert region, and nothing changes. Reading needs VIEW_JOURNEYS; every edit needs
EDIT_JOURNEYS (403 otherwise). The node panel is journeys.editor_panel; publishing and
status changes are journeys.editor_publish.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_http_methods, require_POST

from journeys import editor_edits as edits
from journeys.editor_board import board_context, palette
from journeys.editor_history import StaleRevision
from journeys.editor_layout import auto_layout, needs_layout
from journeys.editor_services import do_edit_journey_graph, do_undo_graph_edit, editable_version
from journeys.models import Journey, JourneyStatus, JourneyVersion
from journeys.nodes import NODE_KINDS, NodeKind
from journeys.services import JourneyAction, JourneyStateError
from journeys.views import HtmxHttpRequest
from orchestrator.roles import Capability, has_capability, require_capability

TEMPLATE = "journeys/editor/canvas.html"
STATUS_ACTIONS = {
    JourneyStatus.LIVE: [JourneyAction.PAUSE, JourneyAction.STOP],
    JourneyStatus.PAUSED: [JourneyAction.RESUME, JourneyAction.STOP],
    JourneyStatus.STOPPED: [JourneyAction.ARCHIVE],
    JourneyStatus.DRAFT: [JourneyAction.ARCHIVE],
}
CONFIRM = {
    JourneyAction.PAUSE: "Pause this journey? Nobody new enters and people inside wait where they are until it resumes.",
    JourneyAction.RESUME: "Resume this journey? People inside move on and new people enter again.",
    JourneyAction.STOP: "Stop this journey for good? Everyone still inside leaves it now. This cannot be undone.",
    JourneyAction.ARCHIVE: "Archive this journey? It can no longer be edited or published.",
}


def status_actions(journey: Journey) -> list[tuple[str, str, str]]:
    """(action, button label, confirmation) the journey's status allows."""
    return [(a.value, a.value.capitalize(), CONFIRM[a]) for a in STATUS_ACTIONS.get(journey.status, [])]


class BadEdit(ValueError):
    """A request the editor cannot act on; answered 422 with the message."""


def base_revision(request: HtmxHttpRequest) -> int:
    raw = request.POST.get("revision", "")
    if not raw.isdigit():
        raise BadEdit("revision is required: reload the page and try again.")
    return int(raw)


def alert(request: HtmxHttpRequest, message: str, status: int) -> HttpResponse:
    """A message for the page's alert region, whatever element asked."""
    response = render(request, f"{TEMPLATE}#alert", {"message": message}, status=status)
    response["HX-Retarget"] = "#editor-alert"
    response["HX-Reswap"] = "innerHTML"
    return response


def shown(journey: Journey, number: str | None) -> tuple[JourneyVersion | None, bool]:
    """The version the page shows and whether it is an older one (then read-only)."""
    if number:
        if not number.isdigit():
            raise Http404("No such version.")
        version = get_object_or_404(JourneyVersion, journey=journey, number=int(number))
        return version, version != editable_version(journey)
    return editable_version(journey), False


def page_context(request: HtmxHttpRequest, journey: Journey, **extra: Any) -> dict[str, Any]:
    version, old = shown(journey, request.GET.get("version"))
    if version is not None and needs_layout(version.graph):  # shown tidy, never written here
        version.graph = auto_layout(version.graph)
    can_edit = has_capability(request.user, Capability.EDIT_JOURNEYS)
    read_only = old or not can_edit or journey.status == JourneyStatus.ARCHIVED
    return {
        "journey": journey, "version": version, "read_only": read_only, "can_edit": can_edit,
        "version_label": version_label(journey, version, read_only),
        "palette": palette(), **board_context(journey, version, read_only=read_only, **extra),
    }


def version_label(journey: Journey, version: JourneyVersion | None, read_only: bool) -> str:
    """E.g. "draft v3" or "v2, published and live · read-only"."""
    if version is None:
        return ""
    if not version.is_published:
        label = f"draft v{version.number}"
    else:
        label = f"v{version.number}, published" + (" and live" if version.pk == journey.live_version_id else "")
    return label + (" · read-only" if read_only else "")


def board(request: HtmxHttpRequest, journey: Journey, **extra: Any) -> HttpResponse:
    journey.refresh_from_db()
    return render(request, f"{TEMPLATE}#board", page_context(request, journey, **extra))


def out_of_band_board(request: HtmxHttpRequest, journey: Journey, **extra: Any) -> str:
    """The board, to ride along another fragment (hx-swap-oob) when an edit changed it."""
    journey.refresh_from_db()
    context = page_context(request, journey, **extra) | {"oob": True}
    return render_to_string(f"{TEMPLATE}#board", context, request)


@require_capability(Capability.VIEW_JOURNEYS)
@require_http_methods(["GET", "HEAD"])
def journey_canvas(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    journey = get_object_or_404(Journey.objects.select_related("live_version", "updated_by"), pk=pk)
    _lay_out_once(request, journey)
    context = page_context(request, journey) | {"status_actions": status_actions(journey)}
    wants_board = request.htmx and request.htmx.target == "canvas-board" and not request.htmx.history_restore_request
    response = render(request, f"{TEMPLATE}#board" if wants_board else TEMPLATE, context)
    response["Vary"] = "HX-Request, HX-Target"
    return response


def _lay_out_once(request: HtmxHttpRequest, journey: Journey) -> None:
    """A draft whose nodes arrived without positions (API create, import) is laid out
    tidily the first time an editor opens it, and stored, so the canvas and every later
    edit start from the same places. Published versions are only shown laid out."""
    version = editable_version(journey)
    if (version is None or version.is_published or not needs_layout(version.graph) or request.GET.get("version")
            or journey.status == JourneyStatus.ARCHIVED or not has_capability(request.user, Capability.EDIT_JOURNEYS)):
        return
    try:
        do_edit_journey_graph(journey, None, auto_layout, request.user, "Laid out the new graph")
    except JourneyStateError:
        return  # archived meanwhile: shown laid out, not stored
    journey.refresh_from_db()


def edit_view(make_change: Callable[[HtmxHttpRequest, str | None], tuple[edits.Change, str]]) -> Callable:
    """An editing endpoint: check rights and revision, apply the change, answer the board."""

    @require_capability(Capability.EDIT_JOURNEYS)
    @require_POST
    def view(request: HtmxHttpRequest, pk: int, node_id: str | None = None) -> HttpResponse:
        journey = get_object_or_404(Journey, pk=pk)
        try:
            change, label = make_change(request, node_id)
            do_edit_journey_graph(journey, base_revision(request), change, request.user, label)
        except StaleRevision as stale:
            return alert(request, str(stale), 409)
        except JourneyStateError as refused:
            return alert(request, str(refused), 409)
        except (edits.EditError, BadEdit) as bad:
            return alert(request, str(getattr(bad, "message", bad)), 422)
        return board(request, journey)

    view.__name__ = view.__qualname__ = make_change.__name__
    return view


def _position(request: HtmxHttpRequest) -> dict[str, int]:
    return edits.position(request.POST.get("x"), request.POST.get("y"))


def _kind_label(kind: str) -> str:
    return NODE_KINDS[NodeKind(kind)].label if kind in NODE_KINDS else kind


@edit_view
def add_node(request: HtmxHttpRequest, node_id: str | None):
    kind, at = request.POST.get("kind", ""), _position(request)
    return (lambda graph: edits.add_node(graph, kind, at)[0]), f"Added a {_kind_label(kind).lower()} node"


@edit_view
def move_node(request: HtmxHttpRequest, node_id: str | None):
    at = _position(request)
    return (lambda graph: edits.move_node(graph, node_id, at)), f"Moved {node_id}"


@edit_view
def delete_node(request: HtmxHttpRequest, node_id: str | None):
    return (lambda graph: edits.delete_node(graph, node_id)), f"Deleted {node_id}"


@edit_view
def connect(request: HtmxHttpRequest, node_id: str | None):
    source, port, target = (request.POST.get(key, "") for key in ("from", "port", "to"))
    return (lambda graph: edits.connect(graph, source, port, target)), f"Connected {source} {port} to {target}"


@edit_view
def delete_edge(request: HtmxHttpRequest, node_id: str | None):
    source, port = request.POST.get("from", ""), request.POST.get("port", "")
    return (lambda graph: edits.delete_edge(graph, source, port)), f"Removed the edge from {source} {port}"


@edit_view
def layout(request: HtmxHttpRequest, node_id: str | None):
    return auto_layout, "Tidied the layout"


def _history_view(redo: bool) -> Callable:
    @require_capability(Capability.EDIT_JOURNEYS)
    @require_POST
    def view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
        journey = get_object_or_404(Journey, pk=pk)
        try:
            done = do_undo_graph_edit(journey, base_revision(request), request.user, redo=redo)
        except (StaleRevision, JourneyStateError) as refused:
            return alert(request, str(refused), 409)
        except BadEdit as bad:
            return alert(request, str(bad), 422)
        if done is None:
            return alert(request, f"Nothing to {'redo' if redo else 'undo'}.", 422)
        return board(request, journey)

    return view


undo = _history_view(redo=False)
redo = _history_view(redo=True)
