"""Lift against the holdout: the difference of two conversion rates, with confidence intervals.

Absolute lift (treatment rate minus holdout rate, in points) takes Newcombe's hybrid score
interval (method 10 of Newcombe 1998, "Interval estimation for the difference between
independent proportions"): it combines the Wilson score interval of each rate. Unlike the
plain normal (Wald) interval it stays inside [-1, 1], behaves with small groups and with
rates near 0 or 1, and needs no continuity fudge. Newcombe's own worked example (56/70 vs
48/80: +0.1750, 95% CI +0.0524 to +0.3339) is a test.

Relative lift (treatment rate / holdout rate - 1) takes the delta method on the log of the
rate ratio (Katz's log interval): se(ln RR) = sqrt(1/c1 - 1/n1 + 1/c0 - 1/n0). It is
undefined when either group has no conversions (the ratio is 0 or infinite), and then
reported as None rather than as a made-up number.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import exp, log, sqrt
from statistics import NormalDist

DEFAULT_CONFIDENCE = 0.95


def z_for(confidence: float) -> float:
    """Two-sided critical value: 1.959964 for 95 %."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson(successes: int, trials: int, z: float) -> Interval:
    """Wilson score interval of successes / trials (trials > 0)."""
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return Interval(max(centre - half, 0.0), min(centre + half, 1.0))


def newcombe_difference(c1: int, n1: int, c0: int, n0: int, z: float) -> Interval:
    """Interval of c1/n1 - c0/n0 from the two Wilson intervals (Newcombe's method 10)."""
    p1, p0 = c1 / n1, c0 / n0
    w1, w0 = wilson(c1, n1, z), wilson(c0, n0, z)
    difference = p1 - p0
    low = difference - sqrt((p1 - w1.low) ** 2 + (w0.high - p0) ** 2)
    high = difference + sqrt((w1.high - p1) ** 2 + (p0 - w0.low) ** 2)
    return Interval(low, high)


def relative_lift_interval(c1: int, n1: int, c0: int, n0: int, z: float) -> Interval | None:
    """Interval of (c1/n1) / (c0/n0) - 1 by the delta method on ln(RR); None if undefined."""
    if not (c1 and c0):
        return None
    log_ratio = log((c1 / n1) / (c0 / n0))
    se = sqrt(1 / c1 - 1 / n1 + 1 / c0 - 1 / n0)
    return Interval(exp(log_ratio - z * se) - 1, exp(log_ratio + z * se) - 1)


@dataclass(frozen=True)
class Lift:
    """Treatment against holdout. Rates and differences are fractions (0.124 = 12.4 %)."""

    treatment_rate: float
    holdout_rate: float
    absolute: float  # treatment_rate - holdout_rate
    absolute_interval: Interval
    relative: float | None  # treatment_rate / holdout_rate - 1; None when the holdout rate is 0
    relative_interval: Interval | None
    confidence: float

    @property
    def significant(self) -> bool:
        """The interval of the difference leaves out zero."""
        return self.absolute_interval.low > 0 or self.absolute_interval.high < 0


def lift(c1: int, n1: int, c0: int, n0: int, confidence: float = DEFAULT_CONFIDENCE) -> Lift | None:
    """Treatment (c1 converted of n1) against holdout (c0 of n0); None when a group is empty."""
    if not (n1 and n0):
        return None
    z = z_for(confidence)
    p1, p0 = c1 / n1, c0 / n0
    return Lift(
        treatment_rate=p1,
        holdout_rate=p0,
        absolute=p1 - p0,
        absolute_interval=newcombe_difference(c1, n1, c0, n0, z),
        relative=p1 / p0 - 1 if p0 else None,
        relative_interval=relative_lift_interval(c1, n1, c0, n0, z),
        confidence=confidence,
    )
