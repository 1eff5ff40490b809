"""The demo's channel affinities and activity profiles, built from the rows it writes.

The seeder writes its history around the ledger (COPY), so the listeners that keep the
models current never see it. Rather than read everything back (``recompute_intelligence``,
several queries per customer), each chunk's affinity and activity rows are computed from
the same in-memory rows with the ledger's own rules (``intelligence.ledger``) and bulk
inserted; once everyone is written the population priors are refreshed and the stored
means written under them. The result is what ``recompute_all`` would rebuild as of the
seed's "now" (tests/test_seed_demo.py checks it on the launch customer).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from types import SimpleNamespace

from customers.enums import Category
from customers.models import ActivityProfile, ChannelAffinity
from orchestrator.demo_history import Rows
from orchestrator.engine.timing import customer_zone
from orchestrator.intelligence import store
from orchestrator.intelligence.affinity import Send, estimate, states_from_history
from orchestrator.intelligence.ledger import ACTIVITY_EVENTS, EXPOSED_STATUSES, send_from_message
from orchestrator.intelligence.sendtime import ActivityCounts

_SEND_TIMES = ("queued_at", "sent_at", "delivered_at", "opened_at", "clicked_at", "converted_at")


def write_intelligence(rows: Rows, *, now: datetime) -> None:
    """One chunk's affinity rows (means filled in by ``finish_intelligence``) and profiles."""
    sends: dict[int, list[Send]] = defaultdict(list)
    moments: dict[int, list[datetime]] = defaultdict(list)
    for message, _ in rows.messages:
        customer_id = message["customer"].pk
        if message["category"] == Category.MARKETING and message["status"] in EXPOSED_STATUSES:
            sends[customer_id].append(_send(message))
        noticed = [message[k] for k in ("opened_at", "clicked_at") if message.get(k) is not None]
        if noticed:  # as ledger.activity_times: one moment per message, any category
            moments[customer_id].append(min(noticed))
    activity = set(ACTIVITY_EVENTS)
    for customer, name, _, occurred_at, *_ in rows.events:
        if name in activity:
            moments[customer.pk].append(occurred_at)
    ChannelAffinity.objects.bulk_create(_affinities(sends, now), batch_size=1000)
    zones = {customer.pk: customer.timezone for customer in rows.customers}
    ActivityProfile.objects.bulk_create(_profiles(moments, zones), batch_size=1000)


def finish_intelligence(*, now: datetime) -> None:
    """The population priors from everyone's rows, then every stored mean under them."""
    store.refresh_population(now)
    store.forget_population()
    priors = store.load_population()[0]
    rows = list(ChannelAffinity.objects.all())
    for row in rows:
        row.mean = estimate(store.state_of(row), priors[row.channel], as_of=row.as_of or now, config=store.AFFINITY).mean
    ChannelAffinity.objects.bulk_update(rows, ["mean"], batch_size=1000)


def _send(message: dict) -> Send:
    return send_from_message(SimpleNamespace(channel=message["channel"], **{k: message.get(k) for k in _SEND_TIMES}))


def _affinities(sends: dict[int, list[Send]], now: datetime) -> list[ChannelAffinity]:
    found = []
    for customer_id in sorted(sends):
        for channel, state in states_from_history(sends[customer_id], as_of=now, config=store.AFFINITY).items():
            found.append(ChannelAffinity(
                customer_id=customer_id, channel=channel, as_of=state.as_of, sends=state.sends,
                engagements=state.engagements, spread=state.spread, raw_sends=state.raw_sends,
                raw_engagements=state.raw_engagements, first_sent_at=state.first_sent_at,
            ))
    return found


def _profiles(moments: dict[int, list[datetime]], zones: dict[int, str]) -> list[ActivityProfile]:
    found = []
    for customer_id in sorted(moments):
        counts = ActivityCounts.from_times(moments[customer_id], customer_zone(zones.get(customer_id, "")))
        found.append(ActivityProfile(customer_id=customer_id, counts=list(counts.counts), total=counts.total))
    return found
