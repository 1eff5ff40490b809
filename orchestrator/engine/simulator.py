"""The journey simulator: the real engine, under a virtual clock, in a transaction rolled back.

"What would this journey do to this person?" is answered by running it: a customer (an
existing one, or one described inline) enters the journey's draft graph (else its live
one), the scripted events are stored at their virtual times, and the engine advances the
enrollment moment by moment with ``now=`` passed explicitly. Global time is never patched:
the web server is multi-threaded, and another request must not see a shifted clock.

Everything happens inside ``transaction.atomic()`` and is rolled back, also on error: no
Customer, Event, Enrollment or Message row remains, and the deliveries the sends
registered with ``transaction.on_commit`` are discarded with the transaction, so no
provider is called. The timeline is read back from the engine's own step log and ledger
before the rollback.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from channels_app.models import Message
from customers.enums import Category, Channel, ConsentStatus, PushPlatform
from customers.models import Consent, ContactPoint, Customer, Event
from customers.validators import canonical_e164, validate_timezone
from journeys import graph as graphs
from journeys.filters import matches
from journeys.models import Journey, JourneyVersion
from orchestrator.engine import events as engine_events
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, Phase
from orchestrator.engine.runner import advance
from orchestrator.engine.timing import customer_zone

DEFAULT_SPAN = timedelta(days=30)
MAX_SPAN = timedelta(days=90)
MAX_EVENTS = 200
# Moments (an event or a wake-up) one simulation may take. A published graph cannot loop
# without a delay or wait, but a one-minute delay in a loop over 90 days still would be
# 130,000 moments: the simulation stops there and says it was cut short.
MAX_MOMENTS = 2000
SOURCE = "simulation"
PUSH_DEVICE = "simulated-push-device"

_OFFSET = re.compile(r"^\+(?:(?P<days>\d+)d)?(?:(?P<hours>\d+)h)?(?:(?P<minutes>\d+)m)?(?:(?P<seconds>\d+)s)?$")
_BAD_MOMENT = "not an ISO time or offset like +45m"
_TOP_KEYS = frozenset({"customer", "start", "events", "until", "holdout", "trigger"})
_INLINE_KEYS = frozenset({"timezone", "email", "phone", "locale", "traits", "push"})
_EVENT_KEYS = frozenset({"at", "name", "properties"})
MAX_EVENT_NAME = 200

FieldErrors = list[tuple[str, str]]


class SimulationInputError(ValueError):
    """A simulation request with invalid fields; ``fields`` names each (field, reason)."""

    def __init__(self, fields: FieldErrors):
        self.fields = list(fields)
        super().__init__("; ".join(f"{name}: {reason}" if name else reason for name, reason in self.fields))


# --- Input -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InlineCustomer:
    """A customer described in the request; created for the simulation only."""

    timezone: str = ""
    email: str = ""
    phone: str = ""
    locale: str = ""
    traits: dict = field(default_factory=dict)
    push: bool = False


@dataclass(frozen=True)
class ScriptedEvent:
    at: datetime
    name: str
    properties: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SimulationInput:
    start: datetime
    until: datetime
    events: tuple[ScriptedEvent, ...] = ()
    external_id: str | None = None  # an existing customer, or...
    inline: InlineCustomer | None = None  # ...one described inline
    holdout: bool = False
    trigger: dict = field(default_factory=dict)  # properties posted to an API-entry journey


def parse_simulation(data: Any, *, now: datetime | None = None) -> SimulationInput:
    """The request body, checked whole: every problem is reported at once, each by field."""
    if not isinstance(data, Mapping):
        raise SimulationInputError([("", "must be a JSON object")])
    errors: FieldErrors = [(str(key), "is not a known key here") for key in data if key not in _TOP_KEYS]
    start = _start(data.get("start"), now, errors)
    until = _until(data.get("until"), start, errors)
    external_id, inline = _customer(data.get("customer"), errors)
    events = _events(data.get("events", []), start, until, errors)
    holdout = data.get("holdout", False)
    if not isinstance(holdout, bool):
        errors.append(("holdout", "must be true or false"))
    trigger = data.get("trigger", {})
    if not isinstance(trigger, Mapping):
        errors.append(("trigger", "must be an object of properties"))
    if errors:
        raise SimulationInputError(errors)
    return SimulationInput(
        start=start, until=until, events=events, external_id=external_id, inline=inline,
        holdout=holdout, trigger=dict(trigger),
    )


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _moment(value: Any, base: datetime, name: str, errors: FieldErrors, *, offsets: bool = True) -> datetime | None:
    """An aware ISO time, or (when ``offsets``) "+1d2h30m" after ``base``."""
    if offsets and isinstance(value, str) and value.strip().startswith("+"):
        match = _OFFSET.match(value.strip())
        if match is None or not any(match.groupdict().values()):
            errors.append((name, _BAD_MOMENT))
            return None
        return base + timedelta(**{unit: int(n) for unit, n in match.groupdict().items() if n})
    moment = _iso(value)
    if moment is None:
        errors.append((name, _BAD_MOMENT if offsets else "not an ISO time like 2026-11-24T21:14:00-05:00"))
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive time would be read in the server's zone, not the customer's: refuse it.
        errors.append((name, "an ISO time needs a UTC offset, e.g. 2026-11-24T21:14:00-05:00 or …Z"))
        return None
    return moment


def _start(value: Any, now: datetime | None, errors: FieldErrors) -> datetime:
    fallback = (now or timezone.now()).replace(microsecond=0)
    if value is None:
        return fallback
    # An unreadable start still leaves a base, so offsets elsewhere are checked too.
    return _moment(value, fallback, "start", errors, offsets=False) or fallback


def _until(value: Any, start: datetime, errors: FieldErrors) -> datetime:
    if value is None:
        return start + DEFAULT_SPAN
    until = _moment(value, start, "until", errors)
    if until is None:
        return start + DEFAULT_SPAN
    if until <= start:
        errors.append(("until", "must be after start"))
    elif until - start > MAX_SPAN:
        errors.append(("until", f"may be at most {MAX_SPAN.days} days after start"))
    return until


def _customer(value: Any, errors: FieldErrors) -> tuple[str | None, InlineCustomer | None]:
    if not isinstance(value, Mapping):
        errors.append(("customer", "is required: {\"external_id\": ...} or {\"inline\": {...}}"))
        return None, None
    keys = set(value)
    if len(keys & {"external_id", "inline"}) != 1 or keys - {"external_id", "inline"}:
        errors.append(("customer", "give exactly one of external_id (an existing customer) or inline"))
        return None, None
    if "inline" in value:
        return None, _inline(value["inline"], errors)
    external_id = value["external_id"]
    if not isinstance(external_id, str) or not external_id.strip():
        errors.append(("customer.external_id", "must be a non-empty text"))
        return None, None
    return external_id.strip(), None


def _inline(value: Any, errors: FieldErrors) -> InlineCustomer | None:
    if not isinstance(value, Mapping):
        errors.append(("customer.inline", "must be an object"))
        return None
    before = len(errors)
    errors += [(f"customer.inline.{key}", "is not a known key here") for key in value if key not in _INLINE_KEYS]
    text = {key: _inline_text(value, key, errors) for key in ("timezone", "email", "phone", "locale")}
    traits, push = value.get("traits", {}), value.get("push", False)
    if not isinstance(traits, Mapping):
        errors.append(("customer.inline.traits", "must be an object"))
    if not isinstance(push, bool):
        errors.append(("customer.inline.push", "must be true or false"))
    if len(errors) > before:
        return None
    return InlineCustomer(traits=dict(traits), push=push, **text)


def _inline_text(value: Mapping, key: str, errors: FieldErrors) -> str:
    raw = value.get(key, "")
    name = f"customer.inline.{key}"
    if not isinstance(raw, str):
        errors.append((name, "must be text"))
        return ""
    raw = raw.strip()
    checks = {"timezone": validate_timezone, "email": validate_email, "phone": canonical_e164}
    try:
        if raw and key in checks:
            checked = checks[key](raw)
            return checked if key == "phone" else raw  # the phone in canonical E.164
    except ValidationError as exc:
        errors.append((name, exc.messages[0]))
    return raw


def _events(value: Any, start: datetime, until: datetime, errors: FieldErrors) -> tuple[ScriptedEvent, ...]:
    if not isinstance(value, list):
        errors.append(("events", "must be a list"))
        return ()
    if len(value) > MAX_EVENTS:
        errors.append(("events", f"may hold at most {MAX_EVENTS} events"))
        return ()
    found = [_event(item, f"events.{index}", start, until, errors) for index, item in enumerate(value)]
    # Stable: events given for the same moment happen in the order given.
    return tuple(sorted((e for e in found if e is not None), key=lambda e: e.at))


def _event(item: Any, name: str, start: datetime, until: datetime, errors: FieldErrors) -> ScriptedEvent | None:
    if not isinstance(item, Mapping):
        errors.append((name, "must be an object with at, name and properties"))
        return None
    before = len(errors)
    errors += [(f"{name}.{key}", "is not a known key here") for key in item if key not in _EVENT_KEYS]
    at = _moment(item.get("at"), start, f"{name}.at", errors) if "at" in item else None
    if "at" not in item:
        errors.append((f"{name}.at", "is required"))
    elif at is not None and not start <= at <= until:
        errors.append((f"{name}.at", f"{at.isoformat()} is outside the simulation ({start.isoformat()} to {until.isoformat()})"))
    event_name, properties = item.get("name"), item.get("properties", {})
    if not isinstance(event_name, str) or not event_name.strip() or len(event_name) > MAX_EVENT_NAME:
        errors.append((f"{name}.name", f"must be a non-empty text of at most {MAX_EVENT_NAME} characters"))
    if not isinstance(properties, Mapping):
        errors.append((f"{name}.properties", "must be an object"))
    if len(errors) > before or at is None:
        return None
    return ScriptedEvent(at=at, name=event_name.strip(), properties=dict(properties))


# --- Result ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulationResult:
    """The chronological timeline (steps, sends, waits, scripted events) and a summary."""

    timeline: list[dict]
    summary: dict

    def to_json(self) -> dict:
        return {"timeline": _jsonable(self.timeline), "summary": _jsonable(self.summary)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # money as text, as the API's decimal fields are
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


# --- Running ---------------------------------------------------------------------------------


def simulated_version(journey: Journey) -> JourneyVersion:
    """The draft (what the marketer is editing), else the live version, checked whole.

    Raises graphs.InvalidGraph listing every problem rather than simulating a graph the
    engine could not run."""
    version = journey.versions.filter(published_at__isnull=True).first() or journey.live_version
    if version is None:
        raise graphs.InvalidGraph([graphs.Problem(None, "", "the journey has no version to simulate")])
    segment_ids = graphs.existing_segment_ids(version.graph)
    graphs.validate_graph_or_raise(version.graph, segment_ids)
    return version


def simulate(journey: Journey, sim: SimulationInput) -> SimulationResult:
    """Run ``sim`` through the journey's draft (else live) graph; persist nothing.

    Raises graphs.InvalidGraph for a graph that cannot run, SimulationInputError for a
    customer that does not exist."""
    version = simulated_version(journey)
    with transaction.atomic():
        try:
            return _Simulation(journey, version, sim).run()
        finally:
            # Rolled back whatever happened: the rows go, and with them the deliveries
            # queued with on_commit, so no provider is ever called.
            transaction.set_rollback(True)


class _Simulation:
    """One run: the customer, the enrollment, and the scripted events seen so far."""

    def __init__(self, journey: Journey, version: JourneyVersion, sim: SimulationInput):
        self.journey, self.version, self.sim = journey, version, sim
        self.nodes = graphs.nodes_by_id(version.graph)
        self.entry = graphs.entry_node(version.graph) or {}
        self.event_entries: list[dict] = []
        self.enrollment_id: int | None = None
        self.truncated = False
        self.customer = self._customer()

    def run(self) -> SimulationResult:
        pending = list(self.sim.events)
        entered_at, context = self._await_entry(pending)
        if entered_at is not None:
            self.enrollment_id = self._enrol(entered_at, context)
            advance([self.enrollment_id], now=entered_at, live_only=False)
            self._play(pending)
        return self._result()

    # --- the customer and the entry ---

    def _customer(self) -> Customer:
        if self.sim.inline is None:
            customer = Customer.objects.filter(external_id=self.sim.external_id).first()
            if customer is None:
                raise SimulationInputError([("customer.external_id", f"no customer has external_id {self.sim.external_id!r}")])
            return customer
        return _inline_customer(self.sim.inline, self.sim.start)

    def _await_entry(self, pending: list[ScriptedEvent]) -> tuple[datetime | None, dict]:
        """When and with what context the customer enters; consumes events up to the entry."""
        config = self.entry.get("config") or {}
        if config.get("trigger") != "event":
            # Segment and API entries happen when the simulation starts.
            return self.sim.start, ({"trigger": dict(self.sim.trigger)} if config.get("trigger") == "api" else {})
        while pending:
            scripted = pending.pop(0)
            event = self._store(scripted)
            if scripted.name == config.get("event") and matches(config.get("filters") or [], scripted.properties):
                # The context the engine gives an event entry (events.entry_context).
                return scripted.at, engine_events.entry_context(event)
        return None, {}

    def _enrol(self, at: datetime, context: dict) -> int:
        enrollment = Enrollment.objects.create(
            journey=self.journey, version=self.version, customer=self.customer,
            state=EnrollmentState.ACTIVE, current_node=self.entry["id"], phase=Phase.ARRIVE, due_at=at,
            context=context, holdout=self.sim.holdout, entered_at=at,
            # Unique per run: two simulations of one customer at once must not wait on
            # each other's uncommitted row under the (journey, customer, key) constraint.
            trigger_key=f"{SOURCE}:{uuid.uuid4().hex}",
        )
        return enrollment.pk

    # --- the clock ---

    def _play(self, pending: list[ScriptedEvent]) -> None:
        """Next moment = the next scripted event or the enrollment's due time, until ``until``.

        Events keep coming after an exit: a goal event within the window still converts."""
        for _ in range(MAX_MOMENTS):
            due = Enrollment.objects.values_list("due_at", flat=True).get(pk=self.enrollment_id)
            if pending and (due is None or pending[0].at <= due):
                self._apply(pending.pop(0))
            elif due is not None and due <= self.sim.until:
                advance([self.enrollment_id], now=due, live_only=False)
            else:
                return
        self.truncated = True

    def _apply(self, scripted: ScriptedEvent) -> None:
        event = self._store(scripted)
        # With only_enrollments, the engine credits the goal whatever the journey's status
        # (a draft is simulated as if live).
        engine_events.handle_events([event.pk], now=scripted.at, only_enrollments={self.enrollment_id})

    def _store(self, scripted: ScriptedEvent) -> Event:
        # Stored directly, not through ingestion: its listener would enter the customer
        # into every live journey listening for this event.
        event = Event.objects.create(
            customer=self.customer, name=scripted.name, properties=scripted.properties,
            occurred_at=scripted.at, received_at=scripted.at, source=SOURCE,
        )
        self.event_entries.append({"at": scripted.at, "kind": "event", "name": scripted.name, "properties": scripted.properties})
        return event

    # --- reading the outcome back ---

    def _result(self) -> SimulationResult:
        enrollment = Enrollment.objects.filter(pk=self.enrollment_id).first() if self.enrollment_id else None
        steps = _step_entries(enrollment, self.nodes) if enrollment else []
        # Scripted events first at a shared moment: they caused that moment's steps.
        merged = sorted([(e["at"], 0, e) for e in self.event_entries] + [(s["at"], 1, s) for s in steps], key=lambda t: t[:2])
        return SimulationResult(timeline=[entry for _, _, entry in merged], summary=self._summary(enrollment, steps))

    def _summary(self, enrollment: Enrollment | None, steps: list[dict]) -> dict:
        summary = {
            "entered": enrollment is not None,
            "version": {"id": self.version.pk, "number": self.version.number, "draft": not self.version.is_published},
            "customer": {
                "external_id": None if self.sim.inline else self.customer.external_id,
                "timezone": customer_zone(self.customer.timezone).key,
            },
            "start": self.sim.start, "until": self.sim.until, "holdout": self.sim.holdout,
            "truncated": self.truncated,
        }
        return summary | (_enrollment_summary(enrollment, steps) if enrollment else _not_entered(self.entry))


def _inline_customer(inline: InlineCustomer, at: datetime) -> Customer:
    customer = Customer.objects.create(
        external_id=f"{SOURCE}:{uuid.uuid4().hex}", email=inline.email, phone=inline.phone,
        timezone=inline.timezone, locale=inline.locale, traits=dict(inline.traits),
        first_seen_at=at, last_seen_at=at,
    )
    # Contact points, so each channel the customer was described with has an address.
    points = [(Channel.EMAIL, inline.email, ""), (Channel.SMS, inline.phone, "")]
    if inline.push:
        points.append((Channel.PUSH, PUSH_DEVICE, PushPlatform.IOS))
    for channel, address, platform in points:
        if address:
            ContactPoint.objects.create(customer=customer, channel=channel, address=address, platform=platform)
    # The description says where the customer can be reached, not what they agreed to: they
    # opted in to marketing everywhere, so a missing address is what the timeline shows.
    Consent.objects.bulk_create(
        Consent(customer=customer, channel=channel, category=Category.MARKETING, status=ConsentStatus.OPTED_IN,
                source=SOURCE, changed_at=at)
        for channel in Channel
    )
    return customer


def _step_entries(enrollment: Enrollment, nodes: dict[str, dict]) -> list[dict]:
    messages = {m.pk: m for m in Message.objects.filter(enrollment_id=enrollment.pk)}
    entries = []
    for step in EnrollmentStep.objects.filter(enrollment_id=enrollment.pk).order_by("at", "id"):
        node = nodes.get(step.node_id) or {}
        message = messages.get(step.message_id) if step.message_id else None
        entries.append({
            "at": step.at, "node_id": step.node_id, "node_label": node.get("label") or "",
            # Exits logged by a conversion carry no kind: the node's own kind reads better.
            "kind": step.kind or node.get("kind", ""), "outcome": step.outcome, "port": step.port,
            "detail": step.detail,
            "message": {"channel": message.channel, "status": message.status, "content": message.content} if message else None,
        })
    return entries


def _enrollment_summary(enrollment: Enrollment, steps: list[dict]) -> dict:
    exited = enrollment.state == EnrollmentState.EXITED
    # Converted: the touches credited; otherwise every message sent, in order.
    touches = enrollment.touch_sequence if enrollment.converted_at else (enrollment.context or {}).get("touches", [])
    return {
        "entered_at": enrollment.entered_at,
        "exited": exited, "exit_reason": enrollment.exit_reason or None, "exited_at": enrollment.exited_at,
        "state": enrollment.state, "current_node": None if exited else enrollment.current_node,
        "next_due_at": enrollment.due_at,
        "converted": enrollment.converted_at is not None, "converted_at": enrollment.converted_at,
        "conversion_value": enrollment.conversion_value,
        "touch_sequence": [t["channel"] for t in touches],
        "path": _path(steps),
    }


def _not_entered(entry: dict) -> dict:
    config = entry.get("config") or {}
    return {
        "entered_at": None, "exited": False, "exit_reason": None, "exited_at": None, "state": None,
        "current_node": None, "next_due_at": None, "converted": False, "converted_at": None,
        "conversion_value": None, "touch_sequence": [], "path": [],
        "note": f"no scripted event enters the journey (it enters on {config.get('event')!r} matching its filters)",
    }


def _path(steps: list[dict]) -> list[str]:
    """Nodes visited, in order, each once per visit: what the canvas highlights."""
    path: list[str] = []
    for step in steps:
        if not path or path[-1] != step["node_id"]:
            path.append(step["node_id"])
    return path
