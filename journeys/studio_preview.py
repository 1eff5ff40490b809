"""Preview: a send node's messages rendered for one real customer, as each channel shows them.

The content is rendered as the engine renders it (channels_app.templating, strict Liquid
with its limits), with the customer's own data and, for an event-entry journey, the
properties of their latest entry event, so a missing variable shows here as it would fail
the send. A template error is shown on its channel, never as a server error. The rendered
text goes through the channel content rules, as at send time.

For a best-channel send (or one with fallbacks) the preview also says which channel the
engine would choose for this customer now and why, with the same ``pick_channel`` and a
Governor used only to ``peek`` (which counts nothing); exploration is left out (explore 0),
since a Thompson draw is a per-send coin toss. Nothing is sent or recorded: the choice runs
in a transaction that is rolled back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from channels_app.content_rules import (
    ContentProblem,
    SmsSegments,
    check_content,
    non_gsm_characters,
    sms_segments_as_sent,
)
from channels_app.content_rules_loading import load_rules
from channels_app.providers import get_provider
from channels_app.reachability import Reachability
from channels_app.templating import TemplateError, render_content, template_context
from customers.models import Customer, Event
from customers.views import search_condition
from journeys import summaries
from journeys.filters import matches
from journeys.graph import entry_node
from journeys.models import Journey, JourneyVersion
from journeys.nodes import BEST_CHANNEL, NodeKind, send_channels
from journeys.studio import (
    HtmxHttpRequest,
    canvas_url,
    get_journey,
    render_studio,
    studio_version,
    wants_fragment,
)
from orchestrator.governor.evaluate import Governor
from orchestrator.intelligence.choice import label
from orchestrator.intelligence.journeys import ChannelPick, pick_channel
from orchestrator.roles import Capability, has_capability, require_capability

PICKER_RESULTS = 8
SAMPLE_EVENTS = 20  # the entry events looked at for one that passes the entry filters
TEMPLATE = "journeys/studio/preview.html"


@dataclass(frozen=True)
class ChannelPreview:
    channel: str
    label: str
    content: dict[str, str] = field(default_factory=dict)  # rendered fields
    error: str = ""  # why the template does not render ("" when it does)
    problems: list[ContentProblem] = field(default_factory=list)  # content rules on the rendered text
    refusal: str = ""  # why this customer may not get this channel now ("" when they may)
    sms: SmsSegments | None = None
    non_gsm: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SampleEvent:
    """The event whose properties ``event.*`` reads: the customer's latest entry event."""

    name: str
    event: Event | None


# --- what is previewed --------------------------------------------------------------------


def send_nodes(version: JourneyVersion | None) -> list[dict]:
    graph = version.graph if version else {}
    return [n for n in summaries.graph_order(graph) if n.get("kind") == NodeKind.SEND]


def node_channels(node: dict) -> list[str]:
    """The channels the node may send on, in its order; [] while its config is unfinished."""
    try:
        return [c for c in send_channels(node.get("config") or {}) if isinstance(c, str)]
    except (KeyError, TypeError):
        return []


def sample_event(version: JourneyVersion, customer: Customer) -> SampleEvent | None:
    """Their latest event that would have entered them (name and entry filters), of the last few."""
    config = (entry_node(version.graph) or {}).get("config") or {}
    if config.get("trigger") != "event" or not isinstance(config.get("event"), str):
        return None
    recent = Event.objects.filter(customer=customer, name=config["event"]).order_by("-occurred_at", "-id")[:SAMPLE_EVENTS]
    filters = config.get("filters") or []
    return SampleEvent(config["event"], next((e for e in recent if matches(filters, e.properties or {})), None))


def render_channel(
    channel: str, node: dict, context: dict, *, category: str, reach: Reachability, customer: Customer
) -> ChannelPreview:
    refusal = reach.refusal(customer, channel, category)
    base = {"channel": channel, "label": label(channel), "refusal": refusal.reason if refusal else ""}
    source = ((node.get("config") or {}).get("content") or {}).get(channel)
    if not isinstance(source, dict):
        return ChannelPreview(**base, error=f"{channel}: this node has no {label(channel)} content yet")
    try:
        content = render_content(channel, source, context)
    except TemplateError as error:
        return ChannelPreview(**base, error=error.reason)
    problems = check_content(channel, category, content, load_rules())
    body = content.get("body", "") if channel == "sms" else ""
    return ChannelPreview(
        **base, content=content, problems=sorted(problems, key=lambda p: p.severity != "error"),
        sms=sms_segments_as_sent(body, category) if channel == "sms" else None, non_gsm=non_gsm_characters(body),
    )


