"""Customer pages: the searchable list, and one customer's profile with its timeline.

These are presentation: they read the message ledger (channels_app) next to customers'
own tables, as every page that shows a whole customer must. State changes go through
customers.consent.do_set_consent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods
from django_htmx.http import trigger_client_event
from django_htmx.middleware import HtmxDetails

from channels_app.models import Message
from channels_app.reachability import sendable_q
from customers.consent import do_set_consent
from customers.consent_form import ConsentForm
from customers.enums import Category, Channel, consent_statuses_for
from customers.models import Consent, ContactPoint, Customer
from orchestrator import timeline
from orchestrator.engine.models import Enrollment
from orchestrator.intelligence.card import affinity_card
from orchestrator.roles import Capability, has_capability, require_capability


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


LIST_PAGE_SIZE = 25
TIMELINE_PAGE_SIZE = 50
# Fields the list's search box looks in; every word typed must match one of them.
SEARCH_FIELDS = ("external_id", "email", "phone", "traits__name", "traits__first_name", "traits__last_name")
NO_TIMEZONE = "none"  # the time-zone filter's value for customers without one
DETAILS_SHOWN, MAX_DETAILS = 4, 30  # event properties per timeline entry: shown, behind "more"
PROFILE_JOURNEYS = 10  # enrollments listed on the profile, newest first; the rest are in the timeline


def _page_or_fragment(request: HtmxHttpRequest, template: str, fragment: str | None, context: dict) -> HttpResponse:
    """Render the fragment for htmx requests, the page otherwise (and on history misses)."""
    if fragment and request.htmx and not request.htmx.history_restore_request:
        template = f"{template}#{fragment}"
    response = render(request, template, context)
    # The same URL answers with a page or a fragment: keep caches from mixing them up.
    patch_vary_headers(response, ("HX-Request",))
    return response


# --- The list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFilters:
    q: str = ""
    tz: str = ""
    reachable: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> ListFilters:
        reachable = query.get("reachable", "")
        return cls(
            q=" ".join(query.get("q", "").split())[:200],
            tz=query.get("tz", "").strip()[:64],
            reachable=reachable if reachable in Channel.values else "",
        )

    @property
    def query(self) -> str:
        """The filters as a query string, for pagination links."""
        return urlencode({k: v for k, v in (("q", self.q), ("tz", self.tz), ("reachable", self.reachable)) if v})

    @property
    def active(self) -> bool:
        return bool(self.q or self.tz or self.reachable)


def search_condition(text: str) -> Q:
    condition = Q()
    for word in text.split()[:8]:
        any_field = Q()
        for name in SEARCH_FIELDS:
            any_field |= Q(**{f"{name}__icontains": word})
        condition &= any_field
    return condition


def reachable_condition(channel: str) -> Q:
    """Would a marketing message on the channel go: the send-time rule (consent, then an
    address), as SQL (channels_app.reachability.sendable_q)."""
    return sendable_q(channel, Category.MARKETING)


def messages_since(since: datetime) -> Subquery:
    """Per customer: messages queued since `since` (a subquery, evaluated per listed row)."""
    counts = (
        Message.objects.filter(customer=OuterRef("pk"), queued_at__gte=since)
        .order_by()
        .values("customer")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), 0)


def list_customers(filters: ListFilters, now: datetime) -> QuerySet[Customer]:
    customers = Customer.objects.all()
    if filters.q:
        customers = customers.filter(search_condition(filters.q))
    if filters.tz:
        customers = customers.filter(timezone="" if filters.tz == NO_TIMEZONE else filters.tz)
    if filters.reachable:
        customers = customers.filter(reachable_condition(filters.reachable))
    return customers.annotate(messages_7d=messages_since(now - timedelta(days=7)))


TIMEZONE_CHOICES_CACHE_KEY = "customers:timezone-choices"
TIMEZONE_CHOICES_TTL = 5 * 60  # seconds; a new customer's zone may show in the filter that late


def timezone_choices() -> list[tuple[str, str]]:
    """The list filter's time zones: a DISTINCT over every customer, so cached, not per page load."""
    return cache.get_or_set(TIMEZONE_CHOICES_CACHE_KEY, _timezone_choices, TIMEZONE_CHOICES_TTL)


