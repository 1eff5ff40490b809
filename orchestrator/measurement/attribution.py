"""Multi-touch attribution: every model's credit per channel and per journey, side by side.

A conversion's touches are its customer's touches sent within the lookback window before
it: ``converted_at - lookback <= sent_at <= converted_at``, from any journey or none, which
is what makes it cross-channel (``ledger`` says what a conversion and a touch are, and runs
the models of ``credit`` in the database). Credit per model sums to the number of
conversions, and revenue credit to their value, because conversions with no touch in the
window get a row of their own ("no touch"). This module is the table those sums make.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from orchestrator.measurement.credit import MODELS, Model

DEFAULT_LOOKBACK = timedelta(days=7)
NO_TOUCH = "no touch"
OUTSIDE_JOURNEYS = "outside journeys"


@dataclass(frozen=True)
class CreditRow:
    key: str  # channel value, journey id as text, NO_TOUCH or OUTSIDE_JOURNEYS
    label: str
    conversions: dict[Model, float]
    revenue: dict[Model, float]
    touches: int  # touches counted in the window (0 for the no-touch row)


@dataclass(frozen=True)
class AttributionTable:
    conversions: int
    revenue: Decimal
    lookback: timedelta
    half_life: timedelta
    by_channel: list[CreditRow] = field(default_factory=list)
    by_journey: list[CreditRow] = field(default_factory=list)
    truncated: bool = False  # only the most recent conversions of the period were read


def credit_rows(
    sums: list[tuple[str, int, dict[Model, float], dict[Model, float]]],
    untouched: tuple[int, float],
    labels: Mapping[str, str],
) -> list[CreditRow]:
    """The rows of one table: ``sums`` is (key, touches, credit per model, revenue credit
    per model) per key; ``untouched`` the conversions with no touch and their value, each
    credited whole to the "no touch" row under every model. Most credited (linear) first,
    then by label; "no touch" last."""
    rows = [CreditRow(key, labels.get(key, key), credit, revenue, touches) for key, touches, credit, revenue in sums]
    count, value = untouched
    if count:
        rows.append(CreditRow(NO_TOUCH, labels.get(NO_TOUCH, NO_TOUCH), dict.fromkeys(MODELS, float(count)),
                              dict.fromkeys(MODELS, float(value)), 0))
    return sorted(rows, key=lambda r: (r.key == NO_TOUCH, -r.conversions[Model.LINEAR], r.label))
