"""The journeys list's actions: create a journey (then open its canvas) and duplicate one.
Archiving goes through editor_publish.set_status like every status change."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from journeys.editor_services import do_duplicate_journey
from journeys.models import Journey
from journeys.services import JourneyInput, JourneyInputError, do_create_journey
from journeys.views import HtmxHttpRequest
from orchestrator.roles import Capability, require_capability


def _open_canvas(request: HtmxHttpRequest, journey: Journey) -> HttpResponse:
    url = reverse("journeys:edit", args=[journey.pk])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@require_capability(Capability.EDIT_JOURNEYS)
@require_POST
def create_journey(request: HtmxHttpRequest) -> HttpResponse:
    """A new draft with its entry node, then its canvas; 422 with the form when the name is bad."""
    name = request.POST.get("name", "")
    try:
        journey = do_create_journey(JourneyInput(name=name), request.user)
    except JourneyInputError as invalid:
        errors = [reason for field, reason in invalid.fields if field == "name"] or [str(invalid)]
        return render(request, "journeys/list.html#create-form", {"name": name, "create_errors": errors}, status=422)
    return _open_canvas(request, journey)


@require_capability(Capability.EDIT_JOURNEYS)
@require_POST
def duplicate_journey(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    journey = do_duplicate_journey(get_object_or_404(Journey, pk=pk), request.user)
    return _open_canvas(request, journey)
