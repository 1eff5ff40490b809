"""Past enrollments of the demo's live journeys, walked from each person's own history.

For the last ``ENROL_DAYS`` of the window, every trigger event a live event-entry journey
listens for (Cart recovery: ``Cart Abandoned``) enrols the person as the engine would:
re-entry rule, entry filters, then the journey graph node by node with the engine's own
timing rules (``engine.timing``) and template rendering. Sends are delivered and engaged
with through the person's hidden truth (``PersonHistory.delivery``/``engage``), so a click
may end in an order; that order, or any other the person places within the goal window,
is the conversion (as ``engine.events`` credits it: the goal is checked before waits, and
converts enrollments that already exited). Control-group members walk the same graph and
are sent nothing; they convert only through the orders they place anyway, so the lift
the measurement page shows is what the messages caused. Enrollments whose next step falls
after ``now`` are left waiting or delayed, due in the future, for the engine to continue.

The control group: the engine draws it from the database ids (``entry.in_holdout``); ids
differ between runs, so the demo draws the same share from the journey and the person's
external id instead, which keeps ``--seed`` deterministic and a person always in (or out
of) a journey's control group.

Only journeys built from node kinds this walker knows are seeded (``WALKABLE``): a journey
that splits, waits for engagement or picks channels is left without history.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import TYPE_CHECKING

from channels_app.templating import TemplateError, render_content, template_context
from journeys.filters import matches
from journeys.graph import entry_node, next_node_id
from journeys.models import Journey, JourneyStatus, ReentryPolicy
from orchestrator import demo_content as copy
from orchestrator.engine import timing
from orchestrator.engine.models import EnrollmentState, ExitReason, Phase, StepOutcome
from orchestrator.engine.steps import bucket
from orchestrator.governor.policy import Decision, Verdict

if TYPE_CHECKING:
    from orchestrator.demo_history import PersonHistory

ENROL_DAYS = 60
ENGAGEMENT_BOOST = 1.6  # a reminder about one's own cart is opened more than a campaign
CART_INTENT = 4.0  # …and its click ends in an order more often (``PersonHistory.engage``)
WALKABLE = frozenset({"entry", "delay", "send", "wait_for_event", "exit"})
CONVERTIBLE = frozenset({"sent", "delivered", "opened", "clicked"})


@dataclass(frozen=True)
class JourneyPlan:
    """What the walker needs of one live journey (read once, before the population)."""

    journey_id: int
    version_id: int
    name: str
    graph: Mapping
    entry_event: str
    entry_filters: tuple
    holdout_percent: int
    reentry: str
    cooldown: timedelta
    goal_event: str
    goal_filters: tuple
    goal_window: timedelta
    value_property: str
    exit_on_conversion: bool

    def node(self, node_id: str | None) -> dict | None:
        return next((n for n in self.graph["nodes"] if n["id"] == node_id), None)

    def after(self, node: dict, port: str) -> dict | None:
        return self.node(next_node_id(self.graph, node["id"], port))


def load_plans() -> dict[str, list[JourneyPlan]]:
    """Live journeys with an event entry and a walkable graph, by their trigger event."""
    plans: dict[str, list[JourneyPlan]] = {}
    for journey in Journey.objects.filter(status=JourneyStatus.LIVE).select_related("live_version").order_by("pk"):
        plan = _plan(journey)
        if plan is not None:
            plans.setdefault(plan.entry_event, []).append(plan)
    return plans


def _plan(journey: Journey) -> JourneyPlan | None:
    version = journey.live_version
    graph = version.graph if version else None
    entry = entry_node(graph) if graph else None
    if entry is None or entry["config"].get("trigger") != "event" or not _walkable(graph):
        return None
    return JourneyPlan(
        journey_id=journey.pk, version_id=version.pk, name=journey.name, graph=MappingProxyType(graph),
        entry_event=entry["config"]["event"], entry_filters=tuple(entry["config"].get("filters") or ()),
        holdout_percent=journey.holdout_percent, reentry=journey.reentry,
        cooldown=timedelta(seconds=journey.reentry_cooldown_seconds), goal_event=journey.goal_event,
        goal_filters=tuple(journey.goal_filters or ()), goal_window=timedelta(seconds=journey.goal_window_seconds),
        value_property=journey.goal_value_property, exit_on_conversion=journey.exit_on_conversion,
    )


def _walkable(graph: dict) -> bool:
    for node in graph["nodes"]:
        config = node.get("config") or {}
        if node["kind"] not in WALKABLE:
            return False
        if node["kind"] == "delay" and config.get("mode") != "duration":
            return False
        if node["kind"] == "wait_for_event" and config.get("mode") != "event":
            return False
        if node["kind"] == "send" and config.get("channel") not in config.get("content", {}):
            return False  # "best" and fallbacks choose with the affinity models
    return True


def in_demo_holdout(plan: JourneyPlan, seed: int, external_id: str) -> bool:
    return bucket("demo", seed, plan.name, external_id) < plan.holdout_percent * 100


# --- what a person's history records ------------------------------------------------------


@dataclass(frozen=True)
class Happening:
    """An event of the person's: its key (source_message_id) names it until it has an id."""

    name: str
    at: datetime
    key: str
    properties: dict


