"""Attribution models: how one conversion's credit (1) is split over the touches before it.

The rules are SQL, so the database credits every touch of every conversion and only the
sums leave it (``ledger`` runs them; the per-customer path reads the same shares). Each
rule is an expression over one touch of one conversion:

- ``pos``: the touch's place, 1 = oldest (ties on the send time by message id);
- ``n``: how many touches the conversion has in its window;
- ``decay``: the touch's time-decay weight relative to the newest touch,
  2^-(newest's age - its age in seconds / half-life), so the newest weighs 1;
- ``decay_total``: the sum of the conversion's ``decay`` weights.

The shares of a conversion with touches always sum to 1. A conversion with no touch is
credited to nobody (the tables show it as "no touch").

- first touch: all to the oldest touch.
- last touch: all to the newest.
- linear: 1/n each.
- time decay: a touch sent d before the conversion weighs 2^(-d / half-life), then the
  weights are scaled to sum to 1 (half-life configurable, default 7 days). Weighing
  against the newest touch rather than the conversion gives the same shares and never
  underflows to 0/0 on a long lookback with a short half-life.
- position based ("U-shape"): 40 % first, 40 % last, the remaining 20 % split evenly over
  the touches between; with two touches 50 % each, with one touch 100 %.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

DEFAULT_HALF_LIFE = timedelta(days=7)
ENDS_SHARE = 0.4  # each end of the U


def _real(value: float | int | str) -> str:
    """A double-precision SQL value (PostgreSQL would otherwise divide in exact numeric)."""
    return f"CAST({value} AS DOUBLE PRECISION)"


class Model(StrEnum):
    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION_BASED = "position_based"


# The registry: model -> (label, share of one touch in SQL). Choices, table columns and the
# credit query's columns (named by the model's value) all come from here.
MODELS: dict[Model, tuple[str, str]] = {
    Model.FIRST_TOUCH: ("First touch", f"CASE WHEN pos = 1 THEN {_real(1)} ELSE {_real(0)} END"),
    Model.LAST_TOUCH: ("Last touch", f"CASE WHEN pos = n THEN {_real(1)} ELSE {_real(0)} END"),
    Model.LINEAR: ("Linear", f"{_real(1)} / n"),
    Model.TIME_DECAY: ("Time decay", "decay / decay_total"),
    Model.POSITION_BASED: (
        "Position based",
        f"CASE WHEN n <= 2 THEN {_real(1)} / n WHEN pos = 1 OR pos = n THEN {_real(ENDS_SHARE)}"
        f" ELSE {_real(round(1 - 2 * ENDS_SHARE, 9))} / (n - 2) END",
    ),
}


def decay_sql(age_seconds: str, newest_age_seconds: str, half_life: timedelta) -> str:
    """The time-decay weight of a touch ``age_seconds`` before its conversion, relative to
    the conversion's newest touch."""
    return f"POWER({_real(0.5)}, ({age_seconds} - {newest_age_seconds}) / {_real(half_life.total_seconds())})"
