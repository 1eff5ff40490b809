"""Ingestion of the Segment tracking spec: identify and track calls, alone or in batches.

The API validates payloads into the frozen calls below and hands them here (page and
screen calls arrive as track calls named "Page Viewed" and "Screen Viewed"; group and
alias calls are acknowledged by the API and never reach this module). Each request
is one transaction whose number of queries does not grow with the number of calls.

The general path (any identify, or any database):

1. lock the customers named by the calls, creating the missing ones, in external-id order
   (on PostgreSQL in one upsert, so it cannot deadlock with the hot path's);
2. drop calls whose messageId this source already sent (checked under those locks, so two
   requests repeating one messageId for one customer cannot both store it);
3. insert events and profile updates in bulk, apply traits and seen-times in memory and
   write the changed customers back in one bulk update;
4. keep email/SMS contact points in step, lift the bounces of replaced addresses, and
   re-apply the suppression list to customers that are new or changed address.

Track-only requests on PostgreSQL (the hot path) need no profile merge, so they take two
statements: an upsert of customers that widens their seen-times, and an insert of events
that skips stored messageIds and counts what it stored (see ``_ingest_tracks``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from django.db import connection, transaction
from django.utils import timezone

from customers.bulk_sql import insert_ignoring_conflicts, update_by_pk, upsert_returning
from customers.consent import apply_suppressions, identifiers_for
from customers.enums import Channel
from customers.hooks import StoredEvents, events_stored
from customers.models import (
    Customer,
    Event,
    ProfileUpdate,
    SuppressedIdentifier,
    hash_identifier,
)
from customers.profiles import AddressChange, lift_bounces, sync_contact_points

# Customer columns an identify can set.
PROFILE_COLUMNS = ("email", "phone", "timezone", "locale")
# Enough to resolve identities, addresses and seen-times when a request has no identify.
_TRACK_ONLY_FIELDS = ("id", "external_id", "email", "phone", "first_seen_at", "last_seen_at")


@dataclass(frozen=True, slots=True)
class IdentifyCall:
    """A validated identify: ``traits`` excludes the well-known traits held in columns."""

    kind: ClassVar[str] = "identify"
    user_id: str
    timestamp: datetime
    message_id: str | None = None
    traits: dict = field(default_factory=dict)
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    locale: str | None = None

    def changes(self) -> dict:
        """What this call sets, as recorded on its ProfileUpdate."""
        changes = dict(self.traits)
        for column in PROFILE_COLUMNS:
            value = getattr(self, column)
            if value is not None:
                changes[column] = value
        return changes


@dataclass(frozen=True, slots=True)
class TrackCall:
    """A validated track, page or screen call: all three are stored as events."""

    kind: ClassVar[str] = "track"
    user_id: str
    timestamp: datetime
    event: str
    message_id: str | None = None
    properties: dict = field(default_factory=dict)


Call = IdentifyCall | TrackCall


@dataclass(frozen=True, slots=True)
class IngestResult:
    received: int
    stored: int
    duplicates: int


def do_identify(
    call: IdentifyCall, *, source: str, received_at: datetime | None = None
) -> IngestResult:
    return do_ingest_batch([call], source=source, received_at=received_at)


def do_track(call: TrackCall, *, source: str, received_at: datetime | None = None) -> IngestResult:
    return do_ingest_batch([call], source=source, received_at=received_at)


def do_ingest_batch(
    calls: Sequence[Call], *, source: str, received_at: datetime | None = None
) -> IngestResult:
    """Store validated calls atomically; repeated messageIds are counted, not stored."""
    if not calls:
        return IngestResult(received=0, stored=0, duplicates=0)
    received_at = received_at or timezone.now()
    if connection.vendor == "postgresql" and all(call.kind == "track" for call in calls):
        return _ingest_tracks(calls, source, received_at)
    with transaction.atomic():
        customers = _lock_customers(calls, received_at)
        fresh = _without_duplicates(calls, source)
        profiles = _CustomerChanges(customers)
        events, updates = [], []
        for call in fresh:
            customer = customers[call.user_id]
            profiles.seen(customer, min(call.timestamp, received_at))
            if call.kind == "track":
                events.append(_event(call, customer.pk, source, received_at))
            else:
                profiles.identify(customer, call)
                updates.append(_profile_update(call, customer, source, received_at))
        inserted = [
            insert_ignoring_conflicts(Event, _in_message_order(events)),
            insert_ignoring_conflicts(ProfileUpdate, _in_message_order(updates)),
        ]
        profiles.save(received_at)
        _sync_contact_points(profiles)
        _lift_bounces(profiles)
        _apply_suppressions(profiles.new_or_readdressed())
        _announce(events, source, received_at)
    # PostgreSQL counts rows inserted, which stays exact even if another request stored the
    # same messageId for another customer meanwhile; elsewhere writers are serialised.
    stored = len(fresh) if None in inserted else sum(inserted)
    return IngestResult(received=len(calls), stored=stored, duplicates=len(calls) - stored)


def _ingest_tracks(calls: Sequence[TrackCall], source: str, received_at: datetime) -> IngestResult:
    """The hot path, on PostgreSQL: only track calls, so no profile to merge.

    Two statements: an upsert that creates missing customers and widens the seen-times of
    the others (LEAST/GREATEST against the row's latest version, so neither arrival order
    nor a concurrent request can move them the wrong way), and an insert of events whose
    ON CONFLICT skips stored messageIds; its row count is the number stored. A repeated
    event still widens seen-times with its own timestamp, which changes nothing.
    """
    seen = _seen_ranges(calls, received_at)
    with transaction.atomic():
        rows = [_customer_row(x, *seen[x], received_at) for x in sorted(seen)]
        upserted = upsert_returning(
            Customer,
            rows,
            conflict="external_id",
            merge=(("first_seen_at", "LEAST"), ("last_seen_at", "GREATEST")),
            returning=("id", "external_id", "email", "phone"),
        )
        ids = {external_id: pk for pk, external_id, _, _, _ in upserted}
        events = [
            _event(call, ids[call.user_id], source, received_at)
            for call in _first_of_each_message(calls)
        ]
        stored = insert_ignoring_conflicts(Event, _in_message_order(events))
        created = [
            Customer(pk=pk, external_id=external_id, email=email, phone=phone)
            for pk, external_id, email, phone, was_created in upserted
            if was_created
        ]
        _apply_suppressions(created)
        if stored:
            _announce(events, source, received_at)
    return IngestResult(received=len(calls), stored=stored, duplicates=len(calls) - stored)


def _announce(events: list[dict], source: str, received_at: datetime) -> None:
    """Tell the listeners (the journey engine) which events this request stored."""
    if events:
        events_stored(
            StoredEvents(
                source=source,
                received_at=received_at,
                customer_ids=frozenset(e["customer_id"] for e in events),
                names=frozenset(e["name"] for e in events),
            )
        )


def _in_message_order(rows: list[dict]) -> list[dict]:
    """Rows sorted by messageId, so requests that share some wait on each other's unique-index
    entries in one order and cannot deadlock (customer locks already order most of them)."""
    return sorted(rows, key=lambda row: row["source_message_id"] or "")


def _first_of_each_message(calls: Sequence[Call]) -> list[Call]:
    """Drop repeats of a messageId within one request, keeping the first."""
    seen: set[str] = set()
    kept = []
    for call in calls:
        if call.message_id is not None:
            if call.message_id in seen:
                continue
            seen.add(call.message_id)
        kept.append(call)
    return kept


def _customer_row(
    external_id: str, first_seen: datetime, last_seen: datetime, now: datetime
) -> dict:
    """Every column of a new customer, defaults included (the upsert inserts whole rows)."""
    return {
        **{f.attname: f.get_default() for f in _NEW_CUSTOMER_DEFAULTS},
        "external_id": external_id,
        "first_seen_at": first_seen,
        "last_seen_at": last_seen,
        "created_at": now,
        "updated_at": now,
    }


_NEW_CUSTOMER_DEFAULTS = [
    f
    for f in Customer._meta.concrete_fields
    if not f.primary_key
    and f.attname
    not in {"external_id", "first_seen_at", "last_seen_at", "created_at", "updated_at"}
]


def _seen_ranges(
    calls: Sequence[Call], received_at: datetime
) -> dict[str, tuple[datetime, datetime]]:
    """(first, last) time each customer was seen in these calls; the future counts as now."""
    ranges: dict[str, tuple[datetime, datetime]] = {}
    for call in calls:
        at = min(call.timestamp, received_at)
        first, last = ranges.get(call.user_id, (at, at))
        ranges[call.user_id] = (min(first, at), max(last, at))
    return ranges


def _lock_customers(calls: Sequence[Call], received_at: datetime) -> dict[str, Customer]:
    """Customers by external id, row-locked in external-id order; missing ones are created.

    Customers created here are marked ``_ingest_new`` so contact points and suppressions
    are applied to them.
    """
    seen_range = _seen_ranges(calls, received_at)
    if connection.vendor == "postgresql":
        return _lock_or_create(seen_range, received_at)
    track_only = all(call.kind == "track" for call in calls)
    return _lock_then_create(seen_range, track_only)


def _lock_or_create(
    seen_range: dict[str, tuple[datetime, datetime]], now: datetime
) -> dict[str, Customer]:
    """Lock or create every customer in ONE statement, in external-id order like the hot
    path's upsert: locking the existing ones first and inserting the missing ones after let
    a concurrent hot-path request take a new customer's row while waiting for ours."""
    rows = [_customer_row(x, *seen_range[x], now) for x in sorted(seen_range)]
    created = dict(
        upsert_returning(Customer, rows, conflict="external_id", merge=(), returning=("id",))
    )
    customers = {}
    # The upsert locked every row (DO UPDATE), so a plain read is enough.
    for customer in Customer.objects.filter(pk__in=created).order_by("external_id"):
        customer._ingest_new = created[customer.pk]
        customers[customer.external_id] = customer
    return customers


