"""The in-app inbox API: an app reads and acts on one customer's inbox.

Two kinds of caller:

- the customer's own backend, with an API key (scope ``read``), mints a customer-scoped
  token: ``POST /api/v1/inbox/<external_id>/token``;
- the app, with that token (``Authorization: Bearer <inbox token>``), lists the inbox and
  marks messages read, clicked or dismissed. The token opens one customer's inbox only.

Listing records the send of each message it shows for the first time (channels_app.inbox).
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from channels_app.inbox import (
    ACTIONS,
    do_mark_inbox_message,
    do_record_seen,
    find_inbox_message,
    inbox_messages,
    unread_count,
)
from channels_app.inbox_tokens import (
    InboxTokenError,
    bearer_token,
    check_inbox_token,
    mint_inbox_token,
)
from customers.api.ingest_schema import ErrorResponse
from customers.api.paging import page_response, validated_query
from customers.api.serializers import PageQuerySerializer
from customers.models import Customer
from orchestrator.api_keys import api_access
from orchestrator.models import ApiScope
from orchestrator.roles import Capability

# --- Authentication ----------------------------------------------------------------------------


class InboxTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <inbox token>``: request.auth is the raw token; the view checks
    it against the customer in the URL (a token is only valid for its own customer)."""

    def authenticate(self, request):
        token = bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
        return (None, token) if token else None

    def authenticate_header(self, request) -> str:
        # Present, so DRF answers a missing or bad token with 401, not 403.
        return 'Bearer realm="chorus-inbox"'


class InboxTokenScheme(OpenApiAuthenticationExtension):
    target_class = "channels_app.api_inbox.InboxTokenAuthentication"
    name = "InboxToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http", "scheme": "bearer", "bearerFormat": "inbox token",
            "description": "A customer-scoped token from `POST /api/v1/inbox/{external_id}/token`, valid 24 hours.",
        }


def _inbox_customer(request: Request, external_id: str) -> Customer:
    """The customer whose inbox this is: the token first (401/403), then the customer (404)."""
    try:
        check_inbox_token(request.auth or "", external_id)
    except InboxTokenError as error:
        if error.status == 403:
            raise exceptions.PermissionDenied(error.reason) from None
        raise exceptions.AuthenticationFailed(error.reason) from None
    return _customer_or_404(external_id)


def _customer_or_404(external_id: str) -> Customer:
    customer = Customer.objects.filter(external_id=external_id).first() if "\x00" not in external_id else None
    if customer is None:
        raise NotFound(f"No customer with external id {external_id!r}.")
    return customer


# --- Serializers ---------------------------------------------------------------------------------


class InboxMessageSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id", help_text="The message's public id.")
    category = serializers.CharField()
    content = serializers.JSONField(help_text="The rendered message: title, body, url, button_label… as authored.")
    created_at = serializers.DateTimeField(source="queued_at")
    sent_at = serializers.DateTimeField(allow_null=True, help_text="When the customer first saw it.")
    read_at = serializers.DateTimeField(source="opened_at", allow_null=True)
    clicked_at = serializers.DateTimeField(allow_null=True)
    dismissed_at = serializers.DateTimeField(allow_null=True)


class InboxPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    unread = serializers.IntegerField(help_text="Messages in the inbox not yet read.")
    results = InboxMessageSerializer(many=True)


class InboxTokenSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    token = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds the token stays valid.")


_EXTERNAL_ID = OpenApiParameter("external_id", str, OpenApiParameter.PATH, description="The customer's external id.")
_PUBLIC_ID = OpenApiParameter("public_id", str, OpenApiParameter.PATH, description="The message's id.")
_ACTION = OpenApiParameter("action", str, OpenApiParameter.PATH, enum=list(ACTIONS))
_TOKEN_ERRORS = {
    401: OpenApiResponse(ErrorResponse, description="No inbox token, or a forged or expired one."),
    403: OpenApiResponse(ErrorResponse, description="The token belongs to another customer."),
    404: OpenApiResponse(ErrorResponse, description="No such customer, or no such message in their inbox."),
}

# --- Endpoints -------------------------------------------------------------------------------------


@extend_schema(
    operation_id="inbox_token_create",
    summary="Mint a customer-scoped inbox token",
    description="For your backend to hand to the customer's app. Requires scope `read` (API key).",
    parameters=[_EXTERNAL_ID],
    request=None,
    responses={
        201: InboxTokenSerializer,
        401: OpenApiResponse(ErrorResponse, description="No or an unknown/revoked API key."),
        403: OpenApiResponse(ErrorResponse, description="The key lacks the `read` scope."),
        404: OpenApiResponse(ErrorResponse, description="No customer has this external id."),
    },
    tags=["inbox"],
)
@api_access(scope=ApiScope.READ.value, capability=Capability.VIEW_CUSTOMERS.value)
@api_view(["POST"])
def inbox_token(request: Request, external_id: str) -> Response:
    customer = _customer_or_404(external_id)
    minted = mint_inbox_token(customer.external_id)
    return Response({"external_id": customer.external_id, "token": minted.token, "expires_in": minted.expires_in},
                    status=201)


@extend_schema(
    operation_id="inbox_list",
    summary="The customer's in-app inbox, newest first",
    description=(
        "In-app messages not dismissed and not expired, with the unread count. The first "
        "listing that shows a message records it as sent."
    ),
    parameters=[_EXTERNAL_ID, PageQuerySerializer],
    responses={200: InboxPageSerializer, 400: OpenApiResponse(ErrorResponse, description="A bad query parameter."),
               **_TOKEN_ERRORS},
    tags=["inbox"],
)
@api_view(["GET"])
@authentication_classes([InboxTokenAuthentication])
@permission_classes([])
def inbox_list(request: Request, external_id: str) -> Response:
    customer = _inbox_customer(request, external_id)
    params = validated_query(PageQuerySerializer, request)
    now = timezone.now()
    queryset = inbox_messages(customer.pk, now=now)
    limit, offset = params["limit"], params["offset"]
    do_record_seen(queryset.values_list("pk", flat=True)[offset : offset + limit], at=now)
    response = page_response(request, queryset, params, InboxMessageSerializer)
    response.data["unread"] = unread_count(customer.pk, now=now)
    return response


@extend_schema(
    operation_id="inbox_message_mark",
    summary="Mark a message read, clicked or dismissed",
    description="Idempotent: marking twice changes nothing more. A message never moves backwards (read after clicked stays clicked).",
    parameters=[_EXTERNAL_ID, _PUBLIC_ID, _ACTION],
    request=None,
    responses={200: InboxMessageSerializer, **_TOKEN_ERRORS},
    tags=["inbox"],
)
@api_view(["POST"])
@authentication_classes([InboxTokenAuthentication])
@permission_classes([])
def inbox_mark(request: Request, external_id: str, public_id: str, action: str) -> Response:
    customer = _inbox_customer(request, external_id)
    if action not in ACTIONS:
        raise NotFound(f"No action {action!r}: use one of {', '.join(ACTIONS)}.")
    message = find_inbox_message(customer.pk, public_id)
    if message is None:
        raise NotFound(f"No in-app message {public_id!r} in this customer's inbox.")
    return Response(InboxMessageSerializer(do_mark_inbox_message(message, action)).data)