@dataclass(frozen=True)
class Trigger:
    plan: JourneyPlan
    event: Happening


def triggers_for(p: PersonHistory, event: Happening) -> list[Trigger]:
    plans = p.run.plans.get(event.name, ())
    if not plans or event.at < p.run.enrol_from or p.sim.index == 0:  # Maya's story starts un-enrolled
        return []
    return [Trigger(plan, event) for plan in plans if matches(list(plan.entry_filters), event.properties)]


def walk_enrollments(p: PersonHistory) -> None:
    """Enrol the person at each of their triggers, in time order, and walk each enrollment.
    Draws from a stream of its own, so the rest of the history does not move."""
    if not p.triggers:
        return
    history_rng, p.rng = p.rng, random.Random(f"chorus-demo:{p.run.seed}:{p.sim.index}:journeys")
    try:
        last: dict[int, Walk] = {}
        walks = []
        for trigger in sorted(p.triggers, key=lambda t: t.event.at):
            if _refused(trigger, last.get(trigger.plan.journey_id)):
                continue
            walk = Walk(p, trigger)
            walk.run()
            last[trigger.plan.journey_id] = walk
            walks.append(walk)
        for walk in walks:  # orders placed after a walk ended still convert it, as in the engine
            walk.late_conversion()
            p.rows.enrollments.append(walk.record())
    finally:
        p.rng = history_rng


def _refused(trigger: Trigger, previous: Walk | None) -> bool:
    """The engine's re-entry rule (``entry._reentry_refusal``), against this person's last walk."""
    if previous is None or trigger.plan.reentry == ReentryPolicy.ALWAYS:
        return False
    if trigger.plan.reentry == ReentryPolicy.ONCE:
        return True
    at = trigger.event.at
    still_inside = previous.exited_at is None or previous.exited_at > at
    return still_inside or previous.entered_at > at - trigger.plan.cooldown


# --- one enrollment -------------------------------------------------------------------------