def _lock_then_create(
    seen_range: dict[str, tuple[datetime, datetime]], track_only: bool
) -> dict[str, Customer]:
    """Elsewhere (SQLite, which serialises writers): lock the existing, insert the missing."""
    ids = sorted(seen_range)
    query = Customer.objects.select_for_update().order_by("external_id")
    if track_only:
        query = query.only(*_TRACK_ONLY_FIELDS)
    customers = {c.external_id: c for c in query.filter(external_id__in=ids)}
    missing = [external_id for external_id in ids if external_id not in customers]
    if missing:
        Customer.objects.bulk_create(
            [
                Customer(
                    external_id=x, first_seen_at=seen_range[x][0], last_seen_at=seen_range[x][1]
                )
                for x in missing
            ],
            ignore_conflicts=True,  # a concurrent request may create the same customer
        )
        for customer in query.filter(external_id__in=missing):
            customer._ingest_new = True
            customers[customer.external_id] = customer
    return customers


def _without_duplicates(calls: Sequence[Call], source: str) -> list[Call]:
    """Calls whose messageId is new for this source, in order; repeats within the batch drop."""
    stored = {
        "track": _stored_message_ids(Event, source, calls, "track"),
        "identify": _stored_message_ids(ProfileUpdate, source, calls, "identify"),
    }
    fresh: list[Call] = []
    for call in calls:
        if call.message_id is not None:
            seen = stored[call.kind]
            if call.message_id in seen:
                continue
            seen.add(call.message_id)
        fresh.append(call)
    return fresh


