"""Project-level pages: the Overview dashboard (home) and the health check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from channels_app.models import Message, MessageStatus
from customers.enums import Channel, ConsentStatus
from customers.models import ConsentChange, Customer, Event
from orchestrator.roles import Capability, has_capability

# What counts as an opt-out on the Overview: the customer's own choice or complaint.
# Bounces block sending too, but are not something the customer decided.
OPT_OUT_STATUSES = (ConsentStatus.OPTED_OUT, ConsentStatus.UNSUBSCRIBED, ConsentStatus.COMPLAINED)


@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    count: int
    percent: int  # of the largest bar in its chart, for the CSS width


def bars(counts: dict[str, int], choices: list[tuple[str, str]], *, keep_zero: bool) -> list[Bar]:
    largest = max(counts.values(), default=0) or 1

    def width(count: int) -> int:  # a sliver stays visible for small non-zero counts
        return max(2, round(100 * count / largest)) if count else 0

    return [
        Bar(key, label, counts.get(key, 0), width(counts.get(key, 0)))
        for key, label in choices
        if keep_zero or counts.get(key, 0)
    ]


def overview_numbers(now: datetime) -> dict[str, Any]:
    """Every number on the Overview, read in a handful of aggregate queries."""
    customers = Customer.objects.aggregate(
        total=Count("id"), seen_7d=Count("id", filter=Q(last_seen_at__gte=now - timedelta(days=7)))
    )
    events_24h = Event.objects.filter(occurred_at__gte=now - timedelta(hours=24), occurred_at__lte=now).count()
    by_channel: dict[str, int] = {}
    by_status: dict[str, int] = {}
    recent = Message.objects.filter(queued_at__gte=now - timedelta(days=7), queued_at__lte=now)
    for channel, status, n in recent.order_by().values_list("channel", "status").annotate(n=Count("id")):
        by_channel[channel] = by_channel.get(channel, 0) + n
        by_status[status] = by_status.get(status, 0) + n
    opt_outs = ConsentChange.objects.filter(
        changed_at__gte=now - timedelta(days=30), changed_at__lte=now, status__in=OPT_OUT_STATUSES
    )
    opt_outs_by_channel = dict(opt_outs.order_by().values_list("channel").annotate(n=Count("id")))
    return {
        "customers_total": customers["total"],
        "customers_seen_7d": customers["seen_7d"],
        "events_24h": events_24h,
        "messages_7d": sum(by_channel.values()),
        "messages_by_channel": bars(by_channel, Channel.choices, keep_zero=True),
        "messages_by_status": bars(by_status, MessageStatus.choices, keep_zero=False),
        "opt_outs_30d": sum(opt_outs_by_channel.values()),
        "opt_outs_by_channel": bars(opt_outs_by_channel, Channel.choices, keep_zero=True),
        "recent_opt_outs": list(opt_outs.select_related("customer").order_by("-changed_at", "-id")[:5]),
    }


@login_required
@require_http_methods(["GET", "HEAD"])
def home(request: HttpRequest) -> HttpResponse:
    """The Overview dashboard; people whose role has no dashboards start at Customers."""
    if not has_capability(request.user, Capability.VIEW_DASHBOARDS):
        if has_capability(request.user, Capability.VIEW_CUSTOMERS):
            return redirect("customers:list")
        raise PermissionDenied(f"Your role does not allow {Capability.VIEW_DASHBOARDS.value}.")
    now = timezone.now()
    return render(request, "overview/home.html", {"now": now, **overview_numbers(now)})


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
