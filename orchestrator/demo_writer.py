"""Save a simulated history fast: COPY (PostgreSQL) or ``executemany`` (SQLite).

``bulk_create`` spends most of its time preparing each value of each field; events,
messages and transitions number in the hundreds of thousands, so they are written
with every column given explicitly and only datetimes, JSON and UUIDs adapted. Small
tables keep ``bulk_create``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, models

from channels_app.models import Message, MessageTransition
from customers.models import (
    Consent,
    ConsentChange,
    ContactPoint,
    Customer,
    Event,
    ProfileUpdate,
    SuppressedIdentifier,
)
from orchestrator.demo import SimCustomer
from orchestrator.demo_history import Rows, Simulator
from orchestrator.demo_intelligence import finish_intelligence, write_intelligence

CHUNK = 250  # people per flush: bounds memory, keeps each insert batch large
_ADAPTED = (models.UUIDField,)
EVENT_COLUMNS = ("customer", "name", "properties", "occurred_at", "received_at", "source", "source_message_id")
TRANSITION_COLUMNS = ("message", "from_status", "to_status", "at", "detail")
MESSAGE_STATE_TIMES = tuple(f.name for f in Message._meta.concrete_fields if f.name.endswith("_at") and f.name != "updated_at")


@dataclass(frozen=True)
class SeedSummary:
    customers: int
    events: int
    messages_by_channel: dict[str, int]
    transitions: int
    launch_customer_pk: int | None


def insert_rows(model: type[models.Model], names: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Insert rows (tuples of Python values in ``names`` order; FKs as ids): COPY or executemany."""
    fields = [model._meta.get_field(name) for name in names]
    adapters = [_adapter(f) for f in fields]
    quote = connection.ops.quote_name
    table, columns = quote(model._meta.db_table), ", ".join(quote(f.column) for f in fields)
    prepared = [
        [value if adapt is None or value is None else adapt(value) for adapt, value in zip(adapters, row, strict=True)]
        for row in rows
    ]
    if not prepared:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # COPY: an order of magnitude faster than INSERTs
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in prepared:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})", prepared)


def _adapter(field: models.Field):
    """A fast value adapter for the field, or None when the driver takes the value as is."""
    if isinstance(field, models.DateTimeField):
        if connection.vendor == "sqlite":  # what Django stores: naive UTC, str() format
            return lambda value: str(value.astimezone(UTC).replace(tzinfo=None))
        return None
    if isinstance(field, models.JSONField):
        return lambda value: connection.ops.adapt_json_value(value, field.encoder)
    if isinstance(field, _ADAPTED):
        return lambda value: field.get_db_prep_save(value, connection)
    return None


def write(rows: Rows) -> tuple[int, int, int]:
    """Save one chunk of rows; returns (events, messages, transitions) written."""
    Customer.objects.bulk_create(rows.customers, batch_size=500)
    ContactPoint.objects.bulk_create(rows.contact_points, batch_size=1000)
    Consent.objects.bulk_create(rows.consents, batch_size=1000)
    ConsentChange.objects.bulk_create(rows.consent_changes, batch_size=1000)
    SuppressedIdentifier.objects.bulk_create(list(rows.suppressions.values()), batch_size=1000, ignore_conflicts=True)
    ProfileUpdate.objects.bulk_create(rows.profile_updates, batch_size=1000)
    insert_rows(Event, EVENT_COLUMNS, ((e[0].pk, *e[1:]) for e in rows.events))
    _write_messages(rows.messages)
    transitions = sum(len(t) for _, t in rows.messages)
    return len(rows.events), len(rows.messages), transitions


def _write_messages(messages: list[tuple[dict, list[tuple]]]) -> None:
    names = (
        "public_id", "customer", "channel", "category", "template_name", "content", "node_id",
        "status", "provider", "provider_message_id", "idempotency_key", "error", *MESSAGE_STATE_TIMES, "updated_at",
    )
    insert_rows(
        Message,
        names,
        (
            (m["public_id"], m["customer"].pk, m["channel"], m["category"], m["template_name"], m["content"], "",
             m["status"], m["provider"], m["provider_message_id"], m["idempotency_key"], m["error"],
             *(m.get(state) for state in MESSAGE_STATE_TIMES), m["updated_at"])
            for m, _ in messages
        ),
    )
    ids = _ids_by_key([m["idempotency_key"] for m, _ in messages])
    insert_rows(
        MessageTransition,
        TRANSITION_COLUMNS,
        ((ids[m["idempotency_key"]], *t) for m, transitions in messages for t in transitions),
    )


def _ids_by_key(keys: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for offset in range(0, len(keys), 2000):
        batch = keys[offset : offset + 2000]
        ids.update(Message.objects.filter(idempotency_key__in=batch).values_list("idempotency_key", "id"))
    return ids


def seed_population(population: list[SimCustomer], *, seed: int, now: datetime, days: int) -> SeedSummary:
    """Simulate and save everyone's history, and the channel affinities and activity
    profiles it implies (``demo_intelligence``). Call inside a transaction."""
    simulator = Simulator(seed, now, days)
    events = transitions = 0
    by_channel: dict[str, int] = {}
    launch_pk = None
    for offset in range(0, len(population), CHUNK):
        rows = Rows()
        for sim in population[offset : offset + CHUNK]:
            simulator.simulate(sim, rows)
        for message, _ in rows.messages:
            by_channel[message["channel"]] = by_channel.get(message["channel"], 0) + 1
        written = write(rows)
        write_intelligence(rows, now=now)
        events, transitions = events + written[0], transitions + written[2]
        if offset == 0 and population[0].index == 0:
            launch_pk = rows.customers[0].pk
    finish_intelligence(now=now)
    return SeedSummary(len(population), events, by_channel, transitions, launch_pk)