def _stored_message_ids(model, source: str, calls: Iterable[Call], kind: str) -> set[str]:
    message_ids = {c.message_id for c in calls if c.kind == kind and c.message_id is not None}
    if not message_ids:
        return set()
    return set(
        model.objects.filter(source=source, source_message_id__in=message_ids).values_list(
            "source_message_id", flat=True
        )
    )


def _event(call: TrackCall, customer_id: int, source: str, received_at: datetime) -> dict:
    return {
        "customer_id": customer_id,
        "name": call.event,
        "properties": call.properties,
        "occurred_at": call.timestamp,
        "received_at": received_at,
        "source": source,
        "source_message_id": call.message_id,
    }


def _profile_update(
    call: IdentifyCall, customer: Customer, source: str, received_at: datetime
) -> dict:
    return {
        "customer_id": customer.pk,
        "changes": call.changes(),
        "occurred_at": call.timestamp,
        "received_at": received_at,
        "source": source,
        "source_message_id": call.message_id,
    }


class _CustomerChanges:
    """Changes to the locked customers, applied in memory and written in one bulk update."""

    def __init__(self, customers: dict[str, Customer]):
        self.customers = customers
        self.fields: dict[int, set[str]] = {}
        self.profile_changed: set[int] = set()
        # Addresses as locked, to tell which customers changed email or phone.
        self.original = {c.pk: (c.email, c.phone) for c in customers.values()}

    def _mark(self, customer: Customer, name: str) -> None:
        self.fields.setdefault(customer.pk, set()).add(name)

    def seen(self, customer: Customer, at: datetime) -> None:
        """Events arrive out of order: first_seen only moves back, last_seen only forward."""
        if at < customer.first_seen_at:
            customer.first_seen_at = at
            self._mark(customer, "first_seen_at")
        if at > customer.last_seen_at:
            customer.last_seen_at = at
            self._mark(customer, "last_seen_at")

    def identify(self, customer: Customer, call: IdentifyCall) -> None:
        for column in PROFILE_COLUMNS:
            value = getattr(call, column)
            if value is not None and getattr(customer, column) != value:
                setattr(customer, column, value)
                self._mark(customer, column)
                self.profile_changed.add(customer.pk)
        if call.traits:
            merged = {**customer.traits, **call.traits}
            if merged != customer.traits:
                customer.traits = merged
                self._mark(customer, "traits")
                self.profile_changed.add(customer.pk)

    def save(self, now: datetime) -> None:
        if not self.fields:
            return
        changed = [c for c in self.customers.values() if c.pk in self.fields]
        names = set().union(*self.fields.values())
        if self.profile_changed:
            names.add("updated_at")
            for customer in changed:
                if customer.pk in self.profile_changed:
                    customer.updated_at = now
        columns = sorted(names)
        update_by_pk(
            Customer, [{"pk": c.pk, **{n: getattr(c, n) for n in columns}} for c in changed]
        )

    def address_changes(self) -> Iterable[tuple[Customer, str, str, str]]:
        """(customer, column, old value, new value) for each address that is new or changed."""
        for customer in self.customers.values():
            new = getattr(customer, "_ingest_new", False)
            for index, column in enumerate(("email", "phone")):
                old = "" if new else self.original[customer.pk][index]
                current = getattr(customer, column)
                if current != old:
                    yield customer, column, old, current

    def new_or_readdressed(self) -> list[Customer]:
        chosen = {c.pk: c for c in self.customers.values() if getattr(c, "_ingest_new", False)}
        for customer, _, _, _ in self.address_changes():
            chosen[customer.pk] = customer
        return list(chosen.values())