def _timezone_choices() -> list[tuple[str, str]]:
    zones = list(Customer.objects.order_by("timezone").values_list("timezone", flat=True).distinct())
    choices = [(zone, zone) for zone in zones if zone]
    if "" in zones:
        choices.append((NO_TIMEZONE, "Not set"))
    return choices


@require_capability(Capability.VIEW_CUSTOMERS)
@require_http_methods(["GET", "HEAD"])
def customer_list(request: HtmxHttpRequest) -> HttpResponse:
    filters = ListFilters.from_query(request.GET)
    page = Paginator(list_customers(filters, timezone.now()), LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    context: dict[str, Any] = {"filters": filters, "page": page, "channels": Channel.choices}
    if not (request.htmx and not request.htmx.history_restore_request):
        context["timezones"] = timezone_choices()
    return _page_or_fragment(request, "customers/list.html", "results", context)


# --- The profile: header, contact points, consent, traits ------------------------------------


def customer_zone(customer: Customer) -> tuple[ZoneInfo, bool]:
    """The customer's zone, or the default zone and False when theirs is unset or unknown."""
    if customer.timezone:
        try:
            return ZoneInfo(customer.timezone), True
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(settings.CHORUS_DEFAULT_TIMEZONE), False


def shown_address(point: ContactPoint) -> str:
    """Enough of an address to recognise it; push endpoints and tokens are shortened."""
    if point.channel != Channel.PUSH:
        return point.short_address
    parts = urlsplit(point.address)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.netloc}/…{point.address[-8:]}"
    if len(point.address) <= 16:
        return point.address
    return f"{point.address[:8]}…{point.address[-8:]}"


@dataclass(frozen=True)
class ContactRow:
    point: ContactPoint
    address: str


@dataclass(frozen=True)
class ConsentCell:
    channel: str
    category: str
    consent: Consent | None = None
    form: forms.Form | None = None  # a rejected change, shown with its errors
    saved: str = ""  # a note after a change

    @property
    def channel_label(self) -> str:
        return Channel(self.channel).label if self.channel in Channel.values else self.channel

    @property
    def category_label(self) -> str:
        return Category(self.category).label if self.category in Category.values else self.category

    @property
    def status(self) -> str:
        return self.consent.status if self.consent else ""

    @property
    def status_label(self) -> str:
        return self.consent.get_status_display() if self.consent else "Not set"

    @property
    def dom_id(self) -> str:
        return f"consent-{self.channel}-{self.category}"

    @property
    def status_choices(self) -> list[tuple[str, str]]:
        return consent_statuses_for(self.channel)


@dataclass(frozen=True)
class ConsentRow:
    channel: str
    label: str
    cells: list[ConsentCell] = field(default_factory=list)


def consent_grid(customer: Customer, override: ConsentCell | None = None) -> list[ConsentRow]:
    """Every channel × category, 'not set' where the customer never said anything."""
    current = {(c.channel, c.category): c for c in Consent.objects.filter(customer=customer)}
    rows = []
    for channel in Channel:
        cells = []
        for category in Category:
            cell = ConsentCell(channel.value, category.value, current.get((channel, category)))
            if override and (override.channel, override.category) == (cell.channel, cell.category):
                cell = replace(override, consent=cell.consent)
            cells.append(cell)
        rows.append(ConsentRow(channel.value, channel.label, cells))
    return rows


