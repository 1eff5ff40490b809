"""The journey studio's shared parts: which version a studio panel works on, and how a
panel answers (a fragment for the canvas's side panel, a page on its own).

The studio is what sits beside the canvas: preview (studio_preview), simulate
(studio_simulate), live statistics (studio_stats) and version history (studio_versions).
Each view serves its standalone page and, to htmx, the named partial ``panel`` of the
same template, which the canvas's toolbar loads into ``#side-panel``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import patch_vary_headers
from django_htmx.middleware import HtmxDetails

from journeys.models import Journey, JourneyVersion

PANEL = "panel"  # the partial every studio template names for the side panel


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def wants_fragment(request: HtmxHttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


def render_studio(
    request: HtmxHttpRequest, template: str, context: dict[str, Any], *, fragment: str | None = PANEL, status: int = 200
) -> HttpResponse:
    """The named fragment to htmx, the whole page otherwise (and on history misses)."""
    if fragment and wants_fragment(request):
        template = f"{template}#{fragment}"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response


def studio_version(journey: Journey, number: str | None) -> JourneyVersion | None:
    """The version asked for (``?version=N``), else the draft being edited, else the live one."""
    if number:
        if not number.isdigit():
            raise Http404("No such version.")
        return get_object_or_404(JourneyVersion, journey=journey, number=int(number))
    draft = journey.versions.filter(published_at__isnull=True).first()
    return draft or journey.live_version


def get_journey(pk: int) -> Journey:
    return get_object_or_404(Journey.objects.select_related("live_version"), pk=pk)


def canvas_url(journey: Journey, version: JourneyVersion | None = None) -> str:
    """The canvas editor (read-only for a published version), or the journey's page while
    the editor is not installed: the studio links there either way."""
    query = f"?{urlencode({'version': version.number})}" if version is not None else ""
    try:
        return reverse("journeys:edit", args=[journey.pk]) + query
    except NoReverseMatch:
        return reverse("journeys:detail", args=[journey.pk]) + query
