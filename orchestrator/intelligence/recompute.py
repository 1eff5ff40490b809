"""Everything rebuilt from the ledger and the event stream: what the incremental hooks keep
current, computed from scratch (``recompute_intelligence``; the tests compare the two)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from customers.models import ActivityProfile, ChannelAffinity, Customer
from orchestrator.engine.timing import customer_zone
from orchestrator.intelligence import store
from orchestrator.intelligence.affinity import states_from_history
from orchestrator.intelligence.ledger import activity_times, customer_sends
from orchestrator.intelligence.sendtime import ActivityCounts

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@transaction.atomic
def recompute_customer(customer: Customer, *, now: dt.datetime) -> None:
    """One customer's affinity rows and activity profile, rebuilt as of `now`. The priors in
    the stored means are the population's as loaded: refresh it after a full recompute."""
    states = states_from_history(customer_sends(customer.pk, since=EPOCH), as_of=now, config=store.AFFINITY)
    ChannelAffinity.objects.filter(customer=customer).exclude(channel__in=list(states)).delete()
    priors = store.load_population()[0]
    for channel, state in states.items():
        row, _ = ChannelAffinity.objects.select_for_update().get_or_create(customer=customer, channel=channel)
        store._write(row, state, priors[channel])
    counts = ActivityCounts.from_times(activity_times(customer.pk, since=EPOCH), customer_zone(customer.timezone))
    if counts.total:
        ActivityProfile.objects.update_or_create(customer=customer, defaults={"counts": list(counts.counts), "total": counts.total})
    else:
        ActivityProfile.objects.filter(customer=customer).delete()


def recompute_all(*, now: dt.datetime | None = None) -> int:
    """Every customer (one transaction each), then the population; returns the count."""
    now = now or timezone.now()
    done = 0
    for customer in Customer.objects.only("id", "timezone").order_by("pk").iterator():
        recompute_customer(customer, now=now)
        done += 1
    with transaction.atomic():
        store.refresh_population(now)
    # Stored means were computed with the old priors: write them again with the new ones.
    store.forget_population()
    with transaction.atomic():
        store.rewrite_means(now)
    return done
