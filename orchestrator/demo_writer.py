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
from orchestrator.demo_enrollments import JourneyPlan
from orchestrator.demo_history import SOURCE, Rows, Simulator
from orchestrator.demo_intelligence import finish_intelligence, write_intelligence
from orchestrator.engine.models import Enrollment, EnrollmentStep
from orchestrator.governor.models import GovernorVerdict
from orchestrator.governor.policy import Policy

CHUNK = 250  # people per flush: bounds memory, keeps each insert batch large
_ADAPTED = (models.UUIDField,)
EVENT_COLUMNS = ("customer", "name", "properties", "occurred_at", "received_at", "source", "source_message_id")
TRANSITION_COLUMNS = ("message", "from_status", "to_status", "at", "detail")
ENROLLMENT_COLUMNS = (
    "journey", "version", "customer", "state", "current_node", "phase", "due_at", "waiting_for", "context", "holdout",
    "trigger_key", "step_seq", "entered_at", "exited_at", "exit_reason", "converted_at", "conversion_value",
    "conversion_event_id", "touch_sequence", "updated_at",
)
STEP_COLUMNS = ("enrollment", "journey_id", "version_id", "node_id", "kind", "outcome", "port", "detail", "message_id", "at")
MESSAGE_STATE_TIMES = tuple(f.name for f in Message._meta.concrete_fields if f.name.endswith("_at") and f.name != "updated_at")


@dataclass(frozen=True)
class SeedSummary:
    customers: int
    events: int
    messages_by_channel: dict[str, int]
    transitions: int
    launch_customer_pk: int | None
    enrollments_by_journey: dict[str, int]


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
    _write_enrollments(rows.enrollments)
    message_ids = _write_messages(rows.messages)
    _write_steps(rows.enrollments, message_ids)
    GovernorVerdict.objects.bulk_create(
        (GovernorVerdict(**{**columns, "message_id": message_ids[key] if key else None}) for columns, key in rows.verdicts),
        batch_size=1000,
    )
    transitions = sum(len(t) for _, t in rows.messages)
    return len(rows.events), len(rows.messages), transitions


def _write_messages(messages: list[tuple[dict, list[tuple]]]) -> dict[str, int]:
    """Messages and their transitions; returns message ids by idempotency key."""
    names = (
        "public_id", "customer", "channel", "category", "template_name", "content", "journey_id",
        "journey_version_id", "node_id", "enrollment_id", "status", "provider", "provider_message_id",
        "idempotency_key", "error", *MESSAGE_STATE_TIMES, "updated_at",
    )
    insert_rows(
        Message,
        names,
        (
            (m["public_id"], m["customer"].pk, m["channel"], m["category"], m["template_name"], m["content"],
             m.get("journey_id"), m.get("journey_version_id"), m.get("node_id", ""),
             m["enrollment"].enrollment_id if "enrollment" in m else None,
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
    return ids


# --- journey enrollments (orchestrator.demo_enrollments) ------------------------------------------


def _write_enrollments(enrollments: list[dict]) -> None:
    """Enrollments as the engine leaves them, before their messages (which name them).
    Event keys become ids here; message ids are filled in by ``_write_steps``."""
    if not enrollments:
        return
    keys = [e["trigger"].key for e in enrollments] + [e["conversion"].key for e in enrollments if e["conversion"]]
    event_ids = _event_ids(keys)
    for e in enrollments:
        e["trigger_key"] = f"event:{event_ids[e['trigger'].key]}"
        e["context"] = {"event": {"name": e["trigger"].name, "properties": e["trigger"].properties},
                        "event_id": event_ids[e["trigger"].key]}
        if e["wait"]:
            e["context"]["wait"] = e["wait"]
        e["conversion_event_id"] = event_ids[e["conversion"].key] if e["conversion"] else None
    insert_rows(Enrollment, ENROLLMENT_COLUMNS, (
        (e["journey"], e["version"], e["customer"].pk, *(e[name] for name in ENROLLMENT_COLUMNS[3:-2]), [], e["updated_at"])
        for e in enrollments
    ))
    found = Enrollment.objects.filter(
        journey_id__in={e["journey"] for e in enrollments}, trigger_key__in=[e["trigger_key"] for e in enrollments]
    ).values_list("journey_id", "trigger_key", "id")
    ids = {(journey, key): pk for journey, key, pk in found}
    for e in enrollments:
        e["walk"].enrollment_id = ids[(e["journey"], e["trigger_key"])]


def _write_steps(enrollments: list[dict], message_ids: dict[str, int]) -> None:
    """The step log, and the touches (message ids now known) in context and touch_sequence."""
    touched = []
    for e in enrollments:
        walk = e["walk"]
        touches = [{"message_id": message_ids[t["message_key"]], "channel": t["channel"], "at": t["at"].isoformat()}
                   for t in walk.touches]
        if touches:
            credited = [touch for touch, t in zip(touches, walk.touches, strict=True)
                        if walk.conversion and t["at"] <= walk.conversion.at]
            context = {**e["context"], "touches": touches, "last_message_id": touches[-1]["message_id"]}
            touched.append(Enrollment(pk=walk.enrollment_id, context=context, touch_sequence=credited))
    Enrollment.objects.bulk_update(touched, ["context", "touch_sequence"], batch_size=500)
    insert_rows(EnrollmentStep, STEP_COLUMNS, (
        (e["walk"].enrollment_id, e["journey"], e["version"], node, kind, outcome, port, detail,
         message_ids[key] if key else None, at)
        for e in enrollments for node, kind, outcome, port, detail, key, at in e["walk"].steps
    ))


def _event_ids(keys: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for offset in range(0, len(keys), 2000):
        batch = keys[offset : offset + 2000]
        ids.update(Event.objects.filter(source=SOURCE, source_message_id__in=batch).values_list("source_message_id", "id"))
    return ids


def _ids_by_key(keys: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for offset in range(0, len(keys), 2000):
        batch = keys[offset : offset + 2000]
        ids.update(Message.objects.filter(idempotency_key__in=batch).values_list("idempotency_key", "id"))
    return ids


def seed_population(
    population: list[SimCustomer], *, seed: int, now: datetime, days: int, plans: dict[str, list[JourneyPlan]] | None = None,
    policy: Policy | None = None,
) -> SeedSummary:
    """Simulate and save everyone's history, their enrollments in the live journeys of
    ``plans`` (``demo_enrollments``), the verdicts ``policy`` gave their campaign sends,
    and the channel affinities and activity profiles it implies (``demo_intelligence``).
    Call inside a transaction."""
    simulator = Simulator(seed, now, days, plans, policy)
    events = transitions = 0
    by_channel: dict[str, int] = {}
    by_journey: dict[str, int] = {}
    launch_pk = None
    for offset in range(0, len(population), CHUNK):
        rows = Rows()
        for sim in population[offset : offset + CHUNK]:
            simulator.simulate(sim, rows)
        for message, _ in rows.messages:
            by_channel[message["channel"]] = by_channel.get(message["channel"], 0) + 1
        for enrollment in rows.enrollments:
            name = enrollment["walk"].plan.name
            by_journey[name] = by_journey.get(name, 0) + 1
        written = write(rows)
        write_intelligence(rows, now=now)
        events, transitions = events + written[0], transitions + written[2]
        if offset == 0 and population[0].index == 0:
            launch_pk = rows.customers[0].pk
    finish_intelligence(now=now)
    return SeedSummary(len(population), events, by_channel, transitions, launch_pk, by_journey)
