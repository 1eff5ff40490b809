"""The population's models: channel priors and the hour-of-week profile everyone shrinks toward.

One row, refreshed by a django-q2 schedule (``orchestrator.intelligence.tasks.refresh_population``)
and read through a process cache (``store.load_population``): every decision reads it.
"""

from __future__ import annotations

from django.db import models


class PopulationModel(models.Model):
    SINGLETON_PK = 1

    # {channel: {"mean": m, "strength": k}}
    priors = models.JSONField(default=dict)
    profile = models.JSONField(default=list)  # 168 shares summing to 1; [] before any activity
    customers = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "orchestrator"

    def __str__(self) -> str:
        return f"population model ({self.computed_at})"
