"""POST /api/v1/journeys/{id}/simulate: what the journey would do to one customer.

The request scripts a customer and timed events; the answer is the timeline the real
engine produced under a virtual clock, in a transaction that was rolled back (see
orchestrator.engine.simulator). Same access as editing a journey: an API key with scope
``manage``, or a signed-in user with ``journeys.edit``, since simulating is how a draft is
tried out before publishing.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from customers.api.ingest_schema import ErrorResponse
from journeys import graph as graphs
from orchestrator.api.journeys import (
    _EDIT_ACCESS,
    _ERRORS,
    _JOURNEY_ID,
    _NOT_FOUND,
    EDIT,
    SCOPE,
    _journey_or_404,
    _problem_field,
)
from orchestrator.api_errors import error_response
from orchestrator.api_keys import api_access
from orchestrator.engine.simulator import SimulationInputError, parse_simulation, simulate

# --- Documented bodies (parse_simulation validates; these describe it for the schema) -------


class SimulationInlineCustomerSerializer(serializers.Serializer):
    timezone = serializers.CharField(required=False, help_text="IANA zone; default CHORUS_DEFAULT_TIMEZONE.")
    email = serializers.EmailField(required=False)
    phone = serializers.CharField(required=False, help_text="E.164, e.g. +12125550117.")
    locale = serializers.CharField(required=False)
    traits = serializers.DictField(required=False)
    push = serializers.BooleanField(required=False, help_text="Give the customer a push device.")


class SimulationCustomerSerializer(serializers.Serializer):
    external_id = serializers.CharField(required=False, help_text="An existing customer (their data is not changed).")
    inline = SimulationInlineCustomerSerializer(required=False, help_text="Or a customer described here.")


class SimulationEventSerializer(serializers.Serializer):
    at = serializers.CharField(help_text="An ISO time with offset, or an offset from start: +45m, +2h, +1d, +1d2h.")
    name = serializers.CharField(max_length=200)
    properties = serializers.DictField(required=False)


class SimulationRequestSerializer(serializers.Serializer):
    customer = SimulationCustomerSerializer(help_text="Exactly one of external_id or inline.")
    start = serializers.DateTimeField(required=False, help_text="Default: now.")
    events = SimulationEventSerializer(many=True, required=False, help_text="At most 200, between start and until.")
    until = serializers.CharField(required=False, help_text="ISO time or offset; default start + 30 days, at most 90.")
    holdout = serializers.BooleanField(required=False, help_text="Simulate a control-group entrant (sent nothing).")
    trigger = serializers.DictField(required=False, help_text="Properties of the trigger, for API-entry journeys.")


class SimulationMessageSerializer(serializers.Serializer):
    channel = serializers.CharField()
    status = serializers.CharField(help_text="queued (would be sent) or suppressed.")
    content = serializers.DictField(help_text="The rendered content.")


class SimulationEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField(help_text="The node's kind, `goal` for a conversion, or `event` for a scripted event.")
    node_id = serializers.CharField(required=False)
    node_label = serializers.CharField(required=False)
    outcome = serializers.CharField(required=False, help_text="entered, delayed, sent, waiting, happened, timed_out…")
    port = serializers.CharField(required=False)
    detail = serializers.CharField(required=False)
    message = SimulationMessageSerializer(required=False, allow_null=True)
    name = serializers.CharField(required=False, help_text="Scripted events: the event's name.")
    properties = serializers.DictField(required=False, help_text="Scripted events: its properties.")


class SimulationSummarySerializer(serializers.Serializer):
    entered = serializers.BooleanField()
    exited = serializers.BooleanField()
    exit_reason = serializers.CharField(allow_null=True)
    converted = serializers.BooleanField()
    conversion_value = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    touch_sequence = serializers.ListField(child=serializers.CharField(), help_text="Channels credited (or sent), in order.")
    path = serializers.ListField(child=serializers.CharField(), help_text="Node ids visited, in order.")
    truncated = serializers.BooleanField(help_text="Cut short after too many moments.")


class SimulationResponseSerializer(serializers.Serializer):
    timeline = SimulationEntrySerializer(many=True)
    summary = SimulationSummarySerializer()


# --- The view -------------------------------------------------------------------------------


@extend_schema(
    operation_id="journeys_simulate",
    summary="Simulate the journey for one customer and a script of events",
    description=(
        "Runs the real engine on the draft graph (else the live one) under a virtual clock, "
        "in a transaction that is rolled back: nothing is stored and nothing is sent. The "
        "journey need not be live. Answers the timeline (each step, send with its rendered "
        "content, wait and its outcome, scripted event, exit) and a summary." + _EDIT_ACCESS
    ),
    parameters=[_JOURNEY_ID],
    request=SimulationRequestSerializer,
    responses={
        200: SimulationResponseSerializer,
        400: OpenApiResponse(
            ErrorResponse,
            description="Invalid fields (`invalid`, each named), or a graph that cannot run (`invalid_graph`, each problem).",
        ),
        **_NOT_FOUND, **_ERRORS,
    },
    tags=["journeys"],
)
@api_access(scope=SCOPE, capability=EDIT)
@api_view(["POST"])
def simulate_journey(request: Request, journey_id: int) -> Response:
    journey = _journey_or_404(journey_id)
    try:
        result = simulate(journey, parse_simulation(request.data))
    except SimulationInputError as exc:
        fields = [{"field": name or None, "reason": reason} for name, reason in exc.fields]
        return error_response("invalid", "The simulation has invalid fields; nothing was simulated.", fields)
    except graphs.InvalidGraph as exc:
        message = f"The graph cannot be simulated: {len(exc.problems)} problem(s)."
        return error_response("invalid_graph", message, [_problem_field(p) for p in exc.problems])
    return Response(result.to_json())

