"""Keeping the dashboard's rollups (``dashboards.models``) equal to a recount of the ledger.

``on_messages_moved`` is the ledger's listener (settings.CHORUS_MESSAGE_LISTENERS), called
inside the transaction that moved the messages. Only a move across the line between
"counted" and "not counted" changes a rollup, and only the ledger's moves can cross it:
a message is written queued or suppressed and claimed queued → sending, all uncounted,
so the writes the ledger does not announce never change what counts.

The histograms need each customer's count before and after the move. They are read from
the ledger after the move (the customer's few messages that week, by
message_customer_time_idx), under a transaction-scoped advisory lock per customer, so
two transactions moving the same customer's messages count one after the other. The locks
are taken last in the listener and held to commit. ``record_sent_many`` locks the rows of
its rare fallback (a receipt that outran "sent") before it calls the listeners, so a
delivery never waits for a message row while holding a customer's lock. A provider's
webhook batch, which moves several messages in one transaction, still can: if a
concurrent transaction holds the next message's row and waits for the same customer's
lock, PostgreSQL fails one of the two, and the provider retries its webhook.

A customer's erasure deletes their messages with the customer row, outside the ledger:
``on_customer_erasing`` (settings.CHORUS_ERASURE_LISTENERS) takes them out of every rollup
in the same transaction, under the customer's advisory lock. Only writes that bypass both,
a bulk COPY (the demo seed rebuilds the rollups itself) or a raw delete, leave the rollups
behind until ``rebuild_dashboard_rollups``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction

from channels_app.models import Message, MessageStatus
from customers.hooks import MessageMove
from orchestrator.dashboards import live
from orchestrator.dashboards.models import BounceCount, CustomerDay, MixCount, PressureBucket, Span

S = MessageStatus
# Left Chorus and not refused: what reached, or may have reached, the customer.
COUNTED = frozenset({S.SENT, S.DELIVERED, S.OPENED, S.CLICKED, S.CONVERTED, S.UNKNOWN})
ALL = ""  # the channel or category of a histogram over all of them
LOCK_NAMESPACE = 7_000_007  # pg_advisory_xact_lock(namespace, customer id): ours alone

# A counted message as the rollups see it: (customer_id, queued day, channel, category, journey).
Row = tuple[int, dt.date, str, str, int]


@dataclass(frozen=True)
class RollupState:
    """Every rollup as plain counts, zero entries left out: what tests compare."""

    customer_days: dict[tuple[int, dt.date], int]
    pressure: dict[tuple[str, dt.date, str, str, int], int]
    mix: dict[tuple[dt.date, str, str, int], int]
    bounces: dict[tuple[dt.date, str, str], int]


def week_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def utc_day(at: dt.datetime) -> dt.date:
    return at.astimezone(dt.UTC).date()


def on_messages_moved(moves: list[MessageMove]) -> None:
    deltas: Counter[int] = Counter()
    bounced = []
    for move in moves:
        if move.late:
            continue
        before, after = move.from_status in COUNTED, move.to_status in COUNTED
        if before != after:
            deltas[move.message_id] += 1 if after else -1
        if move.to_status == S.BOUNCED:
            bounced.append(move.message_id)
    deltas = Counter({pk: d for pk, d in deltas.items() if d})
    if bounced:
        _add_bounces(bounced)
    if deltas:
        apply_deltas(deltas)
    if deltas or bounced:
        live.announce_change()


def on_customer_erasing(customer_id: int) -> None:
    """The customer's messages are about to go with them: take every one out of the rollups."""
    _lock_customers({customer_id})
    messages = Message.objects.filter(customer_id=customer_id)
    changes = [
        ((customer_id, utc_day(queued_at), channel, category, journey_id or 0), -1)
        for queued_at, channel, category, journey_id in messages.filter(status__in=list(COUNTED)).values_list(
            "queued_at", "channel", "category", "journey_id"
        )
    ]
    bounced = list(messages.filter(status=S.BOUNCED).values_list("pk", flat=True))
    if changes:
        _add_mix(changes)
        _add_pressure(changes, Counter())  # none of theirs counts afterwards
    CustomerDay.objects.filter(customer_id=customer_id).delete()
    if bounced:
        _add_bounces(bounced, -1)
    if changes or bounced:
        live.announce_change()


