"""The node panel: a node's configuration as a form beside the canvas, and its content
checked live against the channel rules.

GET shows the stored config; a POST with ``_refresh`` re-renders the form from what was
typed (a mode changed), writing nothing; any other POST saves, or answers 422 with the
form and every problem at its field, writing nothing. A save answers the form and the
board (out of band), since the node's summary and ports may have changed.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from channels_app.content_rules import check_content, sms_segments_as_sent
from channels_app.content_rules_loading import load_rules
from channels_app.templating import CHANNEL_FIELDS
from customers.models import Segment
from journeys import editor_edits as edits
from journeys.content import app_present_nodes
from journeys.editor_conditions import read_split
from journeys.editor_fields import build_form
from journeys.editor_history import StaleRevision
from journeys.editor_services import do_edit_journey_graph, editable_version
from journeys.editor_views import BadEdit, alert, base_revision, out_of_band_board
from journeys.graph import nodes_by_id
from journeys.models import Journey, JourneyStatus
from journeys.node_forms import WEEKDAY_NAMES, parse_config, unflatten, validate_config
from journeys.nodes import NODE_KINDS, NodeKind
from journeys.services import JourneyStateError
from journeys.views import HtmxHttpRequest
from orchestrator.roles import Capability, has_capability, require_capability

PANEL = "journeys/editor/panel.html"


def _node(journey: Journey, node_id: str) -> dict:
    version = editable_version(journey)
    node = nodes_by_id(version.graph if version else {}).get(node_id)
    if node is None or node.get("kind") not in NODE_KINDS:
        raise edits.EditError("node", f"there is no node {node_id!r} in this journey")
    return node


def _segments() -> list[tuple[str, str]]:
    return [(str(pk), name) for pk, name in Segment.objects.order_by("name").values_list("pk", "name")]


def _render(request: HtmxHttpRequest, journey: Journey, node: dict, form, *, status: int = 200, saved: bool = False,
            with_board: bool = False) -> HttpResponse:
    can_edit = has_capability(request.user, Capability.EDIT_JOURNEYS)
    context = {
        "journey": journey, "node": node, "form": form, "saved": saved,
        "kind_label": NODE_KINDS[NodeKind(node["kind"])].label, "weekdays": WEEKDAY_NAMES,
        "read_only": not can_edit or journey.status == JourneyStatus.ARCHIVED,
        "form_url": reverse("journeys:edit-node", args=[journey.pk, node["id"]]),
        "check_url": reverse("journeys:edit-check", args=[journey.pk, node["id"]]),
        "delete_url": reverse("journeys:edit-delete-node", args=[journey.pk, node["id"]]),
    }
    html = render_to_string(f"{PANEL}#node-panel", context, request)
    if with_board:
        html += out_of_band_board(request, journey)
    return HttpResponse(html, status=status)


@require_capability(Capability.VIEW_JOURNEYS)
@require_http_methods(["GET", "HEAD", "POST"])
def node_panel(request: HtmxHttpRequest, pk: int, node_id: str) -> HttpResponse:
    journey = get_object_or_404(Journey, pk=pk)
    try:
        node = _node(journey, node_id)
    except edits.EditError as missing:
        return alert(request, missing.message, 404)
    if request.method == "POST":
        if not has_capability(request.user, Capability.EDIT_JOURNEYS):
            return HttpResponse("Your role does not allow journeys.edit.", status=403)
        return _post(request, journey, node)
    form = build_form(node["kind"], node.get("label", ""), node.get("config") or {}, _segments())
    return _render(request, journey, node, form)


def _post(request: HtmxHttpRequest, journey: Journey, node: dict) -> HttpResponse:
    kind, label = node["kind"], request.POST.get("label", "").strip()[:200]
    config, problems = parse_config(kind, request.POST)
    timeout_kind = request.POST.get("timeout_kind", "")
    modes = read_split(request.POST)[1] if kind == NodeKind.SPLIT else []
    if "_refresh" in request.POST:
        form = build_form(kind, label, config, _segments(), timeout_kind=timeout_kind, split_modes=modes)
        return _render(request, journey, node, form)
    problems = problems + validate_config(kind, config)
    if problems:
        form = build_form(kind, label, config, _segments(), timeout_kind=timeout_kind, problems=problems, split_modes=modes)
        return _render(request, journey, node, form, status=422)
    try:
        do_edit_journey_graph(journey, base_revision(request), lambda g: edits.configure_node(g, node["id"], label, config),
                              request.user, f"Configured {label or node['id']}")
    except (StaleRevision, JourneyStateError) as refused:
        return alert(request, str(refused), 409)
    except (edits.EditError, BadEdit) as bad:
        return alert(request, str(getattr(bad, "message", bad)), 422)
    journey.refresh_from_db()
    saved = _node(journey, node["id"])
    form = build_form(kind, saved.get("label", ""), saved.get("config") or {}, _segments(), split_modes=modes)
    return _render(request, journey, saved, form, saved=True, with_board=True)


# --- live content rules -----------------------------------------------------------------


def _measures(channel: str, category: str, fields: dict) -> list[str]:
    """Plain facts about the content: SMS parts and encoding as sent (marketing links
    shortened), push lengths."""
    rules = load_rules()
    if channel == "sms":
        count = sms_segments_as_sent(str(fields.get("body", "")), category)
        return [f"{count.segments} SMS segment{'s' if count.segments != 1 else ''} · {count.encoding} · "
                f"{count.units} characters as sent, {count.per_segment} per segment"]
    if channel == "push":
        return [f"Title {len(str(fields.get('title', '')))} / {rules.push_title_max_chars} characters",
                f"Body {len(str(fields.get('body', '')))} / {rules.push_body_max_chars} characters (lock screen)"]
    if channel == "email":
        return [f"Subject {len(str(fields.get('subject', '')))} / {rules.email_subject_max_chars} characters"]
    return []


@require_capability(Capability.VIEW_JOURNEYS)
@require_POST
def content_check(request: HtmxHttpRequest, pk: int, node_id: str) -> HttpResponse:
    journey = get_object_or_404(Journey, pk=pk)
    channel = request.POST.get("channel", "")
    if channel not in CHANNEL_FIELDS:
        return HttpResponse(status=204)
    config, _ = unflatten(request.POST)
    fields = ((config.get("content") or {}).get(channel)) or {}
    fields = fields if isinstance(fields, dict) else {}
    version = editable_version(journey)
    in_app = node_id in app_present_nodes(version.graph if version else {}, load_rules().in_app_presence_events)
    problems = check_content(channel, journey.category, fields, load_rules(), customer_can_be_in_app=in_app)
    context = {"measures": _measures(channel, journey.category, fields), "problems": problems, "category": journey.get_category_display()}
    return render(request, f"{PANEL}#rules", context)