@dataclass
class Walk:
    p: PersonHistory
    trigger: Trigger
    steps: list[tuple] = field(default_factory=list)  # (node_id, kind, outcome, port, detail, message key, at)
    touches: list[dict] = field(default_factory=list)  # {"message_key", "channel", "at"}
    messages: list[tuple[dict, list[tuple]]] = field(default_factory=list)
    node: dict | None = None
    state: str = EnrollmentState.EXITED
    phase: str = Phase.ARRIVE
    due_at: datetime | None = None
    waiting_for: str = ""
    wait_since: datetime | None = None
    exited_at: datetime | None = None
    exit_reason: str = ""
    conversion: Happening | None = None

    def __post_init__(self) -> None:
        self.plan = self.trigger.plan
        self.entered_at = self.trigger.event.at
        self.holdout = in_demo_holdout(self.plan, self.p.run.seed, self.p.sim.external_id)

    # --- the walk ---------------------------------------------------------------------------
    def run(self) -> None:
        t = self.entered_at
        self.node = entry_node(self.plan.graph)
        self.log(StepOutcome.ENTERED, t, port="out", detail="control group: sent nothing" if self.holdout else "")
        self.node = self.plan.after(self.node, "out")
        while self.node is not None:
            t = getattr(self, f"_{self.node['kind']}")(t)
            if t is None:
                return
        self.exit(t, ExitReason.COMPLETED, "end of path")

    def _exit(self, t: datetime) -> None:
        self.log(StepOutcome.EXITED, t, detail="exit node")
        self.finish(t, ExitReason.COMPLETED)

    def _delay(self, t: datetime) -> datetime | None:
        until, note = timing.delay_until(self.node["config"], t, customer_tz=self.p.sim.timezone, traits={})
        self.log(StepOutcome.DELAYED, t, detail=note)
        if self.converts_between(t, until):
            return None
        if until >= self.p.now:
            return self.pause(until, EnrollmentState.ACTIVE)
        return self.move(until, "out")

    def _send(self, t: datetime) -> datetime | None:
        channel = self.node["config"]["channel"]
        if self.holdout:
            self.log(StepOutcome.HELD_OUT, t, port="out", detail=f"{channel}: control group")
            return self.move(t, "out")
        p = self.p
        if channel not in p.sim.reachable_channels:
            self.log(StepOutcome.SUPPRESSED, t, port="out", detail=f"{channel}: no {channel} address")
            return self.move(t, "out")
        content = self.render(channel)
        template = f"{self.plan.name} · {self.node.get('label') or self.node['id']}"[:200]
        if p.blocked(channel, "marketing", t):
            p.message(channel, "marketing", template, content, t, p.suppressed(channel, t))
            key = self.tag(p.rows.messages[-1])
            self.log(StepOutcome.SUPPRESSED, t, port="out", detail=f"{channel}: {p.rows.messages[-1][0]['error']}", message=key)
            return self.move(t, "out")
        verdict = p.governed(channel, t)
        if verdict is not None:
            return self._held(channel, t, verdict, template, content)
        outcome = p.delivery(channel, t)
        if outcome.final == "delivered":
            p.engage(channel, outcome, ENGAGEMENT_BOOST, intent=CART_INTENT, products=self.cart_products())
        p.message(channel, "marketing", template, content, t, outcome)
        key = self.tag(p.rows.messages[-1])
        self.touches.append({"message_key": key, "channel": channel, "at": t})
        self.log(StepOutcome.SENT, t, port="out", detail=channel, message=key)
        return self.move(t, "out")

    def _held(self, channel: str, t: datetime, verdict: Verdict, template: str, content: dict) -> datetime | None:
        """The governor held the send back (as ``dispatch.decide`` with the node's on-cap
        choice): it waits at the send node for the moment the governor gave, then is tried
        again; or, past the horizon or on a node that skips or exits on caps, it is
        suppressed."""
        p, on_cap = self.p, self.node["config"].get("on_cap", "defer")
        waits = verdict.decision == Decision.DEFER and (verdict.always_defers or on_cap == "defer")
        journey = {"journey_id": self.plan.journey_id, "node_id": self.node["id"]}
        if waits:
            p.verdict(channel, t, verdict, Decision.DEFER, None, **journey)
            self.log(StepOutcome.DEFERRED, t, detail=f"{channel}: {verdict.reason}"[:500])
            if self.converts_between(t, verdict.until):
                return None
            if verdict.until >= p.now:
                self.state, self.phase, self.due_at = EnrollmentState.ACTIVE, Phase.ARRIVE, verdict.until
                return None
            return verdict.until  # the same send node, tried again
        from orchestrator.demo_history import Outcome  # it builds on this module

        outcome = Outcome({"suppressed": t + timedelta(milliseconds=40)}, "suppressed", verdict.reason)
        p.message(channel, "marketing", template, content, t, outcome)
        key = self.tag(p.rows.messages[-1])
        p.verdict(channel, t, verdict, Decision.SUPPRESS, key, **journey)
        self.log(StepOutcome.SUPPRESSED, t, port="out", detail=f"{channel}: {verdict.reason}"[:500], message=key)
        if on_cap == "exit" and not verdict.always_defers:
            self.exit(t, ExitReason.CAPPED, "held back by a frequency cap")
            return None
        return self.move(t, "out")

    def _wait_for_event(self, t: datetime) -> datetime | None:
        config = self.node["config"]
        until = timing.timeout_at(config["timeout"], t, customer_tz=self.p.sim.timezone)
        self.log(StepOutcome.WAITING, t, detail=f"for {config['event']} until {until:%Y-%m-%d %H:%M} UTC")
        if self.converts_between(t, until):  # the engine credits the goal before it wakes waits
            return None
        happened = self.first(config["event"], config.get("filters") or [], t, min(until, self.p.now))
        if happened is not None:
            self.log(StepOutcome.HAPPENED, happened.at, port="happened", detail=happened.name)
            return self.move(happened.at, "happened")
        if until >= self.p.now:
            self.waiting_for, self.wait_since = config["event"], t
            return self.pause(until, EnrollmentState.WAITING)
        self.log(StepOutcome.TIMED_OUT, until, port="timed_out")
        return self.move(until, "timed_out")

    def move(self, t: datetime, port: str) -> datetime | None:
        following = self.plan.after(self.node, port)
        if following is None:
            self.exit(t, ExitReason.COMPLETED, f"end of path after {port}")
            return None
        self.node = following
        return t

    def pause(self, until: datetime, state: str) -> None:
        self.state, self.phase, self.due_at = state, Phase.RESUME, until

    def exit(self, t: datetime, reason: str, detail: str) -> None:
        self.log(StepOutcome.EXITED, t, detail=detail)
        self.finish(t, reason)

    def finish(self, t: datetime, reason: str) -> None:
        self.state, self.exited_at, self.exit_reason, self.due_at = EnrollmentState.EXITED, t, reason, None

    # --- conversions ------------------------------------------------------------------------
    def converts_between(self, start: datetime, end: datetime) -> bool:
        """Convert on the first goal event in (start, end], if any; True when that ended the walk."""
        deadline = min(end, self.entered_at + self.plan.goal_window, self.p.now)
        goal = self.first(self.plan.goal_event, list(self.plan.goal_filters), start, deadline)
        if goal is None:
            return False
        self.convert(goal)
        if self.plan.exit_on_conversion:
            self.log(StepOutcome.EXITED, goal.at, detail="goal reached")
            self.finish(goal.at, ExitReason.CONVERTED)
            return True
        return False

    def late_conversion(self) -> None:
        if self.conversion is not None or self.exited_at is None:
            return
        deadline = min(self.entered_at + self.plan.goal_window, self.p.now)
        goal = self.first(self.plan.goal_event, list(self.plan.goal_filters), self.exited_at, deadline, inclusive=True)
        if goal is not None:
            self.convert(goal)

    def convert(self, goal: Happening) -> None:
        self.conversion = goal
        touched = [t for t in self.touches if t["at"] <= goal.at]
        path = " → ".join(t["channel"] for t in touched) or "no message"
        value = self.value(goal)
        worth = f" worth {value}" if value is not None else ""
        self.steps.append((self.node["id"] if self.node else "", "goal", StepOutcome.CONVERTED, "",
                           f"{goal.name}{worth} after {path}", "", goal.at))
        keys = {t["message_key"] for t in touched}
        for message, transitions in self.messages:
            if message["idempotency_key"] in keys:
                _mark_converted(message, transitions, goal.at)

    def value(self, goal: Happening) -> Decimal | None:
        raw = goal.properties.get(self.plan.value_property) if self.plan.value_property else None
        if raw is None or isinstance(raw, bool):
            return None
        try:
            return Decimal(str(raw)).quantize(Decimal("0.01"))
        except (InvalidOperation, ValueError):
            return None

    def first(self, name: str, filters: list, start: datetime, end: datetime, *, inclusive: bool = False) -> Happening | None:
        found = [
            event for event in self.p.happenings
            if event.name == name and (event.at >= start if inclusive else event.at > start) and event.at <= end
            and matches(filters, event.properties)
        ]
        return min(found, key=lambda event: event.at, default=None)

    # --- rows --------------------------------------------------------------------------------
    def log(self, outcome: str, at: datetime, *, port: str = "", detail: str = "", message: str = "") -> None:
        self.steps.append((self.node["id"], self.node["kind"], outcome, port, detail[:500], message, at))

    def cart_products(self) -> list | None:
        """What the trigger's cart held, to order on a click (None: not a cart event)."""
        wanted = {item.get("product_id") for item in self.trigger.event.properties.get("products") or ()}
        return [product for product in copy.CATALOG if product.product_id in wanted] or None

    def render(self, channel: str) -> dict:
        event = {"name": self.trigger.event.name, "properties": self.trigger.event.properties}
        context = template_context(self.p.customer, event=event, journey={"id": self.plan.journey_id, "name": self.plan.name})
        try:
            return render_content(channel, self.node["config"]["content"][channel], context)
        except TemplateError as error:  # a journey edited into a broken template: show why
            raise ValueError(f"{self.plan.name} · {self.node['id']}: {error}") from error

    def tag(self, row: tuple[dict, list[tuple]]) -> str:
        message = row[0]
        message.update(journey_id=self.plan.journey_id, journey_version_id=self.plan.version_id,
                       node_id=self.node["id"], enrollment=self)
        self.messages.append(row)
        return message["idempotency_key"]

    def record(self) -> dict:
        """The Enrollment columns; keys (events, messages) become ids when written."""
        waiting = self.state == EnrollmentState.WAITING
        return {
            "walk": self, "customer": self.p.customer, "journey": self.plan.journey_id, "version": self.plan.version_id,
            "state": self.state, "current_node": self.node["id"] if self.node else "", "phase": self.phase,
            "due_at": self.due_at, "waiting_for": self.waiting_for if waiting else "",
            "wait": {"node": self.node["id"], "since": self.wait_since.isoformat()} if waiting else None,
            "holdout": self.holdout, "trigger": self.trigger.event, "step_seq": len(self.steps),
            "entered_at": self.entered_at, "exited_at": self.exited_at, "exit_reason": self.exit_reason,
            "converted_at": self.conversion.at if self.conversion else None,
            "conversion_value": self.value(self.conversion) if self.conversion else None,
            "conversion": self.conversion,
            "updated_at": max(s[6] for s in self.steps),
        }


def _mark_converted(message: dict, transitions: list[tuple], at: datetime) -> None:
    """As ``engine.events._mark_messages_converted``; a message whose last state came after
    the order keeps it (its timestamps stay in order)."""
    if message["status"] not in CONVERTIBLE or message["updated_at"] > at:
        return
    transitions.append((message["status"], "converted", at, "journey goal reached"))
    message.update(status="converted", converted_at=at, updated_at=at)
