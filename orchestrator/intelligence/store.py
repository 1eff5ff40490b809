"""The models' state in the database: read, updated incrementally, rebuilt from the ledger.

- ``ChannelAffinity`` (customers): one row per customer × channel holding an
  ``AffinityState``; a send and a first engagement each update it in O(1) under its row lock.
- ``ActivityProfile`` (customers): the 168 hour-of-week counts of ``ActivityCounts``.
- ``PopulationModel`` (orchestrator): the channel priors and population profile, refreshed
  on a schedule and read through a process cache (every decision reads it).

Times are bucketed in the customer's zone as it is when the evidence arrives; a customer
who moves keeps old counts in their old local hours until ``recompute_intelligence``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from django.db import transaction
from django.utils import timezone

from channels_app.cached import GenerationCached
from customers.bulk_sql import update_by_pk
from customers.models import ActivityProfile, ChannelAffinity
from orchestrator.intelligence.activity import add_activity, increments
from orchestrator.intelligence.affinity import (
    AffinityConfig,
    AffinityState,
    ChannelEstimate,
    ChannelPrior,
    decay_factor,
    decayed,
    elapsed,
    estimate,
    estimates_for,
    population_priors,
    with_engagement,
    with_send,
)
from orchestrator.intelligence.models import PopulationModel
from orchestrator.intelligence.sendtime import (
    EMPTY,
    HOURS_PER_WEEK,
    ActivityCounts,
    SendTimeConfig,
    SendTimeProfile,
    customer_profile,
    distribution,
)

AFFINITY = AffinityConfig()
SENDTIME = SendTimeConfig()
CHANNELS = ("email", "sms", "push", "in_app")
POPULATION_TTL_SECONDS = 60.0
GENERATION_KEY = "chorus:intelligence:population-generation"


# --- Population --------------------------------------------------------------------------


def read_population() -> tuple[dict[str, ChannelPrior], tuple[float, ...]]:
    row = PopulationModel.objects.filter(pk=PopulationModel.SINGLETON_PK).first()
    stored = row.priors if row else {}
    priors = {
        c: ChannelPrior(c, stored[c]["mean"], stored[c]["strength"])
        if c in stored
        else ChannelPrior(c, AFFINITY.unseen_channel_rate, AFFINITY.min_strength)
        for c in CHANNELS
    }
    profile = tuple(row.profile) if row and len(row.profile) == HOURS_PER_WEEK else distribution(EMPTY)
    return priors, profile


_population = GenerationCached(GENERATION_KEY, read_population, ttl=POPULATION_TTL_SECONDS)


def load_population() -> tuple[dict[str, ChannelPrior], tuple[float, ...]]:
    """(priors per channel, population hour-of-week shares), cached per process."""
    return _population.load()


def forget_population() -> None:
    _population.forget()


def refresh_population(now: dt.datetime | None = None) -> PopulationModel:
    """Recompute the priors from every affinity row and the profile from every activity row."""
    now = now or timezone.now()
    states = [state_of(row) for row in ChannelAffinity.objects.all().iterator()]
    priors = population_priors(states, channels=CHANNELS, as_of=now, config=AFFINITY)
    totals = [0.0] * HOURS_PER_WEEK
    for counts in ActivityProfile.objects.exclude(total=0).values_list("counts", flat=True).iterator():
        totals = [t + c for t, c in zip(totals, counts, strict=True)]
    row, _ = PopulationModel.objects.update_or_create(
        pk=PopulationModel.SINGLETON_PK,
        defaults={
            "priors": {c: {"mean": p.mean, "strength": p.strength} for c, p in priors.items()},
            "profile": list(distribution(totals)),
            "customers": len({s for s in ChannelAffinity.objects.values_list("customer_id", flat=True)}),
            "computed_at": now,
        },
    )
    transaction.on_commit(forget_population)
    return row


# --- Affinity rows -----------------------------------------------------------------------


def state_of(row: ChannelAffinity) -> AffinityState:
    return AffinityState(
        row.channel, row.as_of, row.sends, row.engagements, row.spread,
        row.raw_sends, row.raw_engagements, row.first_sent_at,
    )


_STATE_FIELDS = ["as_of", "sends", "engagements", "spread", "raw_sends", "raw_engagements", "first_sent_at", "mean", "updated_at"]


def _write(row: ChannelAffinity, state: AffinityState, prior: ChannelPrior) -> None:
    _fill(row, state, prior)
    row.save()


def _fill(row: ChannelAffinity, state: AffinityState, prior: ChannelPrior) -> None:
    row.as_of, row.sends, row.engagements, row.spread = state.as_of, state.sends, state.engagements, state.spread
    row.raw_sends, row.raw_engagements, row.first_sent_at = state.raw_sends, state.raw_engagements, state.first_sent_at
    assert state.as_of is not None
    row.mean = estimate(state, prior, as_of=state.as_of, config=AFFINITY).mean
    row.updated_at = timezone.now()  # bulk_update skips auto_now


def _locked_row(customer_id: int, channel: str) -> ChannelAffinity:
    row, _ = ChannelAffinity.objects.select_for_update().get_or_create(customer_id=customer_id, channel=channel)
    return row


@transaction.atomic
def record_send(customer_id: int, channel: str, sent_at: dt.datetime) -> AffinityState:
    """One more marketing send on the channel (it reached sent, or a receipt proved it left)."""
    row = _locked_row(customer_id, channel)
    state = with_send(state_of(row), sent_at, AFFINITY)
    _write(row, state, load_population()[0][channel])
    return state


@transaction.atomic
def record_sends(sends: list[tuple[int, str, dt.datetime]]) -> None:
    """record_send for many (customer, channel, sent_at) at once: four queries whatever the
    count (missing rows inserted, all locked in a stable order, updated in one statement)."""
    keys = sorted({(customer_id, channel) for customer_id, channel, _ in sends})
    ChannelAffinity.objects.bulk_create(
        [ChannelAffinity(customer_id=c, channel=ch) for c, ch in keys], ignore_conflicts=True
    )
    locked = ChannelAffinity.objects.select_for_update().filter(
        customer_id__in={c for c, _ in keys}, channel__in={ch for _, ch in keys}
    ).order_by("customer_id", "channel")
    rows = {(r.customer_id, r.channel): r for r in locked}
    states = {key: state_of(rows[key]) for key in keys}
    for customer_id, channel, sent_at in sorted(sends, key=lambda s: s[2]):
        states[customer_id, channel] = with_send(states[customer_id, channel], sent_at, AFFINITY)
    priors = load_population()[0]
    for key in keys:
        _fill(rows[key], states[key], priors[key[1]])
    # One UPDATE … FROM a JSON list: bulk_update's CASE per field and row was about half of
    # an engine batch's time (bench/governor.py).
    update_by_pk(ChannelAffinity, [{"pk": rows[key].pk, **{f: getattr(rows[key], f) for f in _STATE_FIELDS}} for key in keys])


@transaction.atomic
def record_engagement(customer_id: int, channel: str, *, sent_at: dt.datetime, at: dt.datetime) -> AffinityState:
    """The first click or conversion of a send made at `sent_at`, its receipt arriving `at`."""
    row = _locked_row(customer_id, channel)
    state = with_engagement(state_of(row), sent_at=sent_at, at=at, config=AFFINITY)
    _write(row, state, load_population()[0][channel])
    return state


@transaction.atomic
def record_unsend(customer_id: int, channel: str, sent_at: dt.datetime, at: dt.datetime) -> AffinityState:
    """A send counted once it left us, then bounced or failed: it never reached anyone, so
    its trial weight (what it weighs at `at`) comes off again, exactly."""
    row = _locked_row(customer_id, channel)
    state = decayed(state_of(row), at, AFFINITY)
    assert state.as_of is not None
    weight = _decay(sent_at, state.as_of)
    state = AffinityState(
        channel, state.as_of, max(0.0, state.sends - weight), state.engagements,
        max(0.0, state.spread - weight * weight), max(0, state.raw_sends - 1), state.raw_engagements,
        state.first_sent_at,
    )
    _write(row, state, load_population()[0][channel])
    return state


def _decay(sent_at: dt.datetime, as_of: dt.datetime) -> float:
    return decay_factor(max(dt.timedelta(0), elapsed(sent_at, as_of)), AFFINITY.half_life)


def customer_states(customer_id: int) -> dict[str, AffinityState]:
    return {row.channel: state_of(row) for row in ChannelAffinity.objects.filter(customer_id=customer_id)}


def customer_estimates(customer_id: int, *, now: dt.datetime) -> dict[str, ChannelEstimate]:
    """The customer's posterior on every channel (the population prior where no history)."""
    return estimates_for(customer_states(customer_id), load_population()[0], as_of=now, config=AFFINITY)


