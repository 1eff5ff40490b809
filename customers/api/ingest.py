"""Ingestion endpoints (the Segment tracking spec): identify, track, page, screen and batch.

page and screen calls are stored as events ("Page Viewed", "Screen Viewed"); in a batch,
group and alias calls are acknowledged and counted as ignored, not stored.

Thin views: read the body once, validate it with plain Python, call the service in
``customers.ingestion``. Field errors come before size errors, so a producer learns which
field is too long rather than only that the body was; bodies over Django's hard cap
(``DATA_UPLOAD_MAX_MEMORY_SIZE``) are refused before they are read.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from customers import ingestion
from customers.api import ingest_schema as schema
from customers.api.ingest_validation import (
    MAX_BATCH_BYTES,
    MAX_REPORTED_ERRORS,
    MAX_SINGLE_BYTES,
    MalformedJSON,
    parse_json,
    validate_batch,
    validate_single,
)
from orchestrator.api_errors import error_response
from orchestrator.api_keys import api_access, request_source

SUCCESS = {"success": True}
INGEST_SCOPE = "ingest"


@extend_schema(
    summary="Identify a customer (Segment identify)",
    description=f"Creates the customer on first sight and merges traits. {schema.LIMITS}",
    request=schema.IdentifyRequest,
    responses={200: schema.SuccessResponse, **schema.ERROR_RESPONSES},
    examples=[schema.IDENTIFY_EXAMPLE, schema.INVALID_EXAMPLE],
    tags=["ingestion"],
    auth=[{"ApiKey": []}],
)
@api_access(scope=INGEST_SCOPE, capability=None)  # people may not ingest, only keys
@api_view(["POST"])
def identify(request: Request) -> Response:
    return _single(request, "identify", ingestion.do_identify)


@extend_schema(
    summary="Record an event (Segment track)",
    description=f"Creates the customer on first sight and stores the event. {schema.LIMITS}",
    request=schema.TrackRequest,
    responses={200: schema.SuccessResponse, **schema.ERROR_RESPONSES},
    examples=[schema.TRACK_EXAMPLE, schema.INVALID_EXAMPLE],
    tags=["ingestion"],
    auth=[{"ApiKey": []}],
)
@api_access(scope=INGEST_SCOPE, capability=None)  # people may not ingest, only keys
@api_view(["POST"])
def track(request: Request) -> Response:
    return _single(request, "track", ingestion.do_track)


@extend_schema(
    summary="Record a page view (Segment page)",
    description=(
        'Stored as the event "Page Viewed", whose properties are the call\'s properties plus '
        f"its name and category (a property of the same name wins). {schema.LIMITS}"
    ),
    request=schema.PageRequest,
    responses={200: schema.SuccessResponse, **schema.ERROR_RESPONSES},
    examples=[schema.PAGE_EXAMPLE, schema.INVALID_EXAMPLE],
    tags=["ingestion"],
    auth=[{"ApiKey": []}],
)
@api_access(scope=INGEST_SCOPE, capability=None)  # people may not ingest, only keys
@api_view(["POST"])
def page(request: Request) -> Response:
    return _single(request, "page", ingestion.do_track)


@extend_schema(
    summary="Record a screen view (Segment screen)",
    description=(
        'Stored as the event "Screen Viewed", whose properties are the call\'s properties plus '
        f"its name and category (a property of the same name wins). {schema.LIMITS}"
    ),
    request=schema.ScreenRequest,
    responses={200: schema.SuccessResponse, **schema.ERROR_RESPONSES},
    examples=[schema.SCREEN_EXAMPLE, schema.INVALID_EXAMPLE],
    tags=["ingestion"],
    auth=[{"ApiKey": []}],
)
@api_access(scope=INGEST_SCOPE, capability=None)  # people may not ingest, only keys
@api_view(["POST"])
def screen(request: Request) -> Response:
    return _single(request, "screen", ingestion.do_track)


@extend_schema(
    summary="Segment calls in bulk (Segment batch)",
    description=(
        "Atomic: if any item is invalid nothing is stored, and the 400 lists every bad item's "
        "field as batch.<index>.<field>. identify, track, page and screen calls are stored; "
        "group and alias calls are checked for a valid type, then acknowledged and counted as "
        f"ignored (Chorus has no groups and does not merge aliases). {schema.LIMITS}"
    ),
    request=schema.BatchRequest,
    responses={200: schema.BatchResponse, **schema.ERROR_RESPONSES},
    examples=[schema.BATCH_EXAMPLE, schema.INVALID_EXAMPLE],
    tags=["ingestion"],
    auth=[{"ApiKey": []}],
)
@api_access(scope=INGEST_SCOPE, capability=None)  # people may not ingest, only keys
@api_view(["POST"])
def batch(request: Request) -> Response:
    received_at = timezone.now()
    body, data, refusal = _read_json(request, MAX_BATCH_BYTES)
    if refusal:
        return refusal
    calls, ignored, errors = validate_batch(data, received_at)
    if errors:
        return _invalid(errors)
    if len(body) > MAX_BATCH_BYTES:
        return _too_large(len(body), MAX_BATCH_BYTES)
    result = ingestion.do_ingest_batch(
        calls, source=request_source(request), received_at=received_at
    )
    return Response(
        {
            "success": True,
            "received": result.received + ignored,
            "stored": result.stored,
            "duplicates": result.duplicates,
            "ignored": ignored,
        }
    )


def _single(request: Request, kind: str, service) -> Response:
    received_at = timezone.now()
    body, data, refusal = _read_json(request, MAX_SINGLE_BYTES)
    if refusal:
        return refusal
    call, errors = validate_single(data, kind, received_at)
    if errors:
        return _invalid(errors)
    if len(body) > MAX_SINGLE_BYTES:
        return _too_large(len(body), MAX_SINGLE_BYTES)
    service(call, source=request_source(request), received_at=received_at)
    return Response(SUCCESS)


def _read_json(request: Request, limit: int) -> tuple[bytes, object, Response | None]:
    """(body, parsed JSON, None), or a refusal: 413 over the hard cap, 400 on malformed JSON."""
    hard_cap = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if hard_cap is not None and declared > hard_cap:
        return b"", None, _too_large(declared, limit)
    try:
        body = request.body
    except RequestDataTooBig:
        return b"", None, _too_large(None, limit)
    try:
        return body, parse_json(body), None
    except MalformedJSON as exc:
        return body, None, error_response("malformed", str(exc))


def _invalid(errors: list[dict]) -> Response:
    count = len(errors)
    message = (
        f"The request has {count} invalid field{'s' if count != 1 else ''}; nothing was stored."
    )
    if count > MAX_REPORTED_ERRORS:
        message += f" The first {MAX_REPORTED_ERRORS} are listed."
    return error_response("invalid", message, errors[:MAX_REPORTED_ERRORS])


def _too_large(size: int | None, limit: int) -> Response:
    size_text = f"{size:,} bytes" if size is not None else "too large"
    return error_response(
        "too_large",
        f"The request body is {size_text}; the limit for this endpoint is {limit:,} bytes.",
        [{"field": "body", "reason": f"must be at most {limit:,} bytes"}],
        http_status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )
