"""Lift against the holdout: the rates, the Newcombe interval of their difference, the
delta-method interval of the relative lift, the sentence the page prints, and the
per-group figures counted from the enrollments (one GROUP BY)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from journeys.measure_tables import lift_sentence, relative_sentence
from orchestrator.engine.models import EnrollmentState
from orchestrator.measurement.kpis import GroupKpis, journey_kpis
from orchestrator.measurement.stats import lift, newcombe_difference, wilson, z_for
from tests import measurement_factories as f

Z95 = 1.959963984540054


def test_z_for_95_percent_is_1_96():
    assert z_for(0.95) == pytest.approx(Z95, abs=1e-12)


def test_wilson_interval_of_56_in_70():
    # p = 0.8, z² = 3.841459, z²/n = 0.054878, denominator 1.054878
    # centre = (0.8 + 0.027439) / 1.054878 = 0.784393
    # half = 1.959964 / 1.054878 * sqrt(0.8 * 0.2 / 70 + 3.841459 / (4 * 70²))
    #      = 1.858003 * sqrt(0.0022857 + 0.0001960) = 1.858003 * 0.049817 = 0.092559
    interval = wilson(56, 70, Z95)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.6918, 0.8770)


def test_difference_interval_matches_newcombes_worked_example():
    # Newcombe (1998), example (a): 56/70 - 48/80 = 0.2000, method 10: 0.0524 to 0.3339.
    # Wilson 48/80 = (0.490455, 0.700382), 56/70 = (0.691834, 0.876953)
    # low  = 0.2 - sqrt((0.8 - 0.691834)² + (0.700382 - 0.6)²) = 0.2 - 0.147569 = 0.052431
    # high = 0.2 + sqrt((0.876953 - 0.8)² + (0.6 - 0.490455)²) = 0.2 + 0.133873 = 0.333873
    interval = newcombe_difference(56, 70, 48, 80, Z95)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.0524, 0.3339)


def test_relative_lift_interval_by_the_delta_method_on_the_log_ratio():
    # RR = 0.8 / 0.6 = 1.333333, ln RR = 0.287682
    # se = sqrt(1/56 - 1/70 + 1/48 - 1/80) = sqrt(0.0119048) = 0.109109
    # exp(0.287682 ∓ 1.959964 × 0.109109) - 1 = exp(0.073832) - 1, exp(0.501532) - 1 = 0.0766, 0.6512
    result = lift(56, 70, 48, 80)
    assert round(result.relative, 4) == 0.3333
    assert (round(result.relative_interval.low, 4), round(result.relative_interval.high, 4)) == (0.0766, 0.6512)


def test_lift_sentence_in_plain_words():
    # 124/1000 vs 91/1000: +3.3 points. Wilson 124/1000 = (0.104997, 0.145875), 91/1000 = (0.074705, 0.110425)
    # low  = 0.033 - sqrt(0.019003² + 0.019425²) = 0.033 - 0.027175 = 0.0058 -> +0.6
    # high = 0.033 + sqrt(0.021875² + 0.016295²) = 0.033 + 0.027277 = 0.0603 -> +6.0
    result = lift(124, 1000, 91, 1000)
    assert lift_sentence(result) == "Converted 12.4% vs 9.1% in the holdout: +3.3 points (95% CI +0.6 to +6.0)"
    assert relative_sentence(result) == "+36% relative (95% CI +5% to +76%)"
    assert result.significant is True


def test_an_interval_across_zero_is_not_significant():
    assert lift(10, 100, 9, 100).significant is False


def test_no_relative_lift_when_the_holdout_converted_no_one():
    result = lift(5, 50, 0, 10)
    assert (result.relative, result.relative_interval, relative_sentence(result)) == (None, None, "")
    assert round(result.absolute, 4) == 0.1


def test_no_lift_without_entrants_in_both_groups():
    assert lift(3, 10, 0, 0) is None
    assert lift(0, 0, 1, 5) is None


@pytest.mark.django_db
def test_journey_figures_per_group_in_one_query():
    journey = f.journey()
    for value in ("100.00", "50.50"):
        f.converted(journey, f.customer(), f.T0 + f.HOUR, value)
    f.enrollment(journey, f.customer())  # completed, no conversion
    f.enrollment(journey, f.customer(), state=EnrollmentState.WAITING)
    f.converted(journey, f.customer(), f.T0 + f.HOUR, "20.00", holdout=True)
    f.enrollment(journey, f.customer(), holdout=True)
    f.enrollment(f.journey("Another"), f.customer())  # someone else's journey
    with CaptureQueriesContext(connection) as queries:
        kpis = journey_kpis(journey.pk)
    assert len(queries) == 1
    assert kpis.treatment == GroupKpis(entered=4, in_progress=1, converted=2, revenue=Decimal("150.50"))
    assert kpis.holdout == GroupKpis(entered=2, in_progress=0, converted=1, revenue=Decimal("20.00"))
    assert (kpis.treatment.revenue_per_entrant, kpis.holdout.revenue_per_entrant) == (Decimal("37.63"), Decimal("10.00"))
    assert kpis.total == GroupKpis(6, 1, 3, Decimal("170.50"))
    assert (kpis.lift.treatment_rate, kpis.lift.holdout_rate) == (0.5, 0.5)


@pytest.mark.django_db
def test_journey_figures_count_entrants_of_the_period_only():
    journey = f.journey()
    f.enrollment(journey, f.customer(), entered_at=f.T0 - f.DAY)
    f.enrollment(journey, f.customer(), entered_at=f.T0)
    f.enrollment(journey, f.customer(), entered_at=f.T0 + f.DAY)  # the end is exclusive
    kpis = journey_kpis(journey.pk, since=f.T0, until=f.T0 + f.DAY)
    assert (kpis.treatment.entered, kpis.holdout.entered, kpis.lift) == (1, 0, None)
