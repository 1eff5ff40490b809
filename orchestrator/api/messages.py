"""POST /api/v1/messages: send one message now (an order confirmation, a security alert).

The same path as a journey's send node: rendered with the customer's template context,
then ``dispatch()`` (consent, address, frequency governor, ledger) inside one
transaction, delivered after commit (retries, failover: channels_app.retries). With
``channels`` (an ordered fallback list) a channel that refuses (no consent, no address,
held by the governor) hands over to the next; every refusal is reported by channel.

An ``Idempotency-Key`` header makes retries safe: the same key and body replay the first
response (200, ``Idempotent-Replayed: true``) and send nothing; the same key with another
body is a 409. Access: scope ``manage`` (API key) or ``journeys.edit`` (signed-in user).
"""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from channels_app.models import Message, MessageStatus
from channels_app.templating import TemplateError, render_content, template_context
from customers.api.ingest_schema import ErrorResponse
from customers.enums import Category, Channel
from customers.models import Customer
from orchestrator.api.idempotency import IdempotentRequest, request_hash
from orchestrator.api_errors import error_response
from orchestrator.api_keys import api_access
from orchestrator.dispatch import Outcome, SendRequest, dispatch
from orchestrator.models import ApiKey, ApiScope
from orchestrator.roles import Capability
from orchestrator.schema import EnumChoiceField

ENDPOINT = "messages"
REPLAYED_HEADER = "Idempotent-Replayed"


class SendMessageSerializer(serializers.Serializer):
    customer = serializers.CharField(max_length=255, help_text="The customer's external id (userId).")
    channel = EnumChoiceField(Channel, required=False, help_text="One channel; or give `channels`.")
    channels = serializers.ListField(
        child=EnumChoiceField(Channel), required=False, min_length=1, max_length=4,
        help_text="Channels to try in order: the first that may reach the customer is used.",
    )
    category = EnumChoiceField(Category)
    content = serializers.DictField(
        child=serializers.DictField(child=serializers.CharField(allow_blank=True)),
        help_text='Per channel, its fields (Liquid templates), e.g. {"sms": {"body": "Order {{ trigger.order }} shipped"}}.',
    )
    data = serializers.DictField(required=False, default=dict, help_text="Seen by templates as `trigger`.")
    template_name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)

    def validate(self, attrs):
        if ("channel" in attrs) == ("channels" in attrs):
            raise ValidationError({"channel": ["Give exactly one of channel or channels."]})
        attrs["channels"] = list(dict.fromkeys(attrs.get("channels") or [attrs.pop("channel")]))
        missing = [c for c in attrs["channels"] if c not in attrs["content"]]
        if missing:
            raise ValidationError({f"content.{c}": ["Content is required for this channel."] for c in missing})
        return attrs


class SentMessageSerializer(serializers.Serializer):
    id = serializers.UUIDField(allow_null=True, help_text="The message's public id; null when none was written.")
    channel = serializers.CharField(allow_null=True)
    status = serializers.CharField(help_text="queued, sent, suppressed, deferred, failed, unknown…")
    refusals = serializers.DictField(child=serializers.CharField(), help_text="Why each channel tried before was not used.")


@extend_schema(
    operation_id="messages_send",
    summary="Send one message now",
    description=__doc__.split("\n\n", 1)[1],
    parameters=[
        OpenApiParameter(
            "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
            description="Any unique string (at most 255 characters): a retry with it sends nothing again.",
        )
    ],
    request=SendMessageSerializer,
    responses={
        200: OpenApiResponse(SentMessageSerializer, description="A replay of the first response to this key."),
        201: SentMessageSerializer,
        400: OpenApiResponse(ErrorResponse, description="Invalid fields, each named; nothing was sent."),
        401: OpenApiResponse(ErrorResponse, description="No or an unknown/revoked API key."),
        403: OpenApiResponse(ErrorResponse, description="The key lacks the scope, or the user the capability."),
        404: OpenApiResponse(ErrorResponse, description="No customer has this external id."),
        409: OpenApiResponse(ErrorResponse, description="The Idempotency-Key was used with a different body."),
        429: OpenApiResponse(ErrorResponse, description="Over the key's per-minute limit; see Retry-After."),
    },
    tags=["messages"],
)
@api_access(scope=ApiScope.MANAGE.value, capability=Capability.EDIT_JOURNEYS.value)
@api_view(["POST"])
def send_message(request: Request) -> Response:
    serializer = SendMessageSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    body = serializer.validated_data
    customer = Customer.objects.filter(external_id=body["customer"]).first()
    if customer is None:
        raise NotFound(f"No customer with external id {body['customer']!r}.")
    rendered = _rendered(customer, body)
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > 255:
        raise ValidationError({"Idempotency-Key": ["At most 255 characters."]})
    if not key:
        return _send(customer, body, rendered, f"api:{uuid.uuid4().hex}")
    return _send_once(request, customer, body, rendered, key)


