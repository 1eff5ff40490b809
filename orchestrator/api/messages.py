"""POST /api/v1/messages: send one message now (an order confirmation, a security alert).

The same path as a journey's send node: rendered with the customer's template context,
then ``dispatch()`` (consent, address, frequency governor, ledger) inside one
transaction, delivered after commit (retries, failover: channels_app.retries). With
``channels`` (an ordered fallback list) a channel that refuses (no consent, no address,
held by the governor) hands over to the next; every refusal is reported by channel. A
message that later fails for good (a push subscription gone, an invalid number) hands over
to the channels after it too, once (orchestrator.engine.fallback); `fallbacks` lists each
such hand-over, in this response and its replays.

When no channel can be used now but some are only held back (quiet hours, or a
higher-priority send due at the same moment), nothing is lost: ``held_until`` says when
those channels are tried again, in order, by a one-off django-q2 schedule
(``release_held_send``); the response and its replays then show the message sent.

An ``Idempotency-Key`` header makes retries safe: the same key and body replay the first
response (200, ``Idempotent-Replayed: true``) and send nothing; the same key with another
body is a 409. Access: scope ``manage`` (API key) or ``journeys.edit`` (signed-in user).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

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
from orchestrator.dispatch import FirstSend, Outcome, SendRequest, dispatch_first
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


class FallbackSerializer(serializers.Serializer):
    failed = serializers.DictField(help_text="The message that failed: its id, channel and the reason.")
    id = serializers.UUIDField(allow_null=True, help_text="The message sent instead; null when none was written.")
    channel = serializers.CharField()
    status = serializers.CharField(help_text="Its status when it was written: queued, suppressed or deferred.")
    refusals = serializers.DictField(child=serializers.CharField())
    at = serializers.DateTimeField()
    held_until = serializers.DateTimeField(
        allow_null=True, required=False,
        help_text="Deferred: when the held channels are tried again (then id and status show that send).",
    )


class SentMessageSerializer(serializers.Serializer):
    id = serializers.UUIDField(allow_null=True, help_text="The message's public id; null when none was written.")
    channel = serializers.CharField(allow_null=True)
    status = serializers.CharField(help_text="queued, sent, suppressed, deferred, failed, unknown…")
    refusals = serializers.DictField(child=serializers.CharField(), help_text="Why each channel tried before was not used.")
    held_until = serializers.DateTimeField(
        allow_null=True,
        help_text="Set when no channel could be used now but some were held back (quiet hours): when they are tried"
        " again, in order. Once that has happened, id, channel and status show that send and this is null.",
    )
    fallbacks = FallbackSerializer(many=True, help_text="Each time a message failed for good and the next channel was tried.")


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
    owner = f"key:{request.auth.pk}" if isinstance(request.auth, ApiKey) else f"user:{request.user.pk}"
    if not key:  # a request record all the same: its asynchronous fallback needs one
        return _send(IdempotentRequest(owner=owner, endpoint=ENDPOINT, key=f"auto:{uuid.uuid4().hex}"), customer, body, rendered)
    return _send_once(request, owner, customer, body, rendered, key)


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


def _send_once(request: Request, owner: str, customer: Customer, body: dict, rendered: dict, key: str) -> Response:
    fingerprint = request_hash(request.data)
    record = IdempotentRequest(owner=owner, endpoint=ENDPOINT, key=key, request_hash=fingerprint)
    try:
        return _send(record, customer, body, rendered)
    except IntegrityError:  # the key was used before (or concurrently, and that one committed)
        return _replay(IdempotentRequest.objects.get(owner=owner, endpoint=ENDPOINT, key=key), fingerprint)


def _replay(record: IdempotentRequest, fingerprint: str) -> Response:
    if record.request_hash != fingerprint:
        return error_response(
            "conflict", "This Idempotency-Key was already used with a different request body.",
            [{"field": "Idempotency-Key", "reason": "already used with a different body"}],
            http_status=status.HTTP_409_CONFLICT,
        )
    return Response(_with_fallbacks(record), status=status.HTTP_200_OK, headers={REPLAYED_HEADER: "true"})


def _send(record: IdempotentRequest, customer: Customer, body: dict, rendered: dict) -> Response:
    """The request's record is inserted first, in the same transaction as the sends: a
    concurrent request with its key waits on the unique index, then replays."""
    record.send_key = send_key(record.owner, record.key)
    record.send = {
        "customer_id": customer.pk, "category": body["category"], "template_name": body["template_name"],
        "channels": [[channel, rendered[channel]] for channel in body["channels"]],
    }
    with transaction.atomic():
        record.save(force_insert=True)
        first = dispatch_first(send_requests(record))
        held_until = hold(record, first)
        # Stored before commit, so a replay in the moment before the update below has it.
        record.response_status, record.response_body = status.HTTP_201_CREATED, representation(first, held_until)
        record.save(update_fields=["response_status", "response_body"])
    # After commit the delivery has run (and any fallback it caused): keep the response
    # the caller sees, for replays.
    data = representation(first, held_until)
    IdempotentRequest.objects.filter(pk=record.pk).update(response_body=data)
    record.refresh_from_db(fields=["fallbacks"])
    return Response({**data, "fallbacks": record.fallbacks}, status=status.HTTP_201_CREATED)


RELEASE_FUNC = "orchestrator.api.messages.release_held_send"


def on_customer_erasing(customer_id: int) -> None:
    """The customer's requests keep their keys (a replay still answers, sending nothing),
    not what was sent: the rendered content goes (settings.CHORUS_ERASURE_LISTENERS)."""
    IdempotentRequest.objects.filter(endpoint=ENDPOINT, send__customer_id=customer_id).update(send={})


def hold(record: IdempotentRequest, first: FirstSend, *, after_failure: str = "") -> datetime | None:
    """No channel was used but some were only held back: schedule them to be tried again,
    in order, at the earliest moment the governor gave (a one-off django-q2 schedule, in
    the caller's transaction). ``after_failure``: the public id of the failed message
    whose fallback this was. Returns that moment, or None when nothing is held."""
    if first.used or not first.deferred:
        return None
    from django_q.models import Schedule

    at = min(first.deferred.values())
    Schedule.objects.create(
        name=f"held send {record.pk}"[:100], func=RELEASE_FUNC,
        args=repr((record.pk, list(first.deferred), after_failure)), schedule_type=Schedule.ONCE, next_run=at,
    )
    return at


def release_held_send(record_id: int, channels: list[str], after_failure: str = "", at: datetime | None = None) -> str:
    """Try a request's held channels again, in order (a django-q2 task; ``at`` for tests).
    Their keys are the request's own, so a second run sends nothing twice; still held →
    held again."""
    with transaction.atomic():
        record = IdempotentRequest.objects.select_for_update().filter(pk=record_id).first()
        if record is None or not record.send or not Customer.objects.filter(pk=record.send["customer_id"]).exists():
            return "nothing to do"  # the request or the customer (erased meanwhile) is gone
        requests = [
            replace(r, detail="held back by the frequency governor, released") for r in send_requests(record, at=at)
            if r.channel in channels
        ]
        if not requests:
            return "nothing to do"
        first = dispatch_first(requests)
        if first.result.outcome == Outcome.DUPLICATE:  # released already (a duplicated task)
            return first.result.outcome.value
        result = representation(first, hold(record, first, after_failure=after_failure))
        if after_failure:
            for entry in record.fallbacks:
                if entry["failed"]["id"] == after_failure:
                    entry.update({key: result[key] for key in ("id", "channel", "status", "refusals", "held_until")})
            record.save(update_fields=["fallbacks"])
        else:
            record.response_body = result
            record.save(update_fields=["response_body"])
    return first.result.outcome.value


def send_key(owner: str, key: str) -> str:
    """The prefix of the request's messages' keys, ``<prefix>:<channel>``; a long key is
    hashed, so the message key stays within its 255 characters."""
    prefix = f"api:{owner}:{key}"
    return prefix if len(prefix) <= 200 else f"api:{owner}:sha256:{request_hash(key)}"


def send_requests(record: IdempotentRequest, *, after: str = "", at: datetime | None = None) -> list[SendRequest]:
    """The request's sends, one per channel in its order (only those after channel
    ``after`` when given), each under the key ``<send_key>:<channel>``."""
    send = record.send
    channels = send["channels"]
    if after:
        channels = channels[[channel for channel, _ in channels].index(after) + 1:]
    return [
        SendRequest(
            customer_id=send["customer_id"], channel=channel, category=send["category"], content=content,
            idempotency_key=f"{record.send_key}:{channel}", template_name=send["template_name"], on_cap="skip",
            at=at,
        )
        for channel, content in channels
    ]


def _with_fallbacks(record: IdempotentRequest) -> dict:
    return {**record.response_body, "fallbacks": record.fallbacks}


def representation(first: FirstSend, held_until: datetime | None = None) -> dict:
    """The first result: the message that was queued (or the last refused), and why each
    channel before it was not used; when channels are held, the first of them, deferred
    until ``held_until``."""
    result, refusals = first.result, first.refusals
    held = {"held_until": held_until.isoformat() if held_until else None}
    if held_until is not None:
        return {"id": None, "channel": next(iter(first.deferred)), "status": MessageStatus.DEFERRED.value,
                "refusals": refusals, **held}
    message = Message.objects.filter(pk=result.message_id).values("public_id", "status").first() if result.message_id else None
    if message is None:  # deferred: nothing was written
        return {"id": None, "channel": first.channel, "status": MessageStatus.DEFERRED.value, "refusals": refusals, **held}
    return {"id": str(message["public_id"]), "channel": first.channel, "status": message["status"], "refusals": refusals,
            **held}
