"""OpenAPI documentation of the ingestion endpoints.

These serializers only describe payloads for drf-spectacular; requests are validated by
``customers.api.ingest_validation`` (plain Python, fast enough for the hot path).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from customers.api.ingest_validation import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ITEMS,
    MAX_EVENT_NAME_LENGTH,
    MAX_ID_LENGTH,
    MAX_KEY_LENGTH,
    MAX_NESTING_DEPTH,
    MAX_SINGLE_BYTES,
    MAX_STRING_LENGTH,
    SUPPORTED_TYPES,
)

LIMITS = (
    f"Limits: body ≤ {MAX_SINGLE_BYTES // 1024} KB for identify/track/page/screen and ≤ {MAX_BATCH_BYTES // 1024} KB "
    f"for a batch (413 over it); ≤ {MAX_BATCH_ITEMS} items per batch; in traits and properties, keys "
    f"≤ {MAX_KEY_LENGTH} characters, string values ≤ {MAX_STRING_LENGTH:,} characters, nesting ≤ "
    f"{MAX_NESTING_DEPTH} levels, no NUL characters. userId and messageId ≤ {MAX_ID_LENGTH} characters. "
    "The time stored (timestamp, or originalTimestamp corrected by sentAt) must be ISO-8601 with an "
    "offset, between 2000-01-01 and 24 hours after the request is received."
)


class _CommonFields(serializers.Serializer):
    userId = serializers.CharField(
        max_length=MAX_ID_LENGTH,
        help_text="Your id for the customer (an integer is accepted and stored as a string). "
        "Required: anonymousId alone does not identify a customer.",
    )
    anonymousId = serializers.CharField(required=False, help_text="Accepted and ignored.")
    messageId = serializers.CharField(
        required=False,
        max_length=MAX_ID_LENGTH,
        help_text="Deduplication id, unique per API key source: a repeat is accepted and stores nothing.",
    )
    timestamp = serializers.DateTimeField(
        required=False,
        help_text="When it happened, ISO-8601 with a UTC offset. Defaults to originalTimestamp "
        "corrected by sentAt, then to the time received.",
    )
    originalTimestamp = serializers.DateTimeField(required=False)
    sentAt = serializers.DateTimeField(required=False)
    context = serializers.DictField(
        required=False, help_text="Segment context; `timezone` (IANA) and `locale` are used."
    )


class IdentifyRequest(_CommonFields):
    type = serializers.ChoiceField(choices=["identify"], required=False)
    traits = serializers.DictField(
        required=False,
        help_text="Merged into the customer's traits. `email`, `phone` (E.164), `timezone` (IANA) "
        "and `locale` set the customer's columns and contact points.",
    )


class TrackRequest(_CommonFields):
    type = serializers.ChoiceField(choices=["track"], required=False)
    event = serializers.CharField(max_length=MAX_EVENT_NAME_LENGTH)
    properties = serializers.DictField(required=False)


class _ViewRequest(_CommonFields):
    name = serializers.CharField(
        required=False,
        max_length=MAX_STRING_LENGTH,
        help_text="Stored as the event's `name` property (unless properties has one).",
    )
    category = serializers.CharField(
        required=False,
        max_length=MAX_STRING_LENGTH,
        help_text="Stored as the event's `category` property (unless properties has one).",
    )
    properties = serializers.DictField(required=False)


class PageRequest(_ViewRequest):
    type = serializers.ChoiceField(choices=["page"], required=False)


class ScreenRequest(_ViewRequest):
    type = serializers.ChoiceField(choices=["screen"], required=False)


class BatchItem(_CommonFields):
    type = serializers.ChoiceField(choices=list(SUPPORTED_TYPES))
    userId = serializers.CharField(
        required=False,
        max_length=MAX_ID_LENGTH,
        help_text="Required for identify, track, page and screen (see the single-call endpoints).",
    )
    event = serializers.CharField(required=False, help_text="Required for track.")
    name = serializers.CharField(required=False, help_text="page and screen.")
    category = serializers.CharField(required=False, help_text="page and screen.")
    properties = serializers.DictField(required=False, help_text="track, page and screen.")
    traits = serializers.DictField(required=False, help_text="identify only.")


class BatchRequest(serializers.Serializer):
    batch = BatchItem(
        many=True,
        help_text=f"At most {MAX_BATCH_ITEMS} calls: identify, track, page and screen are stored; "
        "group and alias are only checked for their type, then ignored.",
    )
    context = serializers.DictField(required=False, help_text="Defaults for every item's context.")


class SuccessResponse(serializers.Serializer):
    success = serializers.BooleanField()


class BatchResponse(SuccessResponse):
    received = serializers.IntegerField(help_text="Items in the batch.")
    stored = serializers.IntegerField(help_text="Items stored.")
    duplicates = serializers.IntegerField(help_text="Items whose messageId was already stored.")
    ignored = serializers.IntegerField(
        help_text="group and alias items: acknowledged, not stored. stored + duplicates + "
        "ignored = received."
    )


class FieldError(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="Dotted path, e.g. batch.3.userId.")
    reason = serializers.CharField()


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField(help_text="invalid, malformed, too_large, not_authenticated, …")
    message = serializers.CharField()
    fields = FieldError(many=True, required=False)


class ErrorResponse(serializers.Serializer):
    error = ErrorDetail()


ERROR_RESPONSES = {
    400: ErrorResponse,
    401: ErrorResponse,
    403: ErrorResponse,
    413: ErrorResponse,
    429: ErrorResponse,
}

IDENTIFY_EXAMPLE = OpenApiExample(
    "identify",
    request_only=True,
    value={
        "userId": "u_123",
        "messageId": "m-1",
        "timestamp": "2026-11-23T20:14:00Z",
        "traits": {"email": "ana@example.com", "phone": "+14155550101", "first_name": "Ana"},
        "context": {"timezone": "America/New_York", "locale": "en-US"},
    },
)
TRACK_EXAMPLE = OpenApiExample(
    "track",
    request_only=True,
    value={
        "userId": "u_123",
        "event": "Order Completed",
        "messageId": "m-2",
        "timestamp": "2026-11-23T20:14:00Z",
        "properties": {"revenue": 415, "currency": "USD"},
    },
)
PAGE_EXAMPLE = OpenApiExample(
    "page",
    request_only=True,
    value={
        "userId": "u_123",
        "name": "Pricing",
        "category": "Marketing",
        "messageId": "m-3",
        "timestamp": "2026-11-23T20:15:00Z",
        "properties": {"url": "https://example.com/pricing", "referrer": "https://google.com/"},
    },
)
SCREEN_EXAMPLE = OpenApiExample(
    "screen",
    request_only=True,
    value={
        "userId": "u_123",
        "name": "Checkout",
        "messageId": "m-4",
        "timestamp": "2026-11-23T20:16:00Z",
        "properties": {"step": 2},
    },
)
BATCH_EXAMPLE = OpenApiExample(
    "batch",
    request_only=True,
    value={
        "batch": [
            {"type": "identify", **IDENTIFY_EXAMPLE.value},
            {"type": "track", **TRACK_EXAMPLE.value},
            {"type": "page", **PAGE_EXAMPLE.value},
            {"type": "group", "userId": "u_123", "groupId": "g_1", "messageId": "m-5"},
        ]
    },
)
INVALID_EXAMPLE = OpenApiExample(
    "invalid",
    response_only=True,
    status_codes=["400"],
    value={
        "error": {
            "code": "invalid",
            "message": "The request has 1 invalid field; nothing was stored.",
            "fields": [{"field": "batch.3.userId", "reason": "is required"}],
        }
    },
)