def shown_value(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def profile_customers() -> QuerySet[Customer]:
    """Customers with ``in_journeys``: whether they were ever enrolled in a journey.

    Most customers never were; their profile then skips both journey queries (the
    section below and the timeline's journey steps) at the cost of one EXISTS.
    """
    return Customer.objects.annotate(in_journeys=Exists(Enrollment.objects.filter(customer=OuterRef("pk"))))


@dataclass(frozen=True)
class JourneyRow:
    enrollment: Enrollment
    node_label: str  # where they are (or exited), as the journey's author named it


def customer_journeys(customer: Customer) -> tuple[list[JourneyRow], bool]:
    """The newest enrollments (one query), and whether there are older ones."""
    if not getattr(customer, "in_journeys", True):
        return [], False
    enrollments = list(
        customer.enrollments.select_related("journey", "version")
        .defer("context", "touch_sequence")[: PROFILE_JOURNEYS + 1]
    )
    rows = []
    for enrollment in enrollments[:PROFILE_JOURNEYS]:
        node = enrollment.version.node(enrollment.current_node) or {}
        rows.append(JourneyRow(enrollment, node.get("label") or enrollment.current_node))
    return rows, len(enrollments) > PROFILE_JOURNEYS


def profile_context(customer: Customer, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    points = list(customer.contact_points.all())
    listed = {(p.channel, p.address.lower()) for p in points}
    journey_rows, more_journeys = customer_journeys(customer)
    return {
        "local_now": now.astimezone(zone),
        "contact_rows": [ContactRow(p, shown_address(p)) for p in points],
        # The profile's own email and phone, unless a contact point already lists them.
        "profile_email": customer.email if (Channel.EMAIL, customer.email.lower()) not in listed else "",
        "profile_phone": customer.phone if (Channel.SMS, customer.phone.lower()) not in listed else "",
        "consent_rows": consent_grid(customer),
        "categories": Category.choices,
        "trait_rows": [(key, shown_value(customer.traits[key], 200)) for key in sorted(customer.traits)],
        "journey_rows": journey_rows,
        "more_journeys": more_journeys,
    }


# --- The profile: timeline --------------------------------------------------------------------

TIMELINE_FILTER_LABELS = {
    "all": "All",
    "events": "Events",
    "profile": "Profile",
    "messages": "Messages",
    "consent": "Consent",
    "journeys": "Journeys",
    "governor": "Held back",
}


@dataclass(frozen=True)
class TimelineQuery:
    kind: str = "all"
    channel: str = ""
    before: timeline.Cursor | None = None

    @classmethod
    def from_query(cls, query: QueryDict) -> TimelineQuery:
        """Unknown filters fall back to 'all'; a malformed cursor raises ValueError."""
        kind = query.get("kind", "all")
        channel = query.get("channel", "")
        before = query.get("before")
        return cls(
            kind=kind if kind in timeline.FILTERS else "all",
            channel=channel if channel in Channel.values else "",
            before=timeline.Cursor.parse(before) if before else None,
        )

    def url(self, base: str, **changes: Any) -> str:
        query = replace(self, **changes)
        params = {"kind": query.kind if query.kind != "all" else "", "channel": query.channel}
        params["before"] = str(query.before) if query.before else ""
        encoded = urlencode({k: v for k, v in params.items() if v})
        return f"{base}?{encoded}" if encoded else base


@dataclass(frozen=True)
class FilterLink:
    label: str
    url: str
    active: bool


@dataclass(frozen=True)
class TimelineRow:
    entry: timeline.Entry
    day: str  # a heading when this entry starts a new local day, else ""
    details: list[tuple[str, str]]  # the first event properties or profile changes, shortened
    more_details: list[tuple[str, str]]  # the rest, behind a disclosure
    status_at: datetime | None = None  # for messages: when they reached their status


def day_label(day: date, today: date) -> str:
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    return f"{day:%A}, {day.day} {day:%B %Y}"


def entry_details(entry: timeline.Entry) -> list[tuple[str, str]]:
    if entry.kind == timeline.Kind.EVENT:
        values = entry.obj.properties or {}
    elif entry.kind == timeline.Kind.PROFILE:
        values = entry.obj.changes or {}
    else:
        return []
    return [(key, shown_value(values[key])) for key in list(values)[:MAX_DETAILS]]


def timeline_rows(page: timeline.Page, query: TimelineQuery, zone: ZoneInfo, now: datetime) -> list[TimelineRow]:
    """Rows with a day heading wherever the local day changes (continuing across pages)."""
    today = now.astimezone(zone).date()
    previous = query.before.at.astimezone(zone).date() if query.before else None
    rows = []
    for entry in page.entries:
        day = entry.at.astimezone(zone).date()
        status_at = None
        if entry.kind == timeline.Kind.MESSAGE:
            status_at = getattr(entry.obj, f"{entry.obj.status}_at", None)
        heading = day_label(day, today) if day != previous else ""
        details = entry_details(entry)
        rows.append(TimelineRow(entry, heading, details[:DETAILS_SHOWN], details[DETAILS_SHOWN:], status_at))
        previous = day
    return rows


def timeline_context(customer: Customer, query: TimelineQuery, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    base = reverse("customers:profile", args=[customer.pk])
    kinds = timeline.FILTERS[query.kind]
    if not getattr(customer, "in_journeys", True):
        kinds = kinds - {timeline.Kind.JOURNEY}  # never enrolled: no steps to look for
    page = timeline.read_page(
        customer,
        kinds,
        channel=query.channel,
        before=query.before,
        size=TIMELINE_PAGE_SIZE,
    )
    kind_links = [
        FilterLink(label, query.url(base, kind=kind, before=None), kind == query.kind)
        for kind, label in TIMELINE_FILTER_LABELS.items()
    ]
    channel_links = [FilterLink("Any channel", query.url(base, channel="", before=None), not query.channel)]
    channel_links += [
        FilterLink(label, query.url(base, channel=value, before=None), value == query.channel)
        for value, label in Channel.choices
    ]
    return {
        "customer": customer,
        "zone_name": str(zone),
        "tl": query,
        "tl_rows": timeline_rows(page, query, zone, now),
        "tl_self_url": query.url(base, before=None),
        "tl_next_url": query.url(base, before=page.next_cursor) if page.next_cursor else "",
        "tl_kind_links": kind_links,
        "tl_channel_links": channel_links,
    }


@require_capability(Capability.VIEW_CUSTOMERS)
@require_http_methods(["GET", "HEAD", "POST"])
def customer_profile(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    if request.method == "POST" and not has_capability(request.user, Capability.EDIT_CUSTOMERS):
        raise PermissionDenied(f"Your role does not allow {Capability.EDIT_CUSTOMERS.value}.")
    customer = get_object_or_404(profile_customers(), pk=pk)
    if request.method == "POST":
        return change_consent(request, customer)
    if request.GET.get("card") == "affinity":
        # Loaded after the page (hx-trigger="load"): the page's own queries stay pinned.
        card = affinity_card(customer.pk, now=timezone.now())
        return render(request, "customers/profile.html#affinity-card", {"affinity": card, "customer": customer})
    try:
        query = TimelineQuery.from_query(request.GET)
    except ValueError:
        return HttpResponseBadRequest("Malformed timeline cursor.")
    return render_profile(request, customer, query)


def render_profile(
    request: HtmxHttpRequest,
    customer: Customer,
    query: TimelineQuery,
    *,
    failed: ConsentCell | None = None,
) -> HttpResponse:
    now = timezone.now()
    zone, zone_known = customer_zone(customer)
    context = timeline_context(customer, query, zone, now)
    fragment = "timeline-page" if query.before else "timeline"
    if not request.htmx or request.htmx.history_restore_request:
        context.update(profile_context(customer, zone, now), zone_known=zone_known)
        if failed:
            context["consent_rows"] = consent_grid(customer, override=failed)
            fragment = None
    response = _page_or_fragment(request, "customers/profile.html", fragment, context)
    if failed:
        response.status_code = 422
    return response


# --- The profile: changing consent -----------------------------------------------------------




def change_consent(request: HtmxHttpRequest, customer: Customer) -> HttpResponse:
    """Set one consent through do_set_consent; 422 with the cell re-rendered when invalid."""
    form = ConsentForm(request.POST)
    posted = (request.POST.get("channel", "")[:16], request.POST.get("category", "")[:16])
    if not form.is_valid():
        failed = ConsentCell(*posted, form=form)
        if not request.htmx:
            return render_profile(request, customer, TimelineQuery(), failed=failed)
        cell = replace(failed, consent=Consent.objects.filter(customer=customer, channel=posted[0], category=posted[1]).first())
        return render(request, "customers/profile.html#consent-cell", {"cell": cell, "customer": customer}, status=422)
    channel, category, status = (form.cleaned_data[k] for k in ("channel", "category", "status"))
    result = do_set_consent(
        customer, channel, category, status, source=f"web: {request.user.get_username()}"[:120], actor=request.user
    )
    if not request.htmx:
        cell = ConsentCell(channel, category)
        messages.success(request, f"{cell.channel_label} {cell.category_label.lower()} consent: {result.consent.get_status_display()}.")
        return redirect(f"{reverse('customers:profile', args=[customer.pk])}#consent")
    cell = ConsentCell(channel, category, result.consent, saved="Saved" if result.changed else "No change")
    response = render(request, "customers/profile.html#consent-cell", {"cell": cell, "customer": customer})
    if result.changed:
        trigger_client_event(response, "consentChanged")  # the timeline reloads itself
    return response
