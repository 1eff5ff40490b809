"""Attribution models: how one conversion's credit (1) is split over the touches before it.

Each rule takes the touches' sent times, oldest first, and the conversion time, and returns
one share per touch; the shares of a conversion with touches always sum to 1. A
conversion with no touch is credited to nobody (the tables show it as "no touch").

- first touch: all to the oldest touch.
- last touch: all to the newest.
- linear: 1/n each.
- time decay: a touch sent d before the conversion weighs 2^(-d / half-life), then the
  weights are scaled to sum to 1 (half-life configurable, default 7 days).
- position based ("U-shape"): 40 % first, 40 % last, the remaining 20 % split evenly over
  the touches between; with two touches 50 % each, with one touch 100 %.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

DEFAULT_HALF_LIFE = timedelta(days=7)
ENDS_SHARE = 0.4  # each end of the U


class Model(StrEnum):
    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION_BASED = "position_based"


def first_touch(times: Sequence[datetime], converted_at: datetime, half_life: timedelta) -> list[float]:
    return [1.0] + [0.0] * (len(times) - 1)


def last_touch(times: Sequence[datetime], converted_at: datetime, half_life: timedelta) -> list[float]:
    return [0.0] * (len(times) - 1) + [1.0]


def linear(times: Sequence[datetime], converted_at: datetime, half_life: timedelta) -> list[float]:
    return [1 / len(times)] * len(times)


def time_decay(times: Sequence[datetime], converted_at: datetime, half_life: timedelta) -> list[float]:
    weights = [0.5 ** ((converted_at - t) / half_life) for t in times]
    total = sum(weights)
    return [w / total for w in weights]


def position_based(times: Sequence[datetime], converted_at: datetime, half_life: timedelta) -> list[float]:
    n = len(times)
    if n <= 2:
        return [1 / n] * n
    middle = (1 - 2 * ENDS_SHARE) / (n - 2)
    return [ENDS_SHARE] + [middle] * (n - 2) + [ENDS_SHARE]


Rule = Callable[[Sequence[datetime], datetime, timedelta], list[float]]

# The registry: model -> (label, rule). Choices and table columns come from here.
MODELS: dict[Model, tuple[str, Rule]] = {
    Model.FIRST_TOUCH: ("First touch", first_touch),
    Model.LAST_TOUCH: ("Last touch", last_touch),
    Model.LINEAR: ("Linear", linear),
    Model.TIME_DECAY: ("Time decay", time_decay),
    Model.POSITION_BASED: ("Position based", position_based),
}


def shares(times: Sequence[datetime], converted_at: datetime, half_life: timedelta = DEFAULT_HALF_LIFE) -> dict[Model, list[float]]:
    """Every model's shares for one conversion's touches (sent times, oldest first)."""
    if not times:
        return {model: [] for model in MODELS}
    return {model: rule(times, converted_at, half_life) for model, (_, rule) in MODELS.items()}
