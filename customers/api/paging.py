"""Query parameters and limit/offset pages shared by the API's list endpoints."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.utils.urls import remove_query_param, replace_query_param


def validated_query(serializer_class: type[Serializer], request: Request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def page_response(request: Request, queryset: QuerySet, params: dict, serializer_class) -> Response:
    """One limit/offset page; skips the row query when the page is empty."""
    limit, offset = params["limit"], params["offset"]
    count = queryset.count()
    rows = list(queryset[offset : offset + limit]) if offset < count else []
    url = request.build_absolute_uri()
    next_url = previous_url = None
    if offset + limit < count:
        next_url = replace_query_param(replace_query_param(url, "limit", limit), "offset", offset + limit)
    if offset > 0:
        previous = replace_query_param(url, "limit", limit)
        previous_url = (
            remove_query_param(previous, "offset")
            if offset <= limit
            else replace_query_param(previous, "offset", offset - limit)
        )
    data = serializer_class(rows, many=True, context={"request": request}).data
    return Response({"count": count, "next": next_url, "previous": previous_url, "results": data})