# --- Activity profile --------------------------------------------------------------------


def counts_of(row: ActivityProfile | None) -> ActivityCounts:
    if row is None or len(row.counts) != HOURS_PER_WEEK:
        return ActivityCounts()
    return ActivityCounts(tuple(float(c) for c in row.counts), row.total)


def record_activity(customer_id: int, moments: Iterable[dt.datetime], customer_tz: str) -> None:
    """The customer was around at these moments (an open, a click, a session, a purchase)."""
    add_activity(increments((customer_id, at, customer_tz) for at in moments))


def send_time_profile(customer_id: int) -> SendTimeProfile:
    """The customer's smoothed profile (cold start: the population's shape)."""
    row = ActivityProfile.objects.filter(customer_id=customer_id).first()
    return customer_profile(counts_of(row), population=load_population()[1], config=SENDTIME)


def estimates_by_channel(rows: Mapping[str, ChannelEstimate]) -> list[ChannelEstimate]:
    """Estimates in the house channel order (the profile card lists them so)."""
    return [rows[c] for c in CHANNELS if c in rows]


def rewrite_means(now: dt.datetime) -> None:
    """The denormalised means again, under the current priors (after a population refresh)."""
    priors = load_population()[0]
    for row in ChannelAffinity.objects.select_for_update().order_by("pk"):
        row.mean = estimate(state_of(row), priors[row.channel], as_of=row.as_of or now, config=AFFINITY).mean
        row.save(update_fields=["mean"])