def _rendered(customer: Customer, body: dict) -> dict[str, dict]:
    context = template_context(customer, trigger=body["data"])
    rendered, errors = {}, {}
    for channel in body["channels"]:
        try:
            rendered[channel] = render_content(channel, body["content"][channel], context)
        except TemplateError as error:
            errors[f"content.{channel}"] = [str(error)]
    if errors:
        raise ValidationError(errors)
    return rendered


def _send_once(request: Request, customer: Customer, body: dict, rendered: dict, key: str) -> Response:
    owner = f"key:{request.auth.pk}" if isinstance(request.auth, ApiKey) else f"user:{request.user.pk}"
    fingerprint = request_hash(request.data)
    try:
        with transaction.atomic():
            record = IdempotentRequest.objects.create(owner=owner, endpoint=ENDPOINT, key=key, request_hash=fingerprint)
            sent = _dispatch_in_order(customer, body, rendered, f"api:{owner}:{key}")
            # Stored before commit, so a replay in the moment before the update below has it.
            record.response_status, record.response_body = status.HTTP_201_CREATED, _representation(*sent)
            record.save(update_fields=["response_status", "response_body"])
    except IntegrityError:  # the key was used before (or concurrently, and that one committed)
        return _replay(IdempotentRequest.objects.get(owner=owner, endpoint=ENDPOINT, key=key), fingerprint)
    # After commit the delivery has run: keep the response the caller sees, for replays.
    data = _representation(*sent)
    IdempotentRequest.objects.filter(pk=record.pk).update(response_body=data)
    return Response(data, status=status.HTTP_201_CREATED)


def _replay(record: IdempotentRequest, fingerprint: str) -> Response:
    if record.request_hash != fingerprint:
        return error_response(
            "conflict", "This Idempotency-Key was already used with a different request body.",
            [{"field": "Idempotency-Key", "reason": "already used with a different body"}],
            http_status=status.HTTP_409_CONFLICT,
        )
    return Response(record.response_body, status=status.HTTP_200_OK, headers={REPLAYED_HEADER: "true"})


def _send(customer: Customer, body: dict, rendered: dict, key: str) -> Response:
    with transaction.atomic():
        sent = _dispatch_in_order(customer, body, rendered, key)
    return Response(_representation(*sent), status=status.HTTP_201_CREATED)  # after commit: delivery ran


def _dispatch_in_order(customer: Customer, body: dict, rendered: dict, key: str) -> tuple:
    """Each channel in order until one queues; (message id, channel, outcome, refusals)."""
    refusals: dict[str, str] = {}
    message_id, channel, outcome = None, None, Outcome.SUPPRESSED
    for channel in body["channels"]:
        result = dispatch(SendRequest(
            customer_id=customer.pk, channel=channel, category=body["category"], content=rendered[channel],
            idempotency_key=f"{key}:{channel}", template_name=body["template_name"], on_cap="skip",
        ))
        message_id, outcome = result.message_id, result.outcome
        if outcome in (Outcome.QUEUED, Outcome.DUPLICATE):
            break
        refusals[channel] = result.reason
    return message_id, channel, outcome, refusals


def _representation(message_id: int | None, channel: str | None, outcome: Outcome, refusals: dict) -> dict:
    message = Message.objects.filter(pk=message_id).values("public_id", "status").first() if message_id else None
    if message is None:  # deferred: nothing was written
        return {"id": None, "channel": channel, "status": MessageStatus.DEFERRED.value, "refusals": refusals}
    return {"id": str(message["public_id"]), "channel": channel, "status": message["status"], "refusals": refusals}
