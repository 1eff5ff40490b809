"""Multi-touch attribution: every model's credit per channel and per journey, side by side.

Pure: takes conversions and each customer's touches (see ``measurement.ledger`` for what
the ledger calls a conversion and a touch) and returns the table. A conversion's touches
are its customer's touches sent within the lookback window before it:
``converted_at - lookback <= sent_at <= converted_at``, from any journey or none, which is
what makes it cross-channel. Credit per model sums to the number of conversions, and
revenue credit to their value, because conversions with no touch in the window get a row
of their own ("no touch").
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from customers.enums import Channel
from orchestrator.measurement.credit import DEFAULT_HALF_LIFE, MODELS, Model, shares

DEFAULT_LOOKBACK = timedelta(days=7)
NO_TOUCH = "no touch"
OUTSIDE_JOURNEYS = "outside journeys"


@dataclass(frozen=True)
class Touch:
    message_id: int
    customer_id: int
    channel: str
    journey_id: int | None
    sent_at: datetime


@dataclass(frozen=True)
class Conversion:
    key: int  # the enrollment converted
    customer_id: int
    journey_id: int
    converted_at: datetime
    value: Decimal | None


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


def window(touches: Sequence[Touch], times: Sequence[datetime], converted_at: datetime, lookback: timedelta) -> Sequence[Touch]:
    """The touches (sorted by sent_at; ``times`` their sent_at) in [converted_at - lookback, converted_at]."""
    return touches[bisect_left(times, converted_at - lookback):bisect_right(times, converted_at)]


class _Tally:
    def __init__(self) -> None:
        self.conversions: dict[str, dict[Model, float]] = defaultdict(lambda: dict.fromkeys(MODELS, 0.0))
        self.revenue: dict[str, dict[Model, float]] = defaultdict(lambda: dict.fromkeys(MODELS, 0.0))
        self.touches: dict[str, int] = defaultdict(int)

    def add(self, key: str, model: Model, share: float, value: float) -> None:
        self.conversions[key][model] += share
        self.revenue[key][model] += share * value

    def rows(self, labels: Mapping[str, str]) -> list[CreditRow]:
        rows = [
            CreditRow(key, labels.get(key, key), self.conversions[key], self.revenue[key], self.touches[key])
            for key in self.conversions
        ]
        # Most credited first under the linear model; "no touch" last.
        return sorted(rows, key=lambda r: (r.key == NO_TOUCH, -r.conversions[Model.LINEAR], r.label))


def attribute(
    conversions: Sequence[Conversion],
    touches_of: Mapping[int, Sequence[Touch]],
    lookback: timedelta = DEFAULT_LOOKBACK,
    half_life: timedelta = DEFAULT_HALF_LIFE,
    journey_names: Mapping[int, str] | None = None,
) -> AttributionTable:
    """Credit per channel and per journey under every model.

    ``touches_of`` maps a conversion's key to its customer's touches sorted by sent_at (all
    of them, or already narrowed to the window: the window is applied here either way).
    """
    channels, journeys = _Tally(), _Tally()
    for conversion in conversions:
        touches = touches_of.get(conversion.key, ())
        found = window(touches, [t.sent_at for t in touches], conversion.converted_at, lookback)
        _credit(conversion, found, half_life, channels, journeys)
    names = {str(pk): name for pk, name in (journey_names or {}).items()}
    return AttributionTable(
        conversions=len(conversions),
        revenue=sum((c.value or Decimal("0.00") for c in conversions), Decimal("0.00")),
        lookback=lookback,
        half_life=half_life,
        by_channel=channels.rows({**dict(Channel.choices), NO_TOUCH: "No touch in the window"}),
        by_journey=journeys.rows({**names, NO_TOUCH: "No touch in the window", OUTSIDE_JOURNEYS: "Outside journeys"}),
    )


def _credit(conversion: Conversion, touches: Sequence[Touch], half_life: timedelta, channels: _Tally, journeys: _Tally) -> None:
    value = float(conversion.value or 0)
    if not touches:
        for model in MODELS:
            channels.add(NO_TOUCH, model, 1.0, value)
            journeys.add(NO_TOUCH, model, 1.0, value)
        return
    by_model = shares([t.sent_at for t in touches], conversion.converted_at, half_life)
    for touch in touches:
        channels.touches[touch.channel] += 1
        journeys.touches[_journey_key(touch)] += 1
    for model, split in by_model.items():
        for touch, share in zip(touches, split, strict=True):
            channels.add(touch.channel, model, share, value)
            journeys.add(_journey_key(touch), model, share, value)


def _journey_key(touch: Touch) -> str:
    return str(touch.journey_id) if touch.journey_id is not None else OUTSIDE_JOURNEYS
