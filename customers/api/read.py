"""The customers read API: list, detail, events, messages and consent (read and change).

Access: an API key with scope ``read`` (``manage`` to change consent), or a signed-in user
with ``customers.view`` (``customers.edit`` to change consent). Every list is a
``{count, next, previous, results}`` page; bad query parameters are a 400 naming them.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import (
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, Concat
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from channels_app.models import Message
from customers.api import serializers as s
from customers.api.ingest_schema import ErrorResponse
from customers.api.paging import page_response, validated_query
from customers.consent import do_set_consent
from customers.models import Consent, ConsentChange, ContactPoint, Customer, Event, ProfileUpdate
from orchestrator.api_keys import api_access, request_source
from orchestrator.models import ApiKey, ApiScope
from orchestrator.roles import Capability
from orchestrator.schema import whole_body_patch

READ_SCOPE = {"GET": ApiScope.READ.value}
READ_CAPABILITY = {"GET": Capability.VIEW_CUSTOMERS.value}
CONSENT_SCOPE = {"GET": ApiScope.READ.value, "PATCH": ApiScope.MANAGE.value}
CONSENT_CAPABILITY = {"GET": Capability.VIEW_CUSTOMERS.value, "PATCH": Capability.EDIT_CUSTOMERS.value}
MAX_CONSENT_CHANGES = 50

# The one error shape (orchestrator.api_errors), documented once for the whole API.
_ERROR = ErrorResponse
_READ_ERRORS = {
    401: OpenApiResponse(_ERROR, description="No or an unknown/revoked API key."),
    403: OpenApiResponse(_ERROR, description="The key lacks the scope, or the user the capability."),
    429: OpenApiResponse(_ERROR, description="Over the key's per-minute limit; see Retry-After."),
}
_BAD_QUERY = {400: OpenApiResponse(_ERROR, description="A query parameter is invalid; the error names it.")}
_NOT_FOUND = {404: OpenApiResponse(_ERROR, description="No customer has this external id.")}
_EXTERNAL_ID = OpenApiParameter("external_id", str, OpenApiParameter.PATH, description="The customer's external id.")
_READ_ACCESS = " Requires scope `read` (API key) or capability `customers.view` (signed-in user)."


# --- Helpers ---------------------------------------------------------------------------------


def _customer_or_404(external_id: str, queryset: QuerySet[Customer] | None = None) -> Customer:
    if "\x00" in external_id:  # PostgreSQL text cannot hold NUL, so no customer has it
        raise NotFound(f"No customer with external id {external_id!r}.")
    try:
        return (queryset if queryset is not None else Customer.objects.all()).get(external_id=external_id)
    except Customer.DoesNotExist:
        raise NotFound(f"No customer with external id {external_id!r}.") from None


def _count_of(model) -> Coalesce:
    """The customer's number of ``model`` rows, as a subquery (no join fan-out, no extra query)."""
    counted = (
        model.objects.filter(customer=OuterRef("pk"))
        .order_by()
        .values("customer")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _search(queryset: QuerySet[Customer], term: str) -> QuerySet[Customer]:
    full_name = Concat(KT("traits__first_name"), Value(" "), KT("traits__last_name"), output_field=TextField())
    return queryset.annotate(search_full_name=full_name).filter(
        Q(external_id__icontains=term)
        | Q(email__icontains=term)
        | Q(phone__icontains=term)
        | Q(traits__first_name__icontains=term)
        | Q(traits__last_name__icontains=term)
        | Q(traits__name__icontains=term)
        | Q(search_full_name__icontains=term)
    )


def filter_customers(params: dict) -> QuerySet[Customer]:
    queryset = Customer.objects.all()
    if params.get("q"):
        queryset = _search(queryset, params["q"])
    if params.get("timezone"):
        queryset = queryset.filter(timezone=params["timezone"])
    if params.get("seen_since"):
        queryset = queryset.filter(last_seen_at__gte=params["seen_since"])
    if params.get("seen_before"):
        queryset = queryset.filter(last_seen_at__lt=params["seen_before"])
    if params.get("has_channel"):
        points = ContactPoint.objects.filter(customer=OuterRef("pk"), channel=params["has_channel"], enabled=True)
        queryset = queryset.filter(Exists(points))
    if params.get("consent"):
        channel, category, status = params["consent"]
        consents = Consent.objects.filter(customer=OuterRef("pk"), channel=channel, category=category, status=status)
        queryset = queryset.filter(Exists(consents))
    return queryset.order_by(*s.CUSTOMER_ORDERINGS[params["ordering"]])


def _consent_state(customer: Customer) -> dict:
    history = ConsentChange.objects.filter(customer=customer).select_related("actor")
    return s.CustomerConsentSerializer(
        {
            "external_id": customer.external_id,
            "consent": s.consent_pairs(Consent.objects.filter(customer=customer)),
            "history": history[: s.CONSENT_HISTORY_LENGTH],
        }
    ).data


# --- Endpoints -------------------------------------------------------------------------------


@extend_schema(
    operation_id="customers_list",
    summary="List and search customers",
    description="Newest activity first by default." + _READ_ACCESS,
    parameters=[s.CustomerListQuerySerializer],
    responses={200: s.PaginatedCustomerSummarySerializer, **_BAD_QUERY, **_READ_ERRORS},
    tags=["customers"],
)
@api_access(scope=READ_SCOPE, capability=READ_CAPABILITY)
@api_view(["GET"])
def customer_list(request: Request) -> Response:
    params = validated_query(s.CustomerListQuerySerializer, request)
    enabled_points = Prefetch(
        "contact_points",
        queryset=ContactPoint.objects.filter(enabled=True).only("id", "customer_id", "channel"),
        to_attr="enabled_points",
    )
    queryset = filter_customers(params).prefetch_related(enabled_points)
    return page_response(request, queryset, params, s.CustomerSummarySerializer)


@extend_schema(
    operation_id="customers_retrieve",
    summary="One customer: profile, contact points, consent and counts",
    description=(
        "Consent lists all 8 channel × category pairs; `status` is null where nothing was "
        "ever recorded. Push subscription keys are never returned." + _READ_ACCESS
    ),
    parameters=[_EXTERNAL_ID],
    responses={200: s.CustomerDetailSerializer, **_NOT_FOUND, **_READ_ERRORS},
    tags=["customers"],
)
@api_access(scope=READ_SCOPE, capability=READ_CAPABILITY)
@api_view(["GET"])
def customer_detail(request: Request, external_id: str) -> Response:
    queryset = Customer.objects.annotate(
        event_count=_count_of(Event),
        message_count=_count_of(Message),
        profile_update_count=_count_of(ProfileUpdate),
    ).prefetch_related(
        # The keys column is never even loaded.
        Prefetch("contact_points", queryset=ContactPoint.objects.defer("keys")),
        "consents",
    )
    customer = _customer_or_404(external_id, queryset)
    return Response(s.CustomerDetailSerializer(customer, context={"request": request}).data)


@extend_schema(
    operation_id="customers_events_list",
    summary="A customer's events, newest first",
    description="`since`/`until` bound the event's `occurred_at`." + _READ_ACCESS,
    parameters=[_EXTERNAL_ID, s.EventQuerySerializer],
    responses={200: s.PaginatedEventSerializer, **_BAD_QUERY, **_NOT_FOUND, **_READ_ERRORS},
    tags=["customers"],
)
@api_access(scope=READ_SCOPE, capability=READ_CAPABILITY)
@api_view(["GET"])
def customer_events(request: Request, external_id: str) -> Response:
    params = validated_query(s.EventQuerySerializer, request)
    customer = _customer_or_404(external_id)
    events = Event.objects.filter(customer=customer)
    if params.get("name"):
        events = events.filter(name=params["name"])
    if params.get("since"):
        events = events.filter(occurred_at__gte=params["since"])
    if params.get("until"):
        events = events.filter(occurred_at__lt=params["until"])
    return page_response(request, events.order_by("-occurred_at", "-id"), params, s.EventSerializer)


@extend_schema(
    operation_id="customers_messages_list",
    summary="A customer's messages on every channel, newest first",
    description=(
        "The message ledger with each message's status transitions. `since`/`until` bound "
        "the message's `queued_at`." + _READ_ACCESS
    ),
    parameters=[_EXTERNAL_ID, s.MessageQuerySerializer],
    responses={200: s.PaginatedMessageSerializer, **_BAD_QUERY, **_NOT_FOUND, **_READ_ERRORS},
    tags=["customers"],
)
@api_access(scope=READ_SCOPE, capability=READ_CAPABILITY)
@api_view(["GET"])
def customer_messages(request: Request, external_id: str) -> Response:
    params = validated_query(s.MessageQuerySerializer, request)
    customer = _customer_or_404(external_id)
    messages = Message.objects.filter(customer=customer).prefetch_related("transitions")
    for field in ("channel", "status"):
        if params.get(field):
            messages = messages.filter(**{field: params[field]})
    if params.get("since"):
        messages = messages.filter(queued_at__gte=params["since"])
    if params.get("until"):
        messages = messages.filter(queued_at__lt=params["until"])
    return page_response(request, messages.order_by("-queued_at", "-id"), params, s.MessageSerializer)


_CONSENT_PATCH = PolymorphicProxySerializer(
    component_name="ConsentPatch",
    serializers=[s.ConsentChangeSerializer, s.ConsentChangeSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)


@extend_schema(
    methods=["GET"],
    operation_id="customers_consent_retrieve",
    summary="A customer's consent and its recent history",
    parameters=[_EXTERNAL_ID],
    description=_READ_ACCESS.strip(),
    responses={200: s.CustomerConsentSerializer, **_NOT_FOUND, **_READ_ERRORS},
    tags=["customers"],
)
@extend_schema(
    methods=["PATCH"],
    operation_id="customers_consent_update",
    summary="Change consent: one change or a list, applied atomically",
    description=(
        "Every change is validated before any is applied; a 400 names the field "
        f"(`channel`, or `2.status` in a list) and changes nothing. At most {MAX_CONSENT_CHANGES} "
        "changes per request. Requires scope `manage` (API key) or capability "
        "`customers.edit` (signed-in user)."
    ),
    parameters=[_EXTERNAL_ID],
    request=_CONSENT_PATCH,
    responses={
        200: s.CustomerConsentSerializer,
        400: OpenApiResponse(_ERROR, description="An invalid change; nothing was changed."),
        **_NOT_FOUND,
        **_READ_ERRORS,
    },
    tags=["customers"],
)
@whole_body_patch
@api_access(scope=CONSENT_SCOPE, capability=CONSENT_CAPABILITY)
@api_view(["GET", "PATCH"])
def customer_consent(request: Request, external_id: str) -> Response:
    customer = _customer_or_404(external_id)
    if request.method == "PATCH":
        _apply_consent_changes(request, customer)
    return Response(_consent_state(customer))


def _apply_consent_changes(request: Request, customer: Customer) -> None:
    many = isinstance(request.data, list)
    extra = {"allow_empty": False, "max_length": MAX_CONSENT_CHANGES} if many else {}
    serializer = s.ConsentChangeSerializer(data=request.data, many=many, **extra)
    serializer.is_valid(raise_exception=True)
    changes = serializer.validated_data if many else [serializer.validated_data]
    actor = None if isinstance(request.auth, ApiKey) else request.user
    default_source = request_source(request)
    with transaction.atomic():
        # The customer's row lock serialises consent changes with each other and with the
        # governor; re-read under it so suppression hashes use the current email and phone.
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        for change in changes:
            do_set_consent(
                customer,
                change["channel"],
                change["category"],
                change["status"],
                source=change.get("source") or default_source,
                actor=actor,
            )
