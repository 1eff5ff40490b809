"""django-q2 task: thin, takes nothing, idempotent (the schedule is in migration 0011)."""

from __future__ import annotations

from django.db import transaction

from orchestrator.intelligence import store


def refresh_population() -> None:
    with transaction.atomic():
        store.refresh_population()
