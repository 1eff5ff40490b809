"""Read-side serializers of the customers API: query parameters in, representations out.

Ingestion payloads are validated elsewhere (customers/api/ingest_validation.py); nothing here writes,
except ``ConsentChangeSerializer``, which only validates a change for ``do_set_consent``.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from channels_app.models import Message, MessageStatus, MessageTransition
from customers.enums import Category, Channel, ConsentStatus, PushPlatform, consent_status_problem
from customers.models import ConsentChange, ContactPoint, Customer, Event
from customers.validators import validate_timezone
from orchestrator.schema import EnumChoiceField

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
CONSENT_HISTORY_LENGTH = 50


# --- Query parameters ----------------------------------------------------------------------


class QueryDateTimeField(serializers.DateTimeField):
    """ISO-8601 date or date-time; naive values are UTC.

    An unencoded ``+02:00`` offset arrives as `` 02:00`` (a form-encoded ``+`` is a space),
    so a space before the offset is read back as the ``+`` it was meant to be.
    """

    def to_internal_value(self, value):
        if isinstance(value, str) and " " in value.strip() and "T" in value:
            value = value.strip().replace(" ", "+")
        return super().to_internal_value(value)


class PageQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(
        required=False, default=DEFAULT_PAGE_SIZE, min_value=1, max_value=MAX_PAGE_SIZE,
        help_text=f"Results per page (1–{MAX_PAGE_SIZE}).",
    )
    offset = serializers.IntegerField(
        required=False, default=0, min_value=0, help_text="Index of the first result."
    )


CUSTOMER_ORDERINGS = {
    "last_seen_at": ("last_seen_at", "id"),
    "-last_seen_at": ("-last_seen_at", "id"),
    "first_seen_at": ("first_seen_at", "id"),
    "-first_seen_at": ("-first_seen_at", "id"),
    "created_at": ("created_at", "id"),
    "-created_at": ("-created_at", "id"),
    "external_id": ("external_id",),
    "-external_id": ("-external_id",),
}


class CustomerListQuerySerializer(PageQuerySerializer):
    q = serializers.CharField(
        required=False, max_length=200, trim_whitespace=True,
        help_text="Case-insensitive substring of external id, email, phone, first/last/full name.",
    )
    timezone = serializers.CharField(
        required=False, max_length=64, validators=[validate_timezone],
        help_text="IANA time zone name, exact (e.g. Europe/Paris).",
    )
    seen_since = QueryDateTimeField(required=False, help_text="last_seen_at at or after (ISO-8601).")
    seen_before = QueryDateTimeField(required=False, help_text="last_seen_at strictly before (ISO-8601).")
    has_channel = EnumChoiceField(Channel, required=False,
        help_text="Only customers with an enabled contact point on this channel.",
    )
    consent = serializers.CharField(
        required=False, max_length=64,
        help_text="channel:category:status, e.g. sms:marketing:opted_out.",
    )
    ordering = serializers.ChoiceField(
        choices=list(CUSTOMER_ORDERINGS), required=False, default="-last_seen_at",
        help_text="Sort order; a leading '-' is descending.",
    )

    def validate_consent(self, value: str) -> tuple[str, str, str]:
        parts = value.split(":")
        if len(parts) != 3:
            raise serializers.ValidationError("expected channel:category:status, e.g. sms:marketing:opted_out")
        for part, enum, what in zip(parts, (Channel, Category, ConsentStatus), ("channel", "category", "status"), strict=True):
            if part not in enum.values:
                raise serializers.ValidationError(
                    f"unknown {what} {part!r}; choose from {', '.join(enum.values)}"
                )
        return parts[0], parts[1], parts[2]

    def validate(self, attrs):
        since, before = attrs.get("seen_since"), attrs.get("seen_before")
        if since and before and since >= before:
            raise serializers.ValidationError({"seen_before": ["must be later than seen_since"]})
        return attrs


class _TimeRangeQuerySerializer(PageQuerySerializer):
    since = QueryDateTimeField(required=False, help_text="At or after (ISO-8601).")
    until = QueryDateTimeField(required=False, help_text="Strictly before (ISO-8601).")

    def validate(self, attrs):
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since >= until:
            raise serializers.ValidationError({"until": ["must be later than since"]})
        return attrs


class EventQuerySerializer(_TimeRangeQuerySerializer):
    name = serializers.CharField(required=False, max_length=200, help_text="Exact event name.")


class MessageQuerySerializer(_TimeRangeQuerySerializer):
    channel = EnumChoiceField(Channel, required=False)
    status = EnumChoiceField(MessageStatus, required=False)


# --- Representations -----------------------------------------------------------------------


def mask_push_address(address: str) -> str:
    """Enough of a push endpoint or device token to tell devices apart, never all of it."""
    if len(address) > 40:
        return f"{address[:30]}…{address[-8:]}"
    if len(address) > 8:
        return f"{address[:4]}…{address[-4:]}"
    return "…"


class ContactPointSerializer(serializers.ModelSerializer):
    """A contact point. Push subscription keys are never part of any response."""

    channel = EnumChoiceField(Channel, read_only=True)
    platform = serializers.SerializerMethodField(help_text="Push only; null on other channels.")
    address = serializers.SerializerMethodField(
        help_text="Email or phone in full; push endpoints and device tokens shortened."
    )

    class Meta:
        model = ContactPoint
        fields = [
            "id", "channel", "address", "platform", "label", "enabled",
            "last_used_at", "last_failure_at", "last_failure_reason", "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(EnumChoiceField(PushPlatform, allow_null=True))
    def get_platform(self, point: ContactPoint) -> str | None:
        return point.platform or None

    def get_address(self, point: ContactPoint) -> str:
        if point.channel == Channel.PUSH:
            return mask_push_address(point.address)
        return point.address  # email addresses and phone numbers in full


class ConsentPairSerializer(serializers.Serializer):
    """One channel × category; ``status`` is null when the customer never said anything."""

    channel = EnumChoiceField(Channel)
    category = EnumChoiceField(Category)
    status = EnumChoiceField(ConsentStatus, allow_null=True)
    source = serializers.CharField(allow_null=True)
    changed_at = serializers.DateTimeField(allow_null=True)


def consent_pairs(consents) -> list[dict]:
    """All channel × category pairs, in enum order, from a customer's Consent rows."""
    by_pair = {(c.channel, c.category): c for c in consents}
    pairs = []
    for channel in Channel:
        for category in Category:
            consent = by_pair.get((channel.value, category.value))
            pairs.append(
                {
                    "channel": channel.value,
                    "category": category.value,
                    "status": consent.status if consent else None,
                    "source": consent.source if consent else None,
                    "changed_at": consent.changed_at if consent else None,
                }
            )
    return pairs


