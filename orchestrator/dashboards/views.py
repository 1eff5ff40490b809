"""The cadence dashboard: one view serves the page, each panel's fragment (htmx, for the
live refresh) and each figure's CSV export."""

from __future__ import annotations

import csv
from typing import Any

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods
from django_htmx.middleware import HtmxDetails

from customers.enums import Category, Channel
from journeys.models import Journey
from orchestrator.dashboards import live
from orchestrator.dashboards.filters import PRESETS, Filters, parse_filters
from orchestrator.dashboards.panels import overlap
from orchestrator.dashboards.panels.registry import PANELS
from orchestrator.roles import Capability, require_capability

TEMPLATE = "dashboards/cadence.html"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def load_panel(key: str, filters: Filters, now) -> dict[str, Any]:
    module = PANELS[key]
    data = module.load(filters, now)
    return {"info": module.INFO, "data": data, "figures": data.figures()}


@require_capability(Capability.VIEW_DASHBOARDS)
@require_http_methods(["GET", "HEAD"])
def cadence(request: HtmxHttpRequest) -> HttpResponse:
    now = timezone.now()
    filters, errors = parse_filters(request.GET, now.date())
    if "export" in request.GET:
        return _export(request.GET["export"], filters, errors, now)
    panel = request.GET.get("panel", "")
    fragment = request.htmx and not request.htmx.history_restore_request and panel in PANELS
    context: dict[str, Any] = {"filters": filters, "errors": errors, "now": now, "live": _live_context()}
    if errors:  # the form with what was wrong; panels only for filters that make sense
        response = render(request, f"{TEMPLATE}#filters" if request.htmx else TEMPLATE, _page_context(context), status=422)
    elif fragment:
        response = render(request, f"{TEMPLATE}#panel", {**context, "panel": load_panel(panel, filters, now)})
    else:
        panels = [load_panel(key, filters, now) for key in PANELS]
        response = render(request, TEMPLATE, _page_context({**context, "panels": panels}))
    patch_vary_headers(response, ("HX-Request",))
    return response


def _page_context(context: dict[str, Any]) -> dict[str, Any]:
    return {
        **context,
        "presets": PRESETS,
        "channels": Channel.choices,
        "categories": Category.choices,
        "journeys": list(Journey.objects.order_by("name").values_list("pk", "name")),
    }


def _live_context() -> dict[str, Any]:
    return {"websocket": live.pushes_live(), "poll_seconds": live.POLL_SECONDS,
            "refresh_seconds": live.REFRESH_SECONDS}


def _export(name: str, filters: Filters, errors: dict[str, str], now) -> HttpResponse:
    panel_key, _, figure_key = name.partition(".")
    if errors:
        problems = "; ".join(f"{field}: {reason}" for field, reason in errors.items())
        return HttpResponse(problems, status=400, content_type="text/plain; charset=utf-8")
    if panel_key not in PANELS:
        return HttpResponse(f"export: no panel {panel_key!r}; choose from {', '.join(PANELS)}", status=400,
                            content_type="text/plain; charset=utf-8")
    figures = {f.key: f for f in PANELS[panel_key].load(filters, now).figures()}
    if figure_key not in figures:
        return HttpResponse(f"export: panel {panel_key} has no figure {figure_key!r}; choose from {', '.join(figures)}",
                            status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="cadence-{panel_key}-{figure_key}-{filters.since}-{filters.until}.csv"'
    )
    csv.writer(response).writerows(figures[figure_key].csv_rows())
    return response


OVERLAP_PAGE_SIZE = 50


@require_capability(Capability.VIEW_DASHBOARDS)
@require_http_methods(["GET", "HEAD"])
def overlap_customers(request: HttpRequest, first: int, second: int) -> HttpResponse:
    """The customers behind one pair of the journey-overlap panel: inside both now."""
    journeys = dict(Journey.objects.filter(pk__in=[first, second]).values_list("pk", "name"))
    if first == second or len(journeys) != 2:
        raise Http404("No such pair of journeys.")
    page = Paginator(overlap.inside_both(first, second), OVERLAP_PAGE_SIZE).get_page(request.GET.get("page"))
    overlap.node_labels(page.object_list)
    return render(request, "dashboards/overlap.html", {
        "first": (first, journeys[first]), "second": (second, journeys[second]), "page": page,
    })