def _add_bounces(message_ids: list[int], sign: int = 1) -> None:
    totals: Counter[tuple] = Counter()
    for queued_at, channel, category in Message.objects.filter(pk__in=message_ids).values_list(
        "queued_at", "channel", "category"
    ):
        totals[(utc_day(queued_at), channel, category)] += sign
    BounceCount.objects.bulk_create(
        BounceCount(day=k[0], channel=k[1], category=k[2], count=n) for k, n in sorted(totals.items())
    )


def apply_deltas(deltas: Counter[int]) -> None:
    """Apply +1 (now counted) / -1 (no longer counted) per message id to every rollup."""
    rows = {
        pk: (customer_id, utc_day(queued_at), channel, category, journey_id or 0)
        for pk, customer_id, queued_at, channel, category, journey_id in Message.objects.filter(
            pk__in=list(deltas)
        ).values_list("pk", "customer_id", "queued_at", "channel", "category", "journey_id")
    }
    if not rows:
        return
    _lock_customers({row[0] for row in rows.values()})
    changes = [(rows[pk], deltas[pk]) for pk in sorted(rows)]
    _add_mix(changes)
    after = _counts_now({(row[0], row[1]) for row, _ in changes})
    _add_pressure(changes, after)
    _set_customer_days(changes, after)


def _lock_customers(customer_ids: set[int]) -> None:
    if connection.vendor != "postgresql":  # SQLite has one writer at a time already
        return
    keys = sorted({customer_id % 2**31 for customer_id in customer_ids})
    with connection.cursor() as cursor:  # one statement, keys taken in one order: no deadlock among us
        cursor.execute(
            "SELECT COUNT(pg_advisory_xact_lock(%s, key)) FROM (SELECT unnest(%s::int[]) AS key ORDER BY 1) AS keys",
            [LOCK_NAMESPACE, keys],
        )


def _add_mix(changes: list[tuple[Row, int]]) -> None:
    totals: Counter[tuple] = Counter()
    for (_, day, channel, category, journey), delta in changes:
        totals[(day, channel, category, journey)] += delta
    MixCount.objects.bulk_create(
        MixCount(day=k[0], channel=k[1], category=k[2], journey_id=k[3], count=n) for k, n in totals.items() if n
    )


def _scopes(span: str, day: dt.date, channel: str, category: str) -> list[tuple[str, dt.date, str, str]]:
    start = day if span == Span.DAY else week_of(day)
    return [(span, start, ch, cat) for ch in (channel, ALL) for cat in (category, ALL)]


def _keys(row: Row) -> list[tuple[str, dt.date, str, str]]:
    _, day, channel, category, _ = row
    return _scopes(Span.DAY, day, channel, category) + _scopes(Span.WEEK, day, channel, category)


def _counts_now(customer_days: set[tuple[int, dt.date]]) -> Counter[tuple]:
    """Counted messages now (after the move) per (customer, span, start, channel, category)."""
    customers = {c for c, _ in customer_days}
    first = min(week_of(d) for _, d in customer_days)
    last = max(week_of(d) for _, d in customer_days) + dt.timedelta(days=7)
    since = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
    until = dt.datetime.combine(last, dt.time(), tzinfo=dt.UTC)
    counts: Counter[tuple] = Counter()
    for customer_id, queued_at, channel, category in Message.objects.filter(
        customer_id__in=sorted(customers), queued_at__gte=since, queued_at__lt=until, status__in=list(COUNTED)
    ).values_list("customer_id", "queued_at", "channel", "category"):
        for key in _keys((customer_id, utc_day(queued_at), channel, category, 0)):
            counts[(customer_id, *key)] += 1
    return counts


def _add_pressure(changes: list[tuple[Row, int]], after: Counter[tuple]) -> None:
    moved: Counter[tuple] = Counter()
    for row, delta in changes:
        for key in _keys(row):
            moved[(row[0], *key)] += delta
    buckets: Counter[tuple] = Counter()
    for key, delta in moved.items():
        now = after[key]
        if now - delta > 0:
            buckets[(*key[1:], now - delta)] -= 1
        if now > 0:
            buckets[(*key[1:], now)] += 1
    PressureBucket.objects.bulk_create(
        PressureBucket(span=k[0], start=k[1], channel=k[2], category=k[3], messages=k[4], customers=n)
        for k, n in sorted(buckets.items())
        if n
    )