def engine_choice(customer: Customer, node: dict, journey: Journey, *, now: datetime) -> ChannelPick | None:
    """The channel the engine would send on now, for a node with a choice to make."""
    config = node.get("config") or {}
    if config.get("channel") != BEST_CHANNEL and not config.get("fallback"):
        return None
    greedy = {**config, "explore": 0}
    with transaction.atomic():
        # The governor locks the customer's row while it reads their history: for an
        # instant, as a send would. Rolled back: peek counts nothing, and nothing is written.
        pick = pick_channel(customer, greedy, journey, now=now, governor=Governor([customer.pk], now=now),
                            rng=random.Random(0))
        transaction.set_rollback(True)
    return pick


def email_sender() -> str:
    """The From of the email provider that would send, or why there is none."""
    try:
        provider = get_provider("email")
    except ImproperlyConfigured as error:
        return f"no email provider: {error}"
    sender = str(provider.config.options.get("from_email") or "")
    return sender or f"none set ({provider.name} provider)"


def node_preview(journey: Journey, version: JourneyVersion, node: dict, customer: Customer) -> dict:
    sample = sample_event(version, customer)
    event = sample.event if sample else None
    context = template_context(
        customer, event={"name": event.name, "properties": event.properties or {}} if event else None,
        journey={"id": journey.pk, "name": journey.name}, trigger={},
    )
    reach = Reachability.load([customer.pk])
    channels = node_channels(node)
    previews = [render_channel(c, node, context, category=journey.category, reach=reach, customer=customer) for c in channels]
    choice = engine_choice(customer, node, journey, now=timezone.now()) if channels else None
    return {
        "previews": previews,
        "sample": sample,
        "choice": choice,
        # The step log's "sms · why" without the channel, which the sentence above it names.
        "choice_why": (choice.detail.partition(" · ")[2] or choice.detail) if choice else "",
        "sender": email_sender() if "email" in channels else "",
        "failed": any(p.error for p in previews),
        "unfinished": not channels,
    }


# --- the customer picker ------------------------------------------------------------------


def find_customers(text: str) -> list[Customer]:
    """By name, email, phone or external id, every word matching (as the customer list)."""
    text = " ".join(text.split())[:200]
    if not text:
        return []
    return list(Customer.objects.filter(search_condition(text)).order_by("-last_seen_at", "id")[:PICKER_RESULTS])


# --- the view -----------------------------------------------------------------------------


def pick_url(journey: Journey, node_id: str, version_number: str) -> str:
    """The preview of this step, less the customer's id: a picked customer's link appends it."""
    query = urlencode({"node": node_id, "version": version_number})
    return f"{reverse('journeys:studio-preview', args=[journey.pk])}?{query}&customer="


def _chosen_node(version: JourneyVersion | None, nodes: list[dict], node_id: str | None) -> dict | None:
    """The send step asked for; the first send step when none was, or when the canvas's
    selection is another kind of step; None for a step the version does not have."""
    asked = next((n for n in nodes if n["id"] == node_id), None) if node_id else None
    if asked is None and node_id and version is not None and version.node(node_id) is None:
        return None
    return asked or (nodes[0] if nodes else None)


def _customer(raw: str | None) -> Customer | None:
    if not raw:
        return None
    if not raw.isdigit():
        return None
    return get_object_or_404(Customer, pk=int(raw))


@require_capability(Capability.VIEW_JOURNEYS)
@require_http_methods(["GET", "HEAD"])
def preview(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    journey = get_journey(pk)
    if "q" in request.GET and wants_fragment(request):  # the picker's search box
        pick = pick_url(journey, request.GET.get("node", ""), request.GET.get("version", ""))
        context = {"journey": journey, "matches": find_customers(request.GET["q"]), "q": request.GET["q"], "pick_url": pick}
        return render_studio(request, TEMPLATE, context, fragment="matches")
    version = studio_version(journey, request.GET.get("version"))
    nodes = send_nodes(version)
    node = _chosen_node(version, nodes, request.GET.get("node"))
    customer = _customer(request.GET.get("customer"))
    if customer is not None and not has_capability(request.user, Capability.VIEW_CUSTOMERS):
        raise PermissionDenied("Previewing for a customer shows their data: your role does not allow customers.view.")
    context = {
        "journey": journey, "version": version, "nodes": nodes, "node": node, "customer": customer,
        "asked_node": request.GET.get("node", ""), "canvas_url": canvas_url(journey, version),
        "node_label": summaries.node_label(node) if node else "",
        "pick_url": pick_url(journey, node["id"] if node else "", str(version.number) if version else ""),
    }
    if node is not None and customer is not None and version is not None:
        context |= node_preview(journey, version, node, customer)
    return render_studio(request, TEMPLATE, context)
