"""Journey pages: the list (with its filters), one journey, one customer's path.

A journey's page is also where a draft's channel content problems show, on the node cards
(the content rules, errors and warnings, as the API reports them on saving).

The list counts enrollments for a whole page in one GROUP BY. A journey's page shows one
version's nodes in graph order with per-node statistics from the step log (one GROUP BY
over EnrollmentStep, one over the enrollments still inside), and re-reads them every
POLL_SECONDS, because the engine runs in another process. Nothing here writes: the canvas
editor (journeys.editor_*) and the API change journeys through the services.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods
from django_htmx.middleware import HtmxDetails

from channels_app.content_rules import ContentProblem
from channels_app.models import Message
from customers.models import Segment
from customers.views import customer_zone
from journeys import summaries
from journeys.graph import next_node_id, nodes_by_id
from journeys.models import Journey, JourneyStatus, JourneyVersion
from journeys.nodes import NODE_KINDS, NodeKind
from journeys.services import journey_content_problems
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, StepOutcome
from orchestrator.roles import Capability, has_capability, require_capability


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


LIST_PAGE_SIZE = 25
ENROLLMENTS_PAGE_SIZE = 20
STEPS_PAGE_SIZE = 200
POLL_SECONDS = 10
# Outcomes logged when an enrollment arrives at a node (resumes log happened or timed
# out; conversions and exits are logged where the enrollment already was). An exit node's
# arrival logs "exited" with the node's kind, which is counted apart.
ARRIVALS = frozenset({
    StepOutcome.ENTERED, StepOutcome.DELAYED, StepOutcome.SENT, StepOutcome.HELD_OUT, StepOutcome.SUPPRESSED,
    StepOutcome.FAILED, StepOutcome.WAITING, StepOutcome.BRANCH, StepOutcome.UPDATED,
})
# Outcomes worth a note on a node card; the rest show as entered, sent, converted or ports.
NOTED = (StepOutcome.HELD_OUT, StepOutcome.SUPPRESSED, StepOutcome.FAILED, StepOutcome.EXITED)
# Fragments a journey page serves, by the id of the element htmx swaps.
DETAIL_FRAGMENTS = {"journey-live": "live", "enrollments": "enrollments"}


def _page_or_fragment(request: HtmxHttpRequest, template: str, fragment: str | None, context: dict) -> HttpResponse:
    """Render the fragment for htmx requests, the page otherwise (and on history misses)."""
    if fragment and request.htmx and not request.htmx.history_restore_request:
        template = f"{template}#{fragment}"
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _wants_fragment(request: HtmxHttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


# --- The list -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    entered: int = 0
    in_progress: int = 0
    converted: int = 0


def enrollment_counts(journey_ids: list[int]) -> dict[int, Counts]:
    """Entered, still inside and converted, per journey: one GROUP BY for a whole page."""
    rows = (
        Enrollment.objects.filter(journey_id__in=journey_ids)
        .order_by()
        .values("journey_id")
        .annotate(
            entered=Count("id"),
            in_progress=Count("id", filter=~Q(state=EnrollmentState.EXITED)),
            converted=Count("id", filter=Q(converted_at__isnull=False)),
        )
    )
    return {row["journey_id"]: Counts(row["entered"], row["in_progress"], row["converted"]) for row in rows}


def list_journeys(status: str, tag: str = "") -> QuerySet[Journey]:
    """With the live and draft version numbers, never their graphs."""
    drafts = JourneyVersion.objects.filter(journey=OuterRef("pk"), published_at__isnull=True)
    journeys = Journey.objects.select_related("updated_by").annotate(
        live_number=F("live_version__number"), draft_number=Subquery(drafts.values("number")[:1])
    )
    if status:
        journeys = journeys.filter(status=status)
    if tag:
        # Read in Python: JSON containment is not portable to SQLite, and tags are few.
        tagged = [pk for pk, tags in Journey.objects.values_list("pk", "tags") if isinstance(tags, list) and tag in tags]
        journeys = journeys.filter(pk__in=tagged)
    return journeys.order_by("name", "id")


def list_query(status: str, tag: str) -> str:
    return urlencode({k: v for k, v in {"status": status, "tag": tag}.items() if v})


@dataclass(frozen=True)
class ListRow:
    journey: Journey
    counts: Counts


@dataclass(frozen=True)
class FilterLink:
    label: str
    url: str
    count: int
    active: bool


def _url(query: str) -> str:
    base = reverse("journeys:list")
    return f"{base}?{query}" if query else base


def filter_links(status: str, tag: str) -> tuple[list[FilterLink], list[FilterLink]]:
    """The status links (with counts) and the tag links, from one read of every journey's
    status and tags (journeys are few; their tags are not indexable portably)."""
    by_status: dict[str, int] = {}
    tags: set[str] = set()
    for value, found in Journey.objects.order_by().values_list("status", "tags"):
        by_status[value] = by_status.get(value, 0) + 1
        if isinstance(found, list):
            tags.update(t for t in found if isinstance(t, str))
    statuses = [FilterLink("All", _url(list_query("", tag)), sum(by_status.values()), not status)] + [
        FilterLink(label, _url(list_query(value, tag)), by_status.get(value, 0), value == status)
        for value, label in JourneyStatus.choices
    ]
    if not tags:
        return statuses, []
    tag_links = [FilterLink("Any tag", _url(list_query(status, "")), 0, not tag)] + [
        FilterLink(name, _url(list_query(status, name)), 0, name == tag) for name in sorted(tags, key=str.casefold)
    ]
    return statuses, tag_links


@require_capability(Capability.VIEW_JOURNEYS)
@require_http_methods(["GET", "HEAD"])
def journey_list(request: HtmxHttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    status = status if status in JourneyStatus.values else ""
    tag = request.GET.get("tag", "").strip()[:50]
    page = Paginator(list_journeys(status, tag), LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    journeys = list(page.object_list)
    counts = enrollment_counts([journey.pk for journey in journeys])
    status_links, tag_links = filter_links(status, tag)
    context = {
        "page": page,
        "rows": [ListRow(journey, counts.get(journey.pk, Counts())) for journey in journeys],
        "status": status,
        "tag": tag,
        "status_label": JourneyStatus(status).label if status else "",
        "status_query": list_query(status, tag),
        "status_links": status_links,
        "tag_links": tag_links,
        "can_edit": has_capability(request.user, Capability.EDIT_JOURNEYS),
        "list_url": request.get_full_path(),
    }
    return _page_or_fragment(request, "journeys/list.html", "results", context)


# --- One journey: totals and per-node statistics -------------------------------------------


@dataclass(frozen=True)
class Totals:
    entered: int
    in_progress: int
    converted: int
    value: Decimal | None
    control: int  # entrants held out as the control group
    control_converted: int

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return part * 100 / whole if whole else None

    @property
    def conversion_rate(self) -> float | None:
        return self._rate(self.converted - self.control_converted, self.entered - self.control)

    @property
    def control_rate(self) -> float | None:
        return self._rate(self.control_converted, self.control)


def journey_totals(journey: Journey) -> Totals:
    """Across every version: one aggregate."""
    converted = Q(converted_at__isnull=False)
    row = Enrollment.objects.filter(journey=journey).aggregate(
        entered=Count("id"),
        in_progress=Count("id", filter=~Q(state=EnrollmentState.EXITED)),
        converted=Count("id", filter=converted),
        # The control group's purchases would have happened anyway: they are not the
        # journey's value (the measurement page compares the two groups).
        value=Sum("conversion_value", filter=Q(holdout=False)),
        control=Count("id", filter=Q(holdout=True)),
        control_converted=Count("id", filter=Q(holdout=True) & converted),
    )
    return Totals(**row)


@dataclass
class NodeStats:
    entered: int = 0
    here_now: int = 0  # enrollments at this node and not exited
    sent: int = 0
    converted: int = 0
    noted: dict[str, int] = field(default_factory=dict)  # outcome -> steps, for NOTED outcomes
    ports: dict[str, int] = field(default_factory=dict)  # port -> steps that left by it

    @property
    def notes(self) -> list[tuple[str, str, int]]:
        """(outcome, label, count) for the outcomes worth a note, in NOTED order."""
        labels = {
            StepOutcome.HELD_OUT: "held out", StepOutcome.SUPPRESSED: "suppressed",
            StepOutcome.FAILED: "failed", StepOutcome.EXITED: "exited here",
        }
        return [(o.value, labels[o], self.noted[o]) for o in NOTED if self.noted.get(o)]


def node_stats(version: JourneyVersion) -> dict[str, NodeStats]:
    """Per node of one version: two GROUP BYs, over the step log and the people inside."""
    stats: dict[str, NodeStats] = defaultdict(NodeStats)
    steps = (
        EnrollmentStep.objects.filter(version_id=version.pk)
        .order_by()
        .values_list("node_id", "kind", "outcome", "port")
        .annotate(n=Count("id"))
    )
    for node_id, kind, outcome, port, n in steps:
        _count_step(stats[node_id], kind, outcome, port, n)
    inside = (
        Enrollment.objects.filter(version=version).exclude(state=EnrollmentState.EXITED)
        .order_by().values_list("current_node").annotate(n=Count("id"))
    )
    for node_id, n in inside:
        stats[node_id].here_now = n
    return stats


def _moved_on_from_delay(node: NodeStats) -> int:
    # A delay logs its arrival but not the moment it ends (nothing happens then), so the
    # people who went on are those who arrived and are neither still there nor exited there.
    return max(node.entered - node.here_now - node.noted.get(StepOutcome.EXITED, 0), 0)


def _count_step(node: NodeStats, kind: str, outcome: str, port: str, n: int) -> None:
    if outcome in ARRIVALS or (outcome == StepOutcome.EXITED and kind == NodeKind.EXIT):
        node.entered += n
    if outcome == StepOutcome.SENT:
        node.sent += n
    elif outcome == StepOutcome.CONVERTED:
        node.converted += n
    elif outcome in NOTED and not (outcome == StepOutcome.EXITED and kind == NodeKind.EXIT):
        node.noted[outcome] = node.noted.get(outcome, 0) + n
    if port:
        node.ports[port] = node.ports.get(port, 0) + n


@dataclass(frozen=True)
class ExitRow:
    exit: summaries.Exit
    count: int


@dataclass(frozen=True)
class NodeCard:
    node_id: str
    kind: str
    kind_label: str
    label: str
    summary: str
    stats: NodeStats
    exits: list[ExitRow]
    # What the channel content rules find in a send node's content (errors first).
    problems: list[ContentProblem] = field(default_factory=list)


def segment_names(graph: dict) -> dict[int, str]:
    """Names of the segments a segment entry names (a query only when there is one)."""
    ids = [
        node["config"]["segment_id"] for node in nodes_by_id(graph).values()
        if node.get("kind") == NodeKind.ENTRY and isinstance(node.get("config"), dict)
        and isinstance(node["config"].get("segment_id"), int)
    ]
    return dict(Segment.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}


def problems_by_node(journey: Journey, version: JourneyVersion) -> dict[str, list[ContentProblem]]:
    found: dict[str, list[ContentProblem]] = defaultdict(list)
    for problem in journey_content_problems(journey, version.graph):
        found[problem.node_id].append(problem.problem)
    return {node_id: sorted(items, key=lambda p: p.severity != "error") for node_id, items in found.items()}


def content_summary(problems: dict[str, list[ContentProblem]], *, published: bool) -> str:
    """E.g. "2 errors, which block publishing; 1 warning"; "" when there are none."""
    found = [p.severity for items in problems.values() for p in items]
    errors, warnings = found.count("error"), found.count("warning")
    parts = []
    if errors:
        # A published version's errors come from rules tightened since it was published.
        consequence = ": messages that still break them are not sent" if published else ", which block publishing"
        parts.append(f"{errors} error{pluralize(errors)}{consequence}")
    if warnings:
        parts.append(f"{warnings} warning{pluralize(warnings)}")
    return "; ".join(parts)


def node_cards(
    version: JourneyVersion, stats: dict[str, NodeStats], problems: dict[str, list[ContentProblem]] | None = None
) -> list[NodeCard]:
    graph, names = version.graph, segment_names(version.graph)
    problems = problems or {}
    cards = []
    for node in summaries.graph_order(graph):
        node_id, kind = node["id"], str(node.get("kind", ""))
        spec = NODE_KINDS.get(kind)  # type: ignore[call-overload]  # a StrEnum key matches its value
        counts = stats.get(node_id, NodeStats())
        if kind == NodeKind.DELAY:
            counts.ports["out"] = _moved_on_from_delay(counts)
        exits = [ExitRow(e, counts.ports.get(e.port, 0)) for e in summaries.node_exits(graph, node)]
        cards.append(NodeCard(
            node_id, kind, spec.label if spec else kind or "Unknown", summaries.node_label(node),
            summaries.node_summary(node, names), counts, exits, problems.get(node_id, []),
        ))
    return cards


def shown_version(journey: Journey, number: str | None) -> JourneyVersion | None:
    """The version asked for, else the live one, else the newest (a draft)."""
    if number:
        if not number.isdigit():
            raise Http404("No such version.")
        return get_object_or_404(JourneyVersion, journey=journey, number=int(number))
    if journey.live_version_id:
        return journey.live_version
    return journey.versions.order_by("-number").first()


def detail_url(journey: Journey, version: JourneyVersion | None = None, **params: Any) -> str:
    """The journey page, keeping a version other than the live one in the URL."""
    if version is not None and version.pk != journey.live_version_id:
        params = {"version": version.number, **params}
    query = urlencode({k: v for k, v in params.items() if v})
    base = reverse("journeys:detail", args=[journey.pk])
    return f"{base}?{query}" if query else base


def live_context(journey: Journey, version: JourneyVersion | None) -> dict[str, Any]:
    """Totals and node cards: what the page re-reads every POLL_SECONDS."""
    stats = node_stats(version) if version is not None and version.is_published else {}
    problems = problems_by_node(journey, version) if version is not None else {}
    return {
        "totals": journey_totals(journey),
        "cards": node_cards(version, stats, problems) if version is not None else [],
        "content_summary": content_summary(problems, published=version is not None and version.is_published),
        "with_stats": version is not None and version.is_published,
        "poll_url": detail_url(journey, version),
        "poll_seconds": POLL_SECONDS,
    }


# --- One journey: its people and its versions -------------------------------------------------


@dataclass(frozen=True)
class EnrollmentRow:
    enrollment: Enrollment
    version_number: int | None
    node_label: str


def enrollment_rows(enrollments: list[Enrollment]) -> list[EnrollmentRow]:
    """With the version number and the node's label (one query for the versions they are in)."""
    versions = JourneyVersion.objects.only("id", "number", "graph").in_bulk({e.version_id for e in enrollments})
    rows = []
    for enrollment in enrollments:
        version = versions.get(enrollment.version_id)
        node = version.node(enrollment.current_node) if version else None
        rows.append(EnrollmentRow(
            enrollment, version.number if version else None, summaries.node_label(node, enrollment.current_node)
        ))
    return rows


