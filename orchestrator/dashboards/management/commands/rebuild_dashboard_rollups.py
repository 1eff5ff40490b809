"""Recount the cadence dashboard's rollups from the ledger.

Run after writing messages around the ledger's functions (a bulk import, ``seed_demo``,
bench/dashboards.py) and now and then to fold the appended deltas into one row per key.
Moves of messages wait while it runs (the ledger is share-locked), so nothing is lost.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from orchestrator.dashboards.models import BounceCount, CustomerDay, MixCount, PressureBucket
from orchestrator.dashboards.rollups import do_rebuild_rollups


class Command(BaseCommand):
    help = "Recount the cadence dashboard's rollups from the message ledger."

    def handle(self, *args, **options):
        started = time.monotonic()
        do_rebuild_rollups()
        self.stdout.write(
            f"Rebuilt in {time.monotonic() - started:.1f} s: {CustomerDay.objects.count()} customer-days, "
            f"{PressureBucket.objects.count()} histogram rows, {MixCount.objects.count()} mix rows, "
            f"{BounceCount.objects.count()} bounce rows."
        )
