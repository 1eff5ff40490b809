"""Version history: the published versions with who and when, the draft, each viewable
read-only on the canvas, and "start a new draft from this version".

Starting a draft from an old version writes its graph into the draft through
``do_update_journey`` (the one service that edits a draft), so a restore is one more edit
of the draft: the journey records who made it, and the canvas's revision history sees it
like any other. A draft that differs from the live version is not replaced without a
confirmation. Marketers may restore; everyone who may see journeys sees the history.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_http_methods

from journeys.models import Journey, JourneyVersion
from journeys.services import JourneyInput, JourneyStateError, do_update_journey
from journeys.studio import HtmxHttpRequest, canvas_url, get_journey, render_studio
from orchestrator.roles import Capability, has_capability, require_capability

TEMPLATE = "journeys/studio/versions.html"


@dataclass(frozen=True)
class VersionRow:
    version: JourneyVersion
    is_live: bool
    who: str  # who published it; for the draft, who started it
    when: datetime
    view_url: str
    restorable: bool  # published, and a draft from it would change something


def _name(user) -> str:
    return (user.get_full_name() or user.get_username()) if user else ""


def version_rows(journey: Journey) -> list[VersionRow]:
    versions = list(journey.versions.select_related("published_by", "created_by").defer("graph").order_by("-number"))
    has_draft = any(not v.is_published for v in versions)
    return [
        VersionRow(
            v, v.pk == journey.live_version_id,
            _name(v.published_by if v.is_published else v.created_by),
            # The draft opens in the editor; a published version read-only.
            v.published_at if v.is_published else v.updated_at, canvas_url(journey, v if v.is_published else None),
            # With no draft, the live version's graph is already what a new draft would hold.
            v.is_published and (has_draft or v.pk != journey.live_version_id),
        )
        for v in versions
    ]


def draft_has_changes(journey: Journey) -> JourneyVersion | None:
    """The draft, when it holds edits not in the live version (a restore would lose them)."""
    draft = journey.versions.filter(published_at__isnull=True).only("id", "number", "graph").first()
    if draft is None:
        return None
    live = journey.live_version
    return draft if live is None or live.graph != draft.graph else None


def _context(request: HtmxHttpRequest, journey: Journey, **extra) -> dict:
    return {
        "journey": journey, "rows": version_rows(journey), "shown": request.GET.get("version", ""),
        "may_restore": has_capability(request.user, Capability.EDIT_JOURNEYS),
        "canvas_url": canvas_url(journey), **extra,
    }


@require_capability(Capability.VIEW_JOURNEYS)
@require_http_methods(["GET", "HEAD"])
def versions(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    journey = get_journey(pk)
    return render_studio(request, TEMPLATE, _context(request, journey))


@require_capability(Capability.EDIT_JOURNEYS)
@require_http_methods(["POST"])
def restore_version(request: HtmxHttpRequest, pk: int, number: int) -> HttpResponse:
    journey = get_journey(pk)
    source = get_object_or_404(JourneyVersion, journey=journey, number=number)
    if not source.is_published:
        raise Http404("Only a published version can start a draft.")
    draft = draft_has_changes(journey)
    if draft is not None and request.POST.get("confirm") != "yes":
        return render_studio(request, TEMPLATE, _context(request, journey, confirm=source, draft=draft))
    try:
        do_update_journey(journey, JourneyInput(graph=copy.deepcopy(source.graph)), request.user,
                          label=f"Started from version {source.number}")
    except JourneyStateError as error:
        return render_studio(request, TEMPLATE, _context(request, journey, error=str(error)), status=422)
    messages.success(request, _restored_message(journey, source))
    target = canvas_url(journey)
    if request.htmx:
        # The canvas must redraw the whole graph: a full page load, not a swap.
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return redirect(target)


def _restored_message(journey: Journey, source: JourneyVersion) -> str:
    draft = journey.versions.filter(published_at__isnull=True).only("number").first()
    if draft is None:  # the live version's own graph, and no draft: nothing to write
        return f"Version {source.number} is what the live version runs: there is nothing to change."
    return f"Draft version {draft.number} now holds the steps of version {source.number}."
