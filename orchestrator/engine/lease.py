"""A named lease in the database: one holder at a time, taken with a conditional UPDATE."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q

from orchestrator.engine.models import SchedulerLease


def acquire(name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
    """Take (or renew) the lease if it is free, expired, or already ours."""
    expires = now + ttl
    free = Q(expires_at__lt=now) | Q(holder=holder)
    if SchedulerLease.objects.filter(free, name=name).update(holder=holder, expires_at=expires):
        return True
    try:
        with transaction.atomic():
            SchedulerLease.objects.create(name=name, holder=holder, expires_at=expires)
    except IntegrityError:  # someone else holds it
        return False
    return True


def release(name: str, holder: str) -> None:
    SchedulerLease.objects.filter(name=name, holder=holder).delete()
