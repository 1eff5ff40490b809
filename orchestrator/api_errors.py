"""One JSON error shape for the whole API.

Every 4xx body is ``{"error": {"code": ..., "message": ..., "fields": [...]}}`` where each
field entry names the field (a dotted path, with ``batch.3.userId`` style indices) and the
reason, so a producer can fix its payload without reading our code.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def flatten_errors(detail, path: str = "") -> list[dict]:
    """Turn DRF's nested ``detail`` into a flat list of ``{"field", "reason"}``."""
    if isinstance(detail, dict):
        out: list[dict] = []
        for key, value in detail.items():
            key = str(key)
            sub = key if key == "non_field_errors" and not path else (f"{path}.{key}" if path else key)
            if key == "non_field_errors" and path:
                sub = path
            out.extend(flatten_errors(value, sub))
        return out
    if isinstance(detail, list):
        if all(not isinstance(d, (dict, list)) for d in detail):
            return [{"field": path or None, "reason": str(d)} for d in detail]
        out = []
        for index, value in enumerate(detail):
            if value:
                out.extend(flatten_errors(value, f"{path}.{index}" if path else str(index)))
        return out
    return [{"field": path or None, "reason": str(detail)}]


def error_body(code: str, message: str, fields: list[dict] | None = None) -> dict:
    body: dict = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    return body


def exception_handler(exc, context):
    # DRF turns Django's Http404 and PermissionDenied into its own exceptions only inside its
    # handler; convert first so they get our shape too (get_object_or_404 raises Http404).
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_errors(exc.detail)
        response.data = error_body("invalid", "The request has invalid fields.", fields)
    elif isinstance(exc, exceptions.ParseError):
        response.data = error_body("malformed", str(exc.detail))
    elif isinstance(exc, exceptions.Throttled):
        response.data = error_body("rate_limited", str(exc.detail))
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        code = exc.detail.code if isinstance(exc.detail, exceptions.ErrorDetail) else exc.default_code
        response.data = error_body(code or exc.default_code, detail)
    return response


def error_response(code: str, message: str, fields: list[dict] | None = None, http_status: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response(error_body(code, message, fields), status=http_status)
