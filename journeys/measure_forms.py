"""The measurement pages' filters: a period, the attribution lookback and the time-decay half-life."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django import forms

from orchestrator.measurement.ledger import Period

DEFAULT_LOOKBACK_DAYS = 7
DEFAULT_HALF_LIFE_DAYS = 7
LOOKBACK_CHOICES = (1, 3, 7, 14, 30, 60, 90)


@dataclass(frozen=True)
class Filters:
    period: Period
    lookback: timedelta
    half_life: timedelta
    lookback_days: int
    half_life_days: float
    journey_id: int | None = None


class MeasureFilterForm(forms.Form):
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    lookback = forms.IntegerField(
        required=False, min_value=1, max_value=365, label="Lookback (days)",
        help_text="Touches sent this many days before a conversion share its credit.",
    )
    half_life = forms.FloatField(
        required=False, min_value=0.1, max_value=365, label="Decay half-life (days)",
        help_text="Time decay: a touch this much older than another gets half its weight.",
    )

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end of the period must be on or after its start.")
        return data

    def filters(self, journey_id: int | None = None) -> Filters:
        """The cleaned filters (call after is_valid)."""
        data = self.cleaned_data
        lookback = data.get("lookback") or DEFAULT_LOOKBACK_DAYS
        half_life = data.get("half_life") or DEFAULT_HALF_LIFE_DAYS
        period = Period(_start_of(data.get("since")), _start_of(data.get("until"), days_after=1))
        return Filters(period, timedelta(days=lookback), timedelta(days=half_life), lookback, half_life, journey_id)


def _start_of(day: date | None, days_after: int = 0) -> datetime | None:
    """Midnight UTC of the day (the day after, for an inclusive end)."""
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=days_after), time.min, tzinfo=UTC)


def default_filters() -> Filters:
    """What the pages show while the filters in the URL are invalid: nothing is computed."""
    return Filters(
        Period(), timedelta(days=DEFAULT_LOOKBACK_DAYS), timedelta(days=DEFAULT_HALF_LIFE_DAYS),
        DEFAULT_LOOKBACK_DAYS, DEFAULT_HALF_LIFE_DAYS,
    )