def _set_customer_days(changes: list[tuple[Row, int]], after: Counter[tuple]) -> None:
    days = sorted({(row[0], row[1]) for row, _ in changes})
    counts = {(c, d): after[(c, Span.DAY, d, ALL, ALL)] for c, d in days}
    gone = [(c, d) for (c, d), n in counts.items() if n == 0]
    for customer_id, day in gone:
        CustomerDay.objects.filter(customer_id=customer_id, day=day).delete()
    CustomerDay.objects.bulk_create(
        [CustomerDay(customer_id=c, day=d, count=n) for (c, d), n in counts.items() if n],
        update_conflicts=True, unique_fields=["customer_id", "day"], update_fields=["count"],
    )


# --- Reading and recounting ---------------------------------------------------------------


def stored_state() -> RollupState:
    """The rollups as stored, appended deltas summed."""
    pressure: Counter[tuple] = Counter()
    for row in PressureBucket.objects.values_list("span", "start", "channel", "category", "messages", "customers"):
        pressure[row[:5]] += row[5]
    mix: Counter[tuple] = Counter()
    for day, channel, category, journey, n in MixCount.objects.values_list("day", "channel", "category", "journey_id", "count"):
        mix[(day, channel, category, journey)] += n
    days = {(c, d): n for c, d, n in CustomerDay.objects.values_list("customer_id", "day", "count")}
    bounces: Counter[tuple] = Counter()
    for day, channel, category, n in BounceCount.objects.values_list("day", "channel", "category", "count"):
        bounces[(day, channel, category)] += n
    return RollupState(customer_days=days, pressure=_nonzero(pressure), mix=_nonzero(mix), bounces=_nonzero(bounces))


def recount(rows: Iterable[Row] | None = None) -> RollupState:
    """The rollups recounted from scratch from the ledger (or from the given rows)."""
    if rows is None:
        rows = (
            (c, utc_day(at), ch, cat, j or 0)
            for c, at, ch, cat, j in Message.objects.filter(status__in=list(COUNTED))
            .values_list("customer_id", "queued_at", "channel", "category", "journey_id")
            .iterator(chunk_size=5000)
        )
    per_customer: Counter[tuple] = Counter()
    mix: Counter[tuple] = Counter()
    for row in rows:
        mix[(row[1], row[2], row[3], row[4])] += 1
        for key in _keys(row):
            per_customer[(row[0], *key)] += 1
    pressure: Counter[tuple] = Counter((*key[1:], n) for key, n in per_customer.items())
    days = {(k[0], k[2]): n for k, n in per_customer.items() if k[1] == Span.DAY and k[3] == ALL and k[4] == ALL}
    return RollupState(customer_days=days, pressure=dict(pressure), mix=_nonzero(mix), bounces=_recount_bounces())


def _recount_bounces() -> dict[tuple[dt.date, str, str], int]:
    bounces: Counter[tuple] = Counter()
    for queued_at, channel, category in Message.objects.filter(status=S.BOUNCED).values_list(
        "queued_at", "channel", "category"
    ).iterator(chunk_size=5000):
        bounces[(utc_day(queued_at), channel, category)] += 1
    return dict(bounces)


def _nonzero(counts: Counter) -> dict:
    return {k: n for k, n in counts.items() if n}


@transaction.atomic
def do_rebuild_rollups() -> RollupState | None:
    """Replace every rollup with a recount of the ledger (after a bulk import, or to fold
    the appended deltas). Locks the ledger against moves meanwhile, so nothing is lost."""
    if connection.vendor == "postgresql":
        from orchestrator.dashboards.rebuild_sql import rebuild_in_database

        rebuild_in_database()
        return None
    state = recount()
    _replace(state)
    return state


def _replace(state: RollupState) -> None:
    for model in (CustomerDay, PressureBucket, MixCount, BounceCount):
        model.objects.all().delete()
    CustomerDay.objects.bulk_create(
        (CustomerDay(customer_id=c, day=d, count=n) for (c, d), n in state.customer_days.items()), batch_size=2000
    )
    PressureBucket.objects.bulk_create(
        (PressureBucket(span=k[0], start=k[1], channel=k[2], category=k[3], messages=k[4], customers=n)
         for k, n in state.pressure.items()), batch_size=2000,
    )
    MixCount.objects.bulk_create(
        (MixCount(day=k[0], channel=k[1], category=k[2], journey_id=k[3], count=n) for k, n in state.mix.items()),
        batch_size=2000,
    )
    BounceCount.objects.bulk_create(
        (BounceCount(day=k[0], channel=k[1], category=k[2], count=n) for k, n in state.bounces.items()), batch_size=2000
    )
