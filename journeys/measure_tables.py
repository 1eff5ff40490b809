"""What the measurement pages show, in words and rows: the lift sentence, the attribution
tables with the models side by side, chart data and the CSV files behind each table."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal

from django.http import HttpResponse
from django.utils.text import slugify

from orchestrator.measurement.attribution import (
    NO_TOUCH,
    OUTSIDE_JOURNEYS,
    AttributionTable,
    CreditRow,
)
from orchestrator.measurement.credit import MODELS
from orchestrator.measurement.kpis import GroupKpis, JourneyKpis
from orchestrator.measurement.sequences import SequenceRow
from orchestrator.measurement.stats import Lift

MODEL_COLUMNS = [(model.value, label) for model, (label, _) in MODELS.items()]


def pct(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def points(fraction: float) -> str:
    return f"{fraction * 100:+.1f}"


def lift_sentence(lift: Lift) -> str:
    """E.g. "Converted 12.4% vs 9.1% in the holdout: +3.3 points (95% CI +1.1 to +5.5)"."""
    level = f"{lift.confidence * 100:.0f}%"
    ci = lift.absolute_interval
    return (
        f"Converted {pct(lift.treatment_rate)} vs {pct(lift.holdout_rate)} in the holdout: "
        f"{points(lift.absolute)} points ({level} CI {points(ci.low)} to {points(ci.high)})"
    )


def relative_sentence(lift: Lift) -> str:
    """E.g. "+36% relative (95% CI +8% to +71%)"; "" when the holdout converted no one."""
    if lift.relative is None:
        return ""
    text = f"{lift.relative * 100:+.0f}% relative"
    if lift.relative_interval is not None:
        ci = lift.relative_interval
        text += f" ({lift.confidence * 100:.0f}% CI {ci.low * 100:+.0f}% to {ci.high * 100:+.0f}%)"
    return text


@dataclass(frozen=True)
class Cell:
    conversions: float
    revenue: float


@dataclass(frozen=True)
class TableRow:
    key: str
    label: str
    touches: int
    cells: list[Cell]  # in MODEL_COLUMNS order
    muted: bool  # the no-touch and outside-journeys rows


def table_rows(rows: list[CreditRow]) -> list[TableRow]:
    return [
        TableRow(
            row.key, row.label, row.touches,
            [Cell(row.conversions[model], row.revenue[model]) for model in MODELS],
            row.key in (NO_TOUCH, OUTSIDE_JOURNEYS),
        )
        for row in rows
    ]


def total_cells(rows: list[CreditRow]) -> list[Cell]:
    """Column sums: every model's equal the conversions (and their revenue)."""
    return [Cell(sum(r.conversions[m] for r in rows), sum(r.revenue[m] for r in rows)) for m in MODELS]


def attribution_chart(table: AttributionTable) -> dict:
    """Credit per channel, one bar per model (the no-touch row left out of the chart)."""
    rows = [r for r in table.by_channel if r.key != NO_TOUCH]
    return {
        "labels": [r.label for r in rows],
        "keys": [r.key for r in rows],
        "datasets": [
            {"label": label, "model": model.value, "data": [round(r.conversions[model], 4) for r in rows]}
            for model, (label, _) in MODELS.items()
        ],
    }


def kpi_rows(kpis: JourneyKpis) -> list[tuple[str, str, GroupKpis, str]]:
    """(label, key, figures, conversion rate in words) per group, then both together."""
    groups = [("Sent to", "treatment", kpis.treatment), ("Holdout", "holdout", kpis.holdout), ("All", "all", kpis.total)]
    return [(label, key, g, pct(g.conversion_rate) if g.conversion_rate is not None else "") for label, key, g in groups]


def kpi_chart(kpis: JourneyKpis) -> dict:
    groups = [("Sent to", kpis.treatment), ("Holdout", kpis.holdout)]
    return {
        "labels": [label for label, group in groups if group.entered],
        "data": [round((group.conversion_rate or 0) * 100, 2) for _, group in groups if group.entered],
    }


# --- CSV ---------------------------------------------------------------------------------


def csv_response(name: str, header: list[str], rows: list[list]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slugify(name)}.csv"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def kpi_csv(name: str, kpis: JourneyKpis) -> HttpResponse:
    def row(group: str, k: GroupKpis) -> list:
        return [group, k.entered, k.in_progress, k.converted, _rate(k.conversion_rate), _money(k.revenue), _money(k.revenue_per_entrant)]

    header = ["group", "entered", "in_progress", "converted", "conversion_rate", "revenue", "revenue_per_entrant"]
    rows = [row("treatment", kpis.treatment), row("holdout", kpis.holdout), row("all", kpis.total)]
    return csv_response(f"{name} summary", header, rows)


def sequences_csv(name: str, sequences: list[SequenceRow]) -> HttpResponse:
    header = ["sequence", "touches", "enrollments", "converted", "conversion_rate"]
    rows = [[" > ".join(s.channels), len(s.channels), s.enrollments, s.converted, _rate(s.conversion_rate)] for s in sequences]
    return csv_response(f"{name} touch sequences", header, rows)


def attribution_csv(name: str, rows: list[CreditRow], dimension: str) -> HttpResponse:
    header = [dimension, "label", "touches"]
    header += [f"{m.value}_conversions" for m in MODELS] + [f"{m.value}_revenue" for m in MODELS]
    lines = [
        [r.key, r.label, r.touches]
        + [f"{r.conversions[m]:.4f}" for m in MODELS]
        + [f"{r.revenue[m]:.2f}" for m in MODELS]
        for r in rows
    ]
    return csv_response(f"{name} attribution by {dimension}", header, lines)


def model_labels() -> dict[str, str]:
    return {model.value: label for model, (label, _) in MODELS.items()}