class CustomerSummarySerializer(serializers.ModelSerializer):
    display_name = serializers.CharField(read_only=True)
    channels = serializers.SerializerMethodField(help_text="Channels with an enabled contact point.")

    class Meta:
        model = Customer
        fields = [
            "external_id", "display_name", "email", "phone", "timezone", "locale", "traits",
            "channels", "first_seen_at", "last_seen_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=EnumChoiceField(Channel)))
    def get_channels(self, customer: Customer) -> list[str]:
        # Filled by the view's Prefetch(to_attr="enabled_points"): no query per row.
        return sorted({point.channel for point in customer.enabled_points})


class CustomerCountsSerializer(serializers.Serializer):
    events = serializers.IntegerField()
    messages = serializers.IntegerField()
    profile_updates = serializers.IntegerField(help_text="identify calls received.")


class CustomerDetailSerializer(serializers.ModelSerializer):
    display_name = serializers.CharField(read_only=True)
    contact_points = ContactPointSerializer(many=True, read_only=True)
    consent = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = [
            "external_id", "display_name", "email", "phone", "timezone", "locale", "traits",
            "first_seen_at", "last_seen_at", "created_at", "updated_at",
            "contact_points", "consent", "counts",
        ]
        read_only_fields = fields

    @extend_schema_field(ConsentPairSerializer(many=True))
    def get_consent(self, customer: Customer) -> list[dict]:
        return ConsentPairSerializer(consent_pairs(customer.consents.all()), many=True).data

    @extend_schema_field(CustomerCountsSerializer)
    def get_counts(self, customer: Customer) -> dict:
        # Annotated by the view (subqueries), so a detail costs no count queries.
        return {
            "events": customer.event_count,
            "messages": customer.message_count,
            "profile_updates": customer.profile_update_count,
        }


class EventSerializer(serializers.ModelSerializer):
    message_id = serializers.CharField(source="source_message_id", allow_null=True, read_only=True)

    class Meta:
        model = Event
        fields = ["id", "name", "properties", "occurred_at", "received_at", "source", "message_id"]
        read_only_fields = fields


class MessageTransitionSerializer(serializers.ModelSerializer):
    to_status = EnumChoiceField(MessageStatus, read_only=True)
    from_status = serializers.SerializerMethodField()

    class Meta:
        model = MessageTransition
        fields = ["from_status", "to_status", "at", "detail"]
        read_only_fields = fields

    @extend_schema_field(EnumChoiceField(MessageStatus, allow_null=True))
    def get_from_status(self, transition: MessageTransition) -> str | None:
        return transition.from_status or None


class MessageSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    channel = EnumChoiceField(Channel, read_only=True)
    category = EnumChoiceField(Category, read_only=True)
    status = EnumChoiceField(MessageStatus, read_only=True)
    summary = serializers.CharField(read_only=True)
    transitions = MessageTransitionSerializer(many=True, read_only=True)

    class Meta:
        model = Message
        fields = [
            "id", "channel", "category", "status", "template_name", "summary", "content",
            "journey_id", "journey_version_id", "node_id", "provider", "provider_message_id",
            "error", "queued_at", "updated_at", "transitions",
        ]
        read_only_fields = fields


class ConsentChangeRecordSerializer(serializers.ModelSerializer):
    channel = EnumChoiceField(Channel, read_only=True)
    category = EnumChoiceField(Category, read_only=True)
    status = serializers.SerializerMethodField(
        help_text="The status set; null when the change cleared it (a bounce lifted by a new address)."
    )
    previous_status = serializers.SerializerMethodField()
    actor = serializers.SerializerMethodField(help_text="Username of the person who made the change.")

    class Meta:
        model = ConsentChange
        fields = ["channel", "category", "previous_status", "status", "source", "actor", "changed_at"]
        read_only_fields = fields

    @extend_schema_field(EnumChoiceField(ConsentStatus, allow_null=True))
    def get_status(self, change: ConsentChange) -> str | None:
        return change.status or None

    @extend_schema_field(EnumChoiceField(ConsentStatus, allow_null=True))
    def get_previous_status(self, change: ConsentChange) -> str | None:
        return change.previous_status or None

    def get_actor(self, change: ConsentChange) -> str | None:
        return change.actor.get_username() if change.actor_id else None


class CustomerConsentSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    consent = ConsentPairSerializer(many=True)
    history = ConsentChangeRecordSerializer(
        many=True, help_text=f"The {CONSENT_HISTORY_LENGTH} most recent changes, newest first."
    )


class ConsentChangeSerializer(serializers.Serializer):
    """One requested change, validated before ``do_set_consent`` runs."""

    channel = EnumChoiceField(Channel)
    category = EnumChoiceField(Category)
    status = EnumChoiceField(ConsentStatus)
    source = serializers.CharField(
        required=False, max_length=120,
        help_text="Where the change came from; defaults to the API key's source label, or 'web'.",
    )

    def validate(self, attrs):
        problem = consent_status_problem(attrs["channel"], attrs["status"])
        if problem:
            raise serializers.ValidationError({"status": [problem]})
        return attrs


# --- Envelopes -----------------------------------------------------------------------------


def paginated(item_serializer: type[serializers.Serializer], name: str) -> type[serializers.Serializer]:
    """A ``{count, next, previous, results}`` envelope around ``item_serializer``."""
    fields = {
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": item_serializer(many=True),
    }
    return type(name, (serializers.Serializer,), fields)


PaginatedCustomerSummarySerializer = paginated(CustomerSummarySerializer, "PaginatedCustomerList")
PaginatedEventSerializer = paginated(EventSerializer, "PaginatedEventList")
PaginatedMessageSerializer = paginated(MessageSerializer, "PaginatedMessageList")