def enrollments_context(request: HttpRequest, journey: Journey, version: JourneyVersion | None) -> dict[str, Any]:
    enrollments = (
        Enrollment.objects.filter(journey=journey).select_related("customer").defer("context", "touch_sequence")
    )
    page = Paginator(enrollments, ENROLLMENTS_PAGE_SIZE).get_page(request.GET.get("page"))
    return {
        "enrollment_page": page,
        "enrollment_rows": enrollment_rows(list(page.object_list)),
        "previous_url": detail_url(journey, version, page=page.previous_page_number()) if page.has_previous() else "",
        "next_url": detail_url(journey, version, page=page.next_page_number()) if page.has_next() else "",
    }


def page_context(journey: Journey, version: JourneyVersion | None) -> dict[str, Any]:
    """The parts only the full page shows: settings in words and the versions."""
    versions = list(journey.versions.select_related("published_by").defer("graph").order_by("-number"))
    return {
        "versions": [(v, detail_url(journey, v)) for v in versions],
        "goal": summaries.goal_summary(journey),
        "reentry": summaries.reentry_summary(journey),
    }


@require_capability(Capability.VIEW_JOURNEYS)
@require_http_methods(["GET", "HEAD"])
def journey_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    journey = get_object_or_404(Journey.objects.select_related("live_version", "updated_by"), pk=pk)
    version = shown_version(journey, request.GET.get("version"))
    fragment = DETAIL_FRAGMENTS.get(request.htmx.target or "") if _wants_fragment(request) else None
    context: dict[str, Any] = {"journey": journey, "version": version}
    if fragment in (None, "live"):
        context |= live_context(journey, version)
    if fragment in (None, "enrollments"):
        context |= enrollments_context(request, journey, version)
    if fragment is None:
        context |= page_context(journey, version)
    return _page_or_fragment(request, "journeys/detail.html", fragment, context)


