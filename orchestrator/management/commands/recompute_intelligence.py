"""Rebuild channel affinities, activity profiles and the population model from the ledger."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from orchestrator.intelligence.recompute import recompute_all


class Command(BaseCommand):
    help = "Rebuild every customer's channel affinity and activity profile from the message ledger and events, then the population priors."

    def handle(self, *args, **options):
        count = recompute_all()
        self.stdout.write(f"recomputed channel affinity and send-time profiles for {count} customers")
