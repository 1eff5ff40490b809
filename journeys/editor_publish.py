"""Check and publish from the canvas, and pause, resume, stop and archive.

Publishing runs every check first (the graph, segments, the content rules) and answers
every problem pinned on its node. Publishing an edit of a journey people are already in
first says what happens to them (they finish on the version they entered, counted per
version) and asks to confirm. Status changes go through orchestrator.engine.lifecycle, as
the API's do, so stopping exits everyone inside.
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_POST

from journeys.editor_history import StaleRevision, check_revision
from journeys.editor_views import BadEdit, alert, base_revision, out_of_band_board
from journeys.graph import InvalidGraph
from journeys.models import Journey, JourneyStatus
from journeys.services import JourneyInputError, JourneyStateError, _publish_problems
from journeys.views import HtmxHttpRequest
from orchestrator.engine import lifecycle
from orchestrator.engine.models import Enrollment, EnrollmentState
from orchestrator.roles import Capability, require_capability

PANEL = "journeys/editor/panel.html"


def in_progress_by_version(journey: Journey) -> list[tuple[int, int]]:
    """(version number, enrollments still inside), newest version first: one GROUP BY."""
    rows = (
        Enrollment.objects.filter(journey=journey).exclude(state=EnrollmentState.EXITED)
        .order_by().values_list("version__number").annotate(n=Count("id"))
    )
    return sorted(rows, reverse=True)


def problem_rows(graph: dict, problems) -> list[tuple[str, str, str, str]]:
    """(node id, the node's name on the canvas, the field without "config.", message): a
    marketer reads "SMS reminder", not ``sms config.content.sms.body``."""
    names = {node.get("id"): node.get("label") or node.get("id") for node in graph.get("nodes", []) if isinstance(node, dict)}
    return [(p.node_id or "", names.get(p.node_id, p.node_id or ""), p.field.removeprefix("config."), p.message)
            for p in problems]


def _panel(request: HtmxHttpRequest, journey: Journey, context: dict, problems=()) -> HttpResponse:
    if problems and context.get("draft") is not None:
        context = {**context, "problem_rows": problem_rows(context["draft"].graph, problems)}
    html = render_to_string(f"{PANEL}#publish-panel", {"journey": journey, **context}, request)
    return HttpResponse(html + out_of_band_board(request, journey, problems=problems))


@require_capability(Capability.EDIT_JOURNEYS)
@require_POST
def publish(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    journey = get_object_or_404(Journey.objects.select_related("live_version"), pk=pk)
    try:
        check_revision(journey, base_revision(request))
    except StaleRevision as stale:
        return alert(request, str(stale), 409)
    except BadEdit as bad:
        return alert(request, str(bad), 422)
    draft = journey.versions.filter(published_at__isnull=True).first()
    if draft is None:
        return alert(request, "There is nothing to publish: the canvas shows the live version, unchanged.", 422)
    problems = _publish_problems(journey, draft.graph)
    if problems:
        return _panel(request, journey, {"problems": problems, "draft": draft}, problems)
    inside = in_progress_by_version(journey)
    if journey.live_version_id and request.POST.get("confirm") != "yes":
        context = {"confirm": True, "draft": draft, "inside": inside, "inside_total": sum(n for _, n in inside)}
        return _panel(request, journey, context)
    try:
        version = lifecycle.publish(journey, request.user)
    except InvalidGraph as invalid:  # changed since the check above
        return _panel(request, journey, {"problems": invalid.problems, "draft": draft}, invalid.problems)
    except JourneyStateError as refused:
        return alert(request, str(refused), 409)
    messages.success(request, _published_note(journey, version.number))
    response = HttpResponse(status=204)
    response["HX-Redirect"] = reverse("journeys:edit", args=[journey.pk])
    return response


def _published_note(journey: Journey, number: int) -> str:
    if journey.status == JourneyStatus.PAUSED:
        return f"Version {number} is published; the journey stays paused until you resume it."
    return f"Version {number} is published and live: new entrants enter it."


@require_capability(Capability.EDIT_JOURNEYS)
@require_POST
def set_status(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    journey = get_object_or_404(Journey, pk=pk)
    action = request.POST.get("action", "")
    try:
        lifecycle.set_status(journey, action, request.user)
    except (JourneyStateError, JourneyInputError) as refused:
        return alert(request, str(refused), 409)
    target = request.POST.get("next") or reverse("journeys:edit", args=[journey.pk])
    if not target.startswith("/") or target.startswith("//"):
        target = reverse("journeys:edit", args=[journey.pk])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return redirect(target)