def _sync_contact_points(profiles: _CustomerChanges) -> None:
    """The customer's email and phone each have an enabled contact point; a replaced one is disabled."""
    sync_contact_points(
        AddressChange(customer.pk, column, old, new)
        for customer, column, old, new in profiles.address_changes()
    )


def _lift_bounces(profiles: _CustomerChanges) -> None:
    """A customer who moved to a new address leaves the old one's bounces behind. One query
    when some existing customer changed address, none otherwise; new customers hold no consent."""
    lift_bounces(
        {customer.pk: customer for customer in profiles.customers.values()},
        (
            AddressChange(customer.pk, column, old, new)
            for customer, column, old, new in profiles.address_changes()
            if not getattr(customer, "_ingest_new", False)
        ),
    )


def _apply_suppressions(customers: list[Customer]) -> None:
    """One lookup of the suppression list for all customers; consent changes only on a match."""
    if not customers:
        return
    hashes: dict[str, list[Customer]] = {}
    for customer in customers:
        for channel in Channel:
            for kind, value in identifiers_for(customer, channel):
                hashes.setdefault(hash_identifier(kind, value), []).append(customer)
    matched = SuppressedIdentifier.objects.filter(identifier_hash__in=list(hashes)).values_list(
        "identifier_hash", flat=True
    )
    affected = {c.pk: c for h in set(matched) for c in hashes[h]}
    for customer in sorted(affected.values(), key=lambda c: c.pk):
        apply_suppressions(customer)
