"""One journey's outcome, treatment against holdout: one GROUP BY over its enrollments.

The holdout (``Enrollment.holdout``) enters and walks the journey but is sent nothing; its
conversion rate is what the journey would have converted without its messages, so the
lift is the difference. Both groups' conversions are the engine's goal conversions
(``converted_at`` set within the goal window); revenue is the goal event's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Q, Sum

from orchestrator.engine.models import Enrollment, EnrollmentState
from orchestrator.measurement.stats import Lift, lift


@dataclass(frozen=True)
class GroupKpis:
    entered: int = 0
    in_progress: int = 0
    converted: int = 0
    revenue: Decimal = Decimal("0.00")

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.entered if self.entered else None

    @property
    def revenue_per_entrant(self) -> Decimal | None:
        return (self.revenue / self.entered).quantize(Decimal("0.01"), ROUND_HALF_UP) if self.entered else None


@dataclass(frozen=True)
class JourneyKpis:
    treatment: GroupKpis
    holdout: GroupKpis
    lift: Lift | None  # None without entrants in both groups

    @property
    def total(self) -> GroupKpis:
        t, h = self.treatment, self.holdout
        return GroupKpis(
            t.entered + h.entered, t.in_progress + h.in_progress, t.converted + h.converted, t.revenue + h.revenue
        )


def journey_kpis(journey_id: int, since: datetime | None = None, until: datetime | None = None) -> JourneyKpis:
    """Enrollments that entered in [since, until) (any version), by group."""
    enrollments = Enrollment.objects.filter(journey_id=journey_id)
    if since is not None:
        enrollments = enrollments.filter(entered_at__gte=since)
    if until is not None:
        enrollments = enrollments.filter(entered_at__lt=until)
    rows = enrollments.order_by().values("holdout").annotate(
        entered=Count("id"),
        in_progress=Count("id", filter=~Q(state=EnrollmentState.EXITED)),
        converted=Count("id", filter=Q(converted_at__isnull=False)),
        revenue=Sum("conversion_value", filter=Q(converted_at__isnull=False)),
    )
    groups = {
        row["holdout"]: GroupKpis(
            row["entered"], row["in_progress"], row["converted"], row["revenue"] or Decimal("0.00")
        )
        for row in rows
    }
    treatment, holdout = groups.get(False, GroupKpis()), groups.get(True, GroupKpis())
    return JourneyKpis(
        treatment, holdout, lift(treatment.converted, treatment.entered, holdout.converted, holdout.entered)
    )
