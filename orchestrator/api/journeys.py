"""The journeys API: author, publish, run and export journeys; trigger API-entry journeys.

Access: an API key with scope ``manage``, or a signed-in user with ``journeys.view`` (reads)
or ``journeys.edit`` (changes). Errors have the one shape of orchestrator.api_errors: bad
settings are a 400 ``invalid`` naming each field, a graph that cannot be published a 400
``invalid_graph`` naming each problem's path and node (channel content errors included),
and a change the journey's status does not allow a 409 ``conflict`` naming that status.
A journey's representation carries ``content_problems``: what the channel content rules
find in the shown graph's send nodes, errors and warnings, each pinned on its node.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps

from django.db.models import OuterRef, QuerySet, Subquery
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from customers.api.ingest_schema import ErrorResponse
from customers.api.paging import page_response, validated_query
from customers.models import Customer
from journeys import graph as graphs
from journeys.models import Journey, JourneyVersion
from journeys.services import (
    JourneyAction,
    JourneyInput,
    JourneyInputError,
    JourneyStateError,
    do_create_journey,
    export_journey,
)
from orchestrator import engine
from orchestrator.api import journey_serializers as s
from orchestrator.api_errors import error_response
from orchestrator.api_keys import api_access
from orchestrator.engine import lifecycle
from orchestrator.models import ApiKey, ApiScope
from orchestrator.roles import Capability

SCOPE = ApiScope.MANAGE.value
READ_OR_EDIT = {"GET": Capability.VIEW_JOURNEYS.value, "*": Capability.EDIT_JOURNEYS.value}
EDIT = Capability.EDIT_JOURNEYS.value
_ACCESS = " Requires scope `manage` (API key) or capability `{}` (signed-in user)."
_READ_ACCESS, _EDIT_ACCESS = _ACCESS.format(Capability.VIEW_JOURNEYS.value), _ACCESS.format(EDIT)

_ERRORS = {
    401: OpenApiResponse(ErrorResponse, description="No or an unknown/revoked API key."),
    403: OpenApiResponse(ErrorResponse, description="The key lacks the scope, or the user the capability."),
    429: OpenApiResponse(ErrorResponse, description="Over the key's per-minute limit; see Retry-After."),
}
_NOT_FOUND = {404: OpenApiResponse(ErrorResponse, description="No journey has this id.")}
_INVALID = {400: OpenApiResponse(ErrorResponse, description="Invalid fields, each named; nothing was changed.")}
_CONFLICT = {
    409: OpenApiResponse(ErrorResponse, description="The journey's status does not allow this; the error names it.")
}
_JOURNEY_ID = OpenApiParameter("journey_id", int, OpenApiParameter.PATH, description="The journey's id.")


# --- Helpers ---------------------------------------------------------------------------------


def _actor(request: Request):
    """The user to record as author; None for an API key, which is not a user."""
    return None if isinstance(request.auth, ApiKey) else request.user


def _conflict(message: str) -> Response:
    return error_response("conflict", message, http_status=status.HTTP_409_CONFLICT)


def _problem_field(problem: graphs.Problem) -> dict:
    return {"field": problem.path, "reason": problem.message, "node": problem.node_id}


def _service_errors(view: Callable) -> Callable:
    """Placed below ``@api_view``: the services' errors answered in the API's error shape."""

    @wraps(view)
    def wrapped(request: Request, *args, **kwargs) -> Response:
        try:
            return view(request, *args, **kwargs)
        except graphs.InvalidGraph as exc:
            message = f"The graph cannot be published: {len(exc.problems)} problem(s); nothing was changed."
            return error_response("invalid_graph", message, [_problem_field(p) for p in exc.problems])
        except JourneyInputError as exc:
            fields = [{"field": field, "reason": reason} for field, reason in exc.fields]
            return error_response("invalid", "The request has invalid fields.", fields)
        except JourneyStateError as exc:
            return _conflict(str(exc))

    return wrapped


def _journey_or_404(journey_id: int) -> Journey:
    journey = Journey.objects.select_related("live_version").filter(pk=journey_id).first()
    if journey is None:
        raise NotFound(f"No journey with id {journey_id}.")
    return journey


def _with_version_numbers(queryset: QuerySet[Journey]) -> QuerySet[Journey]:
    drafts = JourneyVersion.objects.filter(journey=OuterRef("pk"), published_at__isnull=True)
    return queryset.select_related("live_version").annotate(draft_number=Subquery(drafts.values("number")[:1]))


def _detail(journey_id: int, http_status: int = status.HTTP_200_OK) -> Response:
    journey = _with_version_numbers(Journey.objects.filter(pk=journey_id)).get()
    draft = journey.versions.filter(published_at__isnull=True).first()
    journey.shown_version = draft or journey.live_version
    return Response(s.JourneyDetailSerializer(journey).data, status=http_status)


# --- Journeys --------------------------------------------------------------------------------


@extend_schema(
    methods=["GET"],
    operation_id="journeys_list",
    summary="List journeys",
    description="By name." + _READ_ACCESS,
    parameters=[s.JourneyListQuerySerializer],
    responses={200: s.PaginatedJourneySummarySerializer, 400: _INVALID[400], **_ERRORS},
    tags=["journeys"],
)
@extend_schema(
    methods=["POST"],
    operation_id="journeys_create",
    summary="Create a draft journey",
    description=(
        "Creates the journey and its draft version 1 with the given graph, or a lone entry "
        "node. A draft may be unfinished; publishing checks the graph. `content_problems` "
        "lists what the channel content rules find in its send nodes." + _EDIT_ACCESS
    ),
    request=s.JourneyWriteSerializer,
    responses={201: s.JourneyDetailSerializer, **_INVALID, **_ERRORS},
    tags=["journeys"],
)
@api_access(scope=SCOPE, capability=READ_OR_EDIT)
@api_view(["GET", "POST"])
@_service_errors
def journey_collection(request: Request) -> Response:
    if request.method == "POST":
        journey = do_create_journey(JourneyInput.from_mapping(request.data), _actor(request))
        return _detail(journey.pk, status.HTTP_201_CREATED)
    params = validated_query(s.JourneyListQuerySerializer, request)
    journeys = _with_version_numbers(Journey.objects.all())
    if params.get("status"):
        journeys = journeys.filter(status=params["status"])
    return page_response(request, journeys.order_by("name", "id"), params, s.JourneySummarySerializer)


@extend_schema(
    methods=["GET"],
    operation_id="journeys_retrieve",
    summary="One journey: settings, status and its draft (else live) graph",
    description=_READ_ACCESS.strip(),
    parameters=[_JOURNEY_ID],
    responses={200: s.JourneyDetailSerializer, **_NOT_FOUND, **_ERRORS},
    tags=["journeys"],
)
@extend_schema(
    methods=["PATCH"],
    operation_id="journeys_update",
    summary="Change settings and/or the draft graph",
    description=(
        "Only the fields given change. Editing the graph of a journey whose versions are all "
        "published starts a new draft (the next number) from the live graph; a published "
        "version never changes. Archived journeys cannot be edited (409). A draft is saved "
        "whatever the channel content rules find; `content_problems` lists it, each pinned "
        "on its node and field." + _EDIT_ACCESS
    ),
    parameters=[_JOURNEY_ID],
    request=s.JourneyWriteSerializer,
    responses={200: s.JourneyDetailSerializer, **_INVALID, **_NOT_FOUND, **_CONFLICT, **_ERRORS},
    tags=["journeys"],
)
@api_access(scope=SCOPE, capability=READ_OR_EDIT)
@api_view(["GET", "PATCH"])
@_service_errors
def journey_detail(request: Request, journey_id: int) -> Response:
    journey = _journey_or_404(journey_id)
    if request.method == "PATCH":
        lifecycle.update(journey, JourneyInput.from_mapping(request.data), _actor(request))
    return _detail(journey.pk)


@extend_schema(
    operation_id="journeys_publish",
    summary="Publish the draft",
    description=(
        "Checks the whole graph and answers every problem at once (400 `invalid_graph`, each "
        "with the problem's path and node); a channel content rule's error is one of them, "
        "a warning is not (it stays in `content_problems`). A draft journey goes live; a paused one stays "
        "paused. New entrants enter this version; people inside finish on theirs."
        + _EDIT_ACCESS
    ),
    parameters=[_JOURNEY_ID],
    request=None,
    responses={
        200: s.JourneyDetailSerializer,
        400: OpenApiResponse(s.GraphErrorResponseSerializer, description="The graph's problems; nothing was changed."),
        **_NOT_FOUND, **_CONFLICT, **_ERRORS,
    },
    tags=["journeys"],
)
@api_access(scope=SCOPE, capability=EDIT)
@api_view(["POST"])
@_service_errors
def journey_publish(request: Request, journey_id: int) -> Response:
    lifecycle.publish(_journey_or_404(journey_id), _actor(request))
    return _detail(journey_id)


_STATUS_SUMMARIES = {
    JourneyAction.PAUSE: "Pause a live journey: nobody enters, people inside are held",
    JourneyAction.RESUME: "Resume a paused journey",
    JourneyAction.STOP: "Stop a live or paused journey: everyone inside exits",
    JourneyAction.ARCHIVE: "Archive a draft or stopped journey (stop a live one first)",
}


def _status_view(action: JourneyAction) -> Callable:
    """One endpoint per status change, so each has its own operation in the schema."""

    def view(request: Request, journey_id: int) -> Response:
        lifecycle.set_status(_journey_or_404(journey_id), action, _actor(request))
        return _detail(journey_id)

    view.__name__ = view.__qualname__ = f"journey_{action}"
    schema = extend_schema(
        operation_id=f"journeys_{action}",
        summary=_STATUS_SUMMARIES[action],
        description="A change the current status does not allow is a 409 naming it." + _EDIT_ACCESS,
        parameters=[_JOURNEY_ID],
        request=None,
        responses={200: s.JourneyDetailSerializer, **_NOT_FOUND, **_CONFLICT, **_ERRORS},
        tags=["journeys"],
    )
    return schema(api_access(scope=SCOPE, capability=EDIT)(api_view(["POST"])(_service_errors(view))))


journey_pause = _status_view(JourneyAction.PAUSE)
journey_resume = _status_view(JourneyAction.RESUME)
journey_stop = _status_view(JourneyAction.STOP)
journey_archive = _status_view(JourneyAction.ARCHIVE)


@extend_schema(
    operation_id="journeys_versions_list",
    summary="A journey's versions, newest first",
    description="Published versions never change; at most one draft exists." + _READ_ACCESS,
    parameters=[_JOURNEY_ID],
    responses={200: s.JourneyVersionSerializer(many=True), **_NOT_FOUND, **_ERRORS},
    tags=["journeys"],
)
@api_access(scope=SCOPE, capability=READ_OR_EDIT)
@api_view(["GET"])
def journey_versions(request: Request, journey_id: int) -> Response:
    journey = _journey_or_404(journey_id)
    versions = journey.versions.select_related("published_by").order_by("-number")
    return Response(s.JourneyVersionSerializer(versions, many=True).data)


# --- Export and import -----------------------------------------------------------------------


@extend_schema(
    operation_id="journeys_export",
    summary="Export a journey as one JSON document",
    description=(
        "Settings and the draft graph (else the live one); import it with `POST /journeys/import`."
        + _READ_ACCESS
    ),
    parameters=[_JOURNEY_ID],
    responses={200: s.JourneyDocumentSerializer, **_NOT_FOUND, **_ERRORS},
    tags=["journeys"],
)
@api_access(scope=SCOPE, capability=READ_OR_EDIT)
@api_view(["GET"])
def journey_export(request: Request, journey_id: int) -> Response:
    return Response(export_journey(_journey_or_404(journey_id)))


def _name_taken(document) -> bool:
    name = document.get("name") if isinstance(document, dict) else None
    return isinstance(name, str) and Journey.objects.filter(name=name.strip()).exists()


@extend_schema(
    operation_id="journeys_import",
    summary="Import an exported journey",
    description=(
        "Creates a new draft journey (201), or, when a journey already has the document's "
        "name, replaces its draft graph and settings (200; a live journey gets a new draft). "
        "An invalid document is a 400 naming each field and writes nothing." + _EDIT_ACCESS
    ),
    request=s.JourneyDocumentSerializer,
    responses={
        200: s.JourneyDetailSerializer, 201: s.JourneyDetailSerializer,
        **_INVALID, **_CONFLICT, **_ERRORS,
    },
    tags=["journeys"],
)
@api_access(scope=SCOPE, capability=EDIT)
@api_view(["POST"])
@_service_errors
def journey_import(request: Request) -> Response:
    # Only chooses the status code: the service decides create-or-update under its transaction.
    existed = _name_taken(request.data)
    journey = lifecycle.import_document(request.data, _actor(request))
    return _detail(journey.pk, status.HTTP_200_OK if existed else status.HTTP_201_CREATED)


# --- Trigger ---------------------------------------------------------------------------------


@extend_schema(
    operation_id="journeys_trigger",
    summary="Enter a customer into an API-triggered journey",
    description=(
        "For journeys whose entry is `{\"trigger\": \"api\"}`. Entry rules (re-entry, entry "
        "limit, holdout) still apply: `entered` says whether the customer entered and "
        "`reason` why not. A repeated `messageId` never enters twice." + _EDIT_ACCESS
    ),
    parameters=[_JOURNEY_ID],
    request=s.TriggerRequestSerializer,
    responses={
        200: s.TriggerResponseSerializer,
        **_INVALID,
        404: OpenApiResponse(ErrorResponse, description="No such journey, or no customer has this userId."),
        409: OpenApiResponse(ErrorResponse, description="The journey is not live, or its entry is not an API trigger."),
        **_ERRORS,
    },
    tags=["journeys"],
)
@api_access(scope=SCOPE, capability=EDIT)
@api_view(["POST"])
def journey_trigger(request: Request, journey_id: int) -> Response:
    journey = _journey_or_404(journey_id)
    body = _trigger_body(request)
    if not journey.accepts_entries:
        return _conflict(f"The journey is {journey.status}: only a live journey can be triggered.")
    customer = Customer.objects.filter(external_id=body["userId"]).first()
    if customer is None:
        raise NotFound(f"No customer with userId {body['userId']!r}.")
    # Without a messageId every request is a new trigger.
    key = body.get("messageId") or uuid.uuid4().hex
    try:
        result = engine.trigger(journey, customer, properties=body["properties"], key=key)
    except engine.NotApiTriggered as exc:
        return _conflict(f"The journey's entry is not an API trigger: {exc}.")
    return Response({"entered": result.entered, "enrollment_id": result.enrollment_id, "reason": result.reason})


def _trigger_body(request: Request) -> dict:
    serializer = s.TriggerRequestSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
