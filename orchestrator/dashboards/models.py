"""Rollups of the message ledger that keep the cadence dashboard fast on a large ledger.

Kept exact by ``orchestrator.dashboards.rollups`` (the ledger's listener, inside the
transaction that moves the messages) and rebuilt from the ledger by
``./chorus manage rebuild_dashboard_rollups``. A message *counts* while its status says it
left Chorus and was not refused (``rollups.COUNTED``), on the UTC day it was queued.

Histogram and mix rows are appended, never updated in place: every send would otherwise
update the same "today" rows and serialise all workers on their row locks. Readers sum
them; the rebuild folds them back into one row per key.
"""

from __future__ import annotations

from django.db import models


class Span(models.TextChoices):
    DAY = "d", "Day"
    WEEK = "w", "Week (from Monday)"


class CustomerDay(models.Model):
    """A customer's counted messages on one UTC day, all channels and categories together.

    Only what the "heaviest-messaged customers" list needs: it is read highest count first.
    """

    customer_id = models.BigIntegerField()
    day = models.DateField()
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer_id", "day"], name="dash_customer_day_unique")]
        indexes = [models.Index(fields=["-count", "day"], name="dash_customer_day_count_idx")]

    def __str__(self) -> str:
        return f"customer {self.customer_id} on {self.day}: {self.count}"


class PressureBucket(models.Model):
    """``customers`` more (or, negative, fewer) customers had exactly ``messages`` counted
    messages in the span starting ``start``, within a channel ("" = all channels) and a
    category ("" = both)."""

    span = models.CharField(max_length=1, choices=Span.choices)
    start = models.DateField()
    channel = models.CharField(max_length=16, blank=True)
    category = models.CharField(max_length=16, blank=True)
    messages = models.PositiveIntegerField()
    customers = models.IntegerField()

    class Meta:
        indexes = [models.Index(fields=["span", "channel", "category", "start"], name="dash_pressure_idx")]

    def __str__(self) -> str:
        return f"{self.span} {self.start} {self.channel or 'all'}/{self.category or 'all'}: {self.messages} × {self.customers}"


class MixCount(models.Model):
    """``count`` counted messages (a delta) queued on ``day`` on a channel, by journey (0: none)."""

    day = models.DateField()
    channel = models.CharField(max_length=16)
    category = models.CharField(max_length=16)
    journey_id = models.BigIntegerField()
    count = models.IntegerField()

    class Meta:
        indexes = [models.Index(fields=["day", "channel"], name="dash_mix_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.channel} {self.category} journey {self.journey_id}: {self.count}"


class BounceCount(models.Model):
    """``count`` messages (a delta) queued on ``day`` that bounced, by channel and category.
    Bounced is final and only ever reached through the ledger's moves, so +1 is all it takes."""

    day = models.DateField()
    channel = models.CharField(max_length=16)
    category = models.CharField(max_length=16)
    count = models.IntegerField()

    class Meta:
        indexes = [models.Index(fields=["day", "channel"], name="dash_bounce_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.channel} {self.category}: {self.count} bounced"