# --- One customer's path ----------------------------------------------------------------------


@dataclass(frozen=True)
class PathRow:
    step: EnrollmentStep
    node_label: str
    kind_label: str  # "Wait for event"; "Goal" for conversions; "" for exits outside a node
    port_label: str  # "timed out"
    next_label: str  # where that port leads; "" when the step did not move on
    message: Message | None


def path_rows(steps: list[EnrollmentStep], graph: dict) -> list[PathRow]:
    by_id = nodes_by_id(graph)
    messages = Message.objects.in_bulk([s.message_id for s in steps if s.message_id])
    return [_path_row(step, by_id.get(step.node_id), graph, messages) for step in steps]


def _path_row(step: EnrollmentStep, node: dict | None, graph: dict, messages: dict[int, Message]) -> PathRow:
    spec = NODE_KINDS.get(step.kind)  # type: ignore[call-overload]
    kind_label = spec.label if spec else step.kind.capitalize()
    port_label = following = ""
    if step.port:
        port_label = summaries.port_label(node or {}, step.port)
        target = next_node_id(graph, step.node_id, step.port)
        following = summaries.node_label(nodes_by_id(graph).get(target), target) if target else "end of journey"
    message = messages.get(step.message_id) if step.message_id else None
    return PathRow(step, summaries.node_label(node, step.node_id), kind_label, port_label, following, message)


@require_capability(Capability.VIEW_JOURNEYS)
@require_http_methods(["GET", "HEAD"])
def enrollment_path(request: HtmxHttpRequest, pk: int, enrollment_id: int) -> HttpResponse:
    enrollment = get_object_or_404(
        Enrollment.objects.select_related("customer", "journey", "version"), pk=enrollment_id, journey_id=pk
    )
    zone, zone_known = customer_zone(enrollment.customer)
    page = Paginator(enrollment.steps.order_by("at", "id"), STEPS_PAGE_SIZE).get_page(request.GET.get("page"))
    graph = enrollment.version.graph
    context = {
        "enrollment": enrollment,
        "journey": enrollment.journey,
        "customer": enrollment.customer,
        "node_label": summaries.node_label(nodes_by_id(graph).get(enrollment.current_node), enrollment.current_node),
        "zone_name": str(zone),
        "zone_known": zone_known,
        "page": page,
        "rows": path_rows(list(page.object_list), graph),
    }
    return render(request, "journeys/enrollment.html", context)
