"""Measurement pages: one journey's outcome and attribution, attribution across every
journey, and one customer's path to conversion.

Each page is also its tables' CSV files (``?export=<table>``, with the same filters), so
what is downloaded is what is shown. Everything is read from the ledger by
``orchestrator.measurement``; nothing here writes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods

from journeys import measure_tables as tables
from journeys.measure_forms import LOOKBACK_CHOICES, Filters, MeasureFilterForm, default_filters
from journeys.models import Journey
from orchestrator.engine.models import Enrollment
from orchestrator.measurement.attribution import AttributionTable
from orchestrator.measurement.credit import MODELS, Model
from orchestrator.measurement.kpis import journey_kpis
from orchestrator.measurement.ledger import Period, journey_attribution
from orchestrator.measurement.paths import conversion_path
from orchestrator.measurement.sequences import touch_sequences
from orchestrator.roles import Capability, require_capability

JOURNEY_EXPORTS = ("summary", "sequences", "channels", "journeys")
OVERVIEW_EXPORTS = ("channels", "journeys")
RECENT_CONVERSIONS = 10


def _export(request: HttpRequest, allowed: tuple[str, ...]) -> str:
    export = request.GET.get("export", "")
    if export and export not in allowed:
        raise Http404(f"No table {export!r} to export.")
    return export


def _query_without_export(request: HttpRequest) -> str:
    return urlencode([(k, v) for k, v in request.GET.items() if k != "export" and v])


def _attribution_context(table: AttributionTable, filters: Filters) -> dict[str, Any]:
    return {
        "attribution": table,
        "attribution_tables": [
            ("By channel", "channel", tables.table_rows(table.by_channel), tables.total_cells(table.by_channel)),
            ("By journey", "journey", tables.table_rows(table.by_journey), tables.total_cells(table.by_journey)),
        ],
        "lookback_options": sorted({*LOOKBACK_CHOICES, filters.lookback_days}),
        "truncated": table.truncated,
        "attribution_chart": tables.attribution_chart(table),
    }


def _base_context(request: HttpRequest, form: MeasureFilterForm) -> dict[str, Any]:
    return {
        "form": form,
        "models": tables.MODEL_COLUMNS,
        "lookback_options": LOOKBACK_CHOICES,
        "query": _query_without_export(request),
    }


@require_capability(Capability.VIEW_JOURNEYS)
@require_http_methods(["GET", "HEAD"])
def journey_measurement(request: HttpRequest, pk: int) -> HttpResponse:
    journey = get_object_or_404(Journey, pk=pk)
    export = _export(request, JOURNEY_EXPORTS)
    form = MeasureFilterForm(request.GET)
    context = {"journey": journey, **_base_context(request, form)}
    if not form.is_valid():
        # Nothing computed on filters that do not mean anything; the form says why.
        return render(request, "journeys/measure/journey.html", context | {"filters": default_filters()}, status=400)
    filters = form.filters(journey.pk)
    period = filters.period
    kpis = journey_kpis(journey.pk, period.since, period.until)
    if export == "summary":
        return tables.kpi_csv(journey.name, kpis)
    sequences = touch_sequences(journey.pk, period.since, period.until)
    if export == "sequences":
        return tables.sequences_csv(journey.name, sequences)
    attribution = journey_attribution([journey.pk], period, filters.lookback, filters.half_life)
    if export:
        rows = attribution.by_channel if export == "channels" else attribution.by_journey
        return tables.attribution_csv(journey.name, rows, export.removesuffix("s"))
    context |= {
        "filters": filters,
        "kpis": kpis,
        "lift_sentence": tables.lift_sentence(kpis.lift) if kpis.lift else "",
        "relative_sentence": tables.relative_sentence(kpis.lift) if kpis.lift else "",
        "kpi_chart": tables.kpi_chart(kpis),
        "kpi_rows": tables.kpi_rows(kpis),
        "sequence_rows": [(row, tables.pct(row.conversion_rate)) for row in sequences],
        "recent": _recent_conversions(journey, period),
        **_attribution_context(attribution, filters),
    }
    return render(request, "journeys/measure/journey.html", context)


def _recent_conversions(journey: Journey, period: Period) -> list[Enrollment]:
    converted = Enrollment.objects.filter(journey=journey, converted_at__isnull=False).select_related("customer")
    if period.since is not None:
        converted = converted.filter(converted_at__gte=period.since)
    if period.until is not None:
        converted = converted.filter(converted_at__lt=period.until)
    return list(converted.defer("context", "touch_sequence").order_by("-converted_at", "-id")[:RECENT_CONVERSIONS])


@require_capability(Capability.VIEW_JOURNEYS)
@require_http_methods(["GET", "HEAD"])
def attribution_overview(request: HttpRequest) -> HttpResponse:
    export = _export(request, OVERVIEW_EXPORTS)
    form = MeasureFilterForm(request.GET)
    context = _base_context(request, form)
    if not form.is_valid():
        return render(request, "journeys/measure/attribution.html", context | {"filters": default_filters()}, status=400)
    filters = form.filters()
    attribution = journey_attribution(None, filters.period, filters.lookback, filters.half_life)
    if export:
        rows = attribution.by_channel if export == "channels" else attribution.by_journey
        return tables.attribution_csv("all journeys", rows, export.removesuffix("s"))
    context |= {"filters": filters, **_attribution_context(attribution, filters)}
    return render(request, "journeys/measure/attribution.html", context)


def _credit_cells(credits: dict[Model, float] | None) -> list[tuple[str, str, float]]:
    """(model, label, share) in column order; empty for a message the conversion does not credit."""
    return [(model.value, label, credits[model]) for model, (label, _) in MODELS.items()] if credits else []


@require_capability(Capability.VIEW_JOURNEYS)
@require_http_methods(["GET", "HEAD"])
def conversion_path_view(request: HttpRequest, pk: int, enrollment_id: int) -> HttpResponse:
    enrollment = get_object_or_404(
        Enrollment.objects.select_related("customer", "journey"), pk=enrollment_id, journey_id=pk
    )
    form = MeasureFilterForm(request.GET)
    valid = form.is_valid()
    filters = form.filters(pk) if valid else default_filters()
    path = conversion_path(enrollment, filters.lookback, filters.half_life)
    context = {
        "form": form,
        "filters": filters,
        "path": path,
        "enrollment": enrollment,
        "journey": enrollment.journey,
        "customer": enrollment.customer,
        "models": tables.MODEL_COLUMNS,
        "touch_rows": [(t, _credit_cells(t.credits)) for t in path.touches],
        "window_start": enrollment.converted_at - filters.lookback if enrollment.converted_at else None,
    }
    return render(request, "journeys/measure/path.html", context, status=200 if valid else 400)

