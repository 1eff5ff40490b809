"""What each node kind does when an enrollment arrives at it or resumes it.

One runtime registry, keyed by journeys.nodes.NodeKind (a test keeps it in step with the
authoring registry). A handler returns a Step: where to go next (a port), or that the
enrollment sleeps until a time, or that it exits. Handlers never commit: the runner
calls them inside the claiming transaction and writes the step log and the enrollment
afterwards, so a crash anywhere rolls the whole step back.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from channels_app.content_rules import check_content
from channels_app.content_rules_loading import load_rules
from channels_app.templating import TemplateError, render_content, template_context
from customers.models import Customer, Segment
from customers.segments import is_member
from journeys.models import Journey
from journeys.nodes import BEST_CHANNEL, NodeKind, send_channels
from orchestrator.dispatch import DispatchBatch, Outcome, PendingSend, SendRequest
from orchestrator.engine import timing
from orchestrator.engine.models import Enrollment, ExitReason, StepOutcome
from orchestrator.intelligence.journeys import ChannelPick, best_time_delay, pick_channel, rng_for

CONTENT_RULE = "content"  # the rule a send refused for its content is recorded under


@dataclass
class Step:
    outcome: str
    port: str | None = None
    detail: str = ""
    sent: PendingSend | None = None  # a send's message; its id is known once the batch is written
    sleep_until: datetime | None = None
    retry_at: datetime | None = None  # arrive at this same node again then (a deferred send)
    waiting: bool = False  # asleep at a wait node (an event can wake it)
    exit_reason: str = ""
    log: bool = True


@dataclass
class Visit:
    """What a handler may read: the enrollment, its node, the customer, the journey, now."""

    enrollment: Enrollment
    node: dict
    customer: Customer
    journey: Journey
    now: datetime
    # Where sends go: the batch's dispatcher (it writes messages when the batch is written).
    sends: DispatchBatch | None = None
    # Segments named by split conditions, loaded once per batch.
    segments: dict[int, Segment] = field(default_factory=dict)

    @property
    def config(self) -> dict:
        return self.node.get("config") or {}

    @property
    def seq(self) -> int:
        """The number of the step being taken: part of a send's idempotency key."""
        return self.enrollment.step_seq + 1


Handler = Callable[[Visit], Step]


# --- entry, exit, update profile ---------------------------------------------------------


def arrive_entry(visit: Visit) -> Step:
    detail = "control group: sent nothing" if visit.enrollment.holdout else ""
    return Step(StepOutcome.ENTERED, port="out", detail=detail)


def arrive_exit(visit: Visit) -> Step:
    return Step(StepOutcome.EXITED, detail="exit node", exit_reason=ExitReason.COMPLETED)


def arrive_update_profile(visit: Visit) -> Step:
    trait, value = visit.config["trait"], visit.config.get("value")
    # Locked, then written whole: an identify merging traits concurrently holds the same
    # row lock, so neither change is lost.
    customer = Customer.objects.select_for_update().only("id", "traits").get(pk=visit.customer.pk)
    traits = dict(customer.traits or {})
    traits[trait] = value
    Customer.objects.filter(pk=customer.pk).update(traits=traits)
    visit.customer.traits = traits
    return Step(StepOutcome.UPDATED, port="out", detail=f"set {trait} = {value!r}"[:500])


# --- delay -------------------------------------------------------------------------------


def arrive_delay(visit: Visit) -> Step:
    if visit.config.get("mode") == "best_time":
        return _arrive_best_time(visit)
    until, note = timing.delay_until(
        visit.config, visit.now, customer_tz=visit.customer.timezone, traits=visit.customer.traits or {}
    )
    if until <= visit.now:
        return Step(StepOutcome.DELAYED, port="out", detail=note or "no delay")
    return Step(StepOutcome.DELAYED, detail=note, sleep_until=until)


def _arrive_best_time(visit: Visit) -> Step:
    """Until the customer's best moment in the window (see orchestrator.intelligence.journeys);
    a best-channel send next gets its channel chosen now, with the moment."""
    until, note, plan = best_time_delay(
        visit.customer, visit.config, visit.journey, node_id=visit.node["id"],
        version_id=visit.enrollment.version_id, now=visit.now, rng=_rng(visit),
    )
    if plan is not None:
        visit.enrollment.context["plan"] = plan
    if until <= visit.now:
        return Step(StepOutcome.DELAYED, port="out", detail=note)
    return Step(StepOutcome.DELAYED, detail=note, sleep_until=until)


def _rng(visit: Visit) -> random.Random:
    return rng_for(visit.journey.pk, visit.enrollment.pk, visit.seq)


def resume_delay(visit: Visit) -> Step:
    return Step(StepOutcome.DELAYED, port="out", log=False)


# --- send --------------------------------------------------------------------------------


def arrive_send(visit: Visit) -> Step:
    channel = visit.config["channel"]
    if visit.enrollment.holdout:
        return Step(StepOutcome.HELD_OUT, port="out", detail=f"{channel}: control group")
    channel, chosen = _channel(visit)
    try:
        content = render_content(channel, visit.config["content"].get(channel, {}), visit_template_context(visit))
    except TemplateError as error:
        return Step(StepOutcome.FAILED, port="out", detail=f"{channel}: {error.reason}"[:500])
    request = send_request(visit, channel, content)
    if channel != send_channels(visit.config)[0]:  # a retried step choosing another channel gets a new key
        request = replace(request, idempotency_key=f"{request.idempotency_key}:{channel}")
    # Before consent and caps are weighed: content that breaks a rule goes to nobody.
    refusal = content_refusal(channel, visit.journey.category, content)
    sent = visit.sends.refuse(request, refusal, rule=CONTENT_RULE) if refusal else visit.sends.dispatch(request)
    if sent.outcome == Outcome.DEFERRED:
        return Step(StepOutcome.DEFERRED, detail=f"{channel}: {sent.reason}"[:500], retry_at=sent.until)
    if sent.outcome == Outcome.SUPPRESSED:
        exit_reason = ExitReason.CAPPED if sent.exit else ""
        return Step(StepOutcome.SUPPRESSED, port="out", detail=f"{channel}: {sent.reason}"[:500], sent=sent, exit_reason=exit_reason)
    _remember_touch(visit, channel, sent, chosen)
    return Step(StepOutcome.SENT, port="out", detail=chosen.detail if chosen else channel, sent=sent)


def _channel(visit: Visit) -> tuple[str, ChannelPick | None]:
    """The node's channel, or the one chosen (a best-channel send, or a fallback): with why."""
    if visit.config["channel"] != BEST_CHANNEL and not visit.config.get("fallback"):
        return visit.config["channel"], None
    plan = visit.enrollment.context.pop("plan", None)
    plan = plan if plan and plan.get("node") == visit.node["id"] else None
    pick = pick_channel(
        visit.customer, visit.config, visit.journey, now=visit.now, governor=visit.sends.governor,
        rng=_rng(visit), plan=plan,
    )
    return pick.channel, pick


def content_refusal(channel: str, category: str, content: dict) -> str:
    """Why the rendered content may not go ("" when it may): every error the channel content
    rules find now, after rendering (a variable may have made an SMS longer than publishing
    could see). Warnings never stop a send. In-app presence is about the journey's shape,
    checked when it was published, so it is not judged again here."""
    errors = [str(p) for p in check_content(channel, category, content, load_rules()) if p.severity == "error"]
    return f"{CONTENT_RULE}: {'; '.join(errors)}" if errors else ""


def visit_template_context(visit: Visit) -> dict:
    ctx = visit.enrollment.context or {}
    return template_context(
        visit.customer,
        event=ctx.get("event"),
        journey={"id": visit.journey.pk, "name": visit.journey.name},
        trigger=ctx.get("trigger"),
    )


def send_request(visit: Visit, channel: str, content: dict) -> SendRequest:
    enrollment = visit.enrollment
    return SendRequest(
        customer_id=visit.customer.pk,
        channel=channel,
        category=visit.journey.category,
        content=content,
        idempotency_key=f"enrollment:{enrollment.pk}:step:{visit.seq}",
        journey_id=visit.journey.pk,
        journey_version_id=enrollment.version_id,
        node_id=visit.node["id"],
        enrollment_id=enrollment.pk,
        template_name=f"{visit.journey.name} · {visit.node.get('label') or visit.node['id']}"[:200],
        at=visit.now,
        priority=visit.journey.priority,
        journey_tags=tuple(visit.journey.tags or ()),
        on_cap=visit.config.get("on_cap", "defer"),
    )


def _remember_touch(visit: Visit, channel: str, sent: PendingSend, chosen: ChannelPick | None = None) -> None:
    """The message ids arrive when the batch's messages are written (see DispatchBatch)."""
    ctx = visit.enrollment.context
    touch = {"message_id": None, "channel": channel, "at": visit.now.isoformat()}
    if chosen is not None:  # the choice, as the timeline shows it
        touch["choice"] = {"detail": chosen.detail, "explored": chosen.explored, "reason": chosen.reason}
    ctx.setdefault("touches", []).append(touch)
    sent.fill(touch, "message_id")
    sent.fill(ctx, "last_message_id")
    visit.enrollment.unwritten_send = sent


# --- wait for event ----------------------------------------------------------------------


def arrive_wait(visit: Visit) -> Step:
    config, enrollment = visit.config, visit.enrollment
    until = timing.timeout_at(config["timeout"], visit.now, customer_tz=visit.customer.timezone)
    enrollment.context["wait"] = {"node": visit.node["id"], "since": visit.now.isoformat()}
    if config.get("mode") == "engagement":
        unwritten = getattr(enrollment, "unwritten_send", None)
        if unwritten is not None and unwritten.message_id is None:
            # Sent earlier in this very batch: its id comes when the batch is written, and
            # a message not yet written cannot have been opened.
            unwritten.fill(enrollment, "wait_message_id")
        else:
            enrollment.wait_message_id = enrollment.context.get("last_message_id")
        if enrollment.wait_message_id is not None and _engaged(visit):
            # Opened (or clicked) before the wait began, e.g. during a delay: the timeout
            # would only make the "happened" branch late.
            enrollment.context.pop("wait")
            enrollment.wait_message_id = None
            return Step(StepOutcome.HAPPENED, port="happened", detail=f"message {config['engagement']} before the wait")
        what = f"{config['engagement']} of the previous message"
    else:
        enrollment.waiting_for = config["event"]
        what = config["event"]
    return Step(StepOutcome.WAITING, detail=f"for {what} until {until:%Y-%m-%d %H:%M} UTC", sleep_until=until, waiting=True)


def resume_wait(visit: Visit) -> Step:
    enrollment = visit.enrollment
    wait = enrollment.context.pop("wait", {}) or {}
    happened, detail = wait.get("outcome") == "happened", wait.get("detail", "")
    if not happened and _engaged(visit):
        happened, detail = True, f"message {visit.config['engagement']}"
    enrollment.waiting_for, enrollment.wait_message_id = "", None
    if happened:
        return Step(StepOutcome.HAPPENED, port="happened", detail=detail)
    return Step(StepOutcome.TIMED_OUT, port="timed_out")


def _engaged(visit: Visit) -> bool:
    """An engagement wait also looks at the message itself: on arrival (opened before the
    wait began) and when the timer fires (a receipt recorded without waking it)."""
    from channels_app.models import Message

    message_id = visit.enrollment.wait_message_id
    if visit.config.get("mode") != "engagement" or message_id is None:
        return False
    column = "clicked_at" if visit.config["engagement"] == "clicked" else "opened_at"
    return Message.objects.filter(pk=message_id, **{f"{column}__isnull": False}).exists()


# --- splits ------------------------------------------------------------------------------


def arrive_split(visit: Visit) -> Step:
    for branch in visit.config["branches"]:
        if _holds(branch["condition"], visit):
            return Step(StepOutcome.BRANCH, port=branch["port"], detail=branch.get("label") or branch["port"])
    return Step(StepOutcome.BRANCH, port="else", detail="else")


def _holds(condition: dict, visit: Visit) -> bool:
    if "segment_id" in condition:
        segment = visit.segments.get(condition["segment_id"])
        return segment is not None and is_member(segment.definition, visit.customer, now=visit.now)
    return is_member(condition, visit.customer, now=visit.now)


def bucket(*parts: object, buckets: int = 10_000) -> int:
    """A stable number in [0, buckets) for these parts: the same customer always lands in
    the same branch and the same holdout group."""
    digest = hashlib.md5(":".join(str(p) for p in parts).encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % buckets


def arrive_random_split(visit: Visit) -> Step:
    branches = visit.config["branches"]
    total = sum(int(b["weight"]) for b in branches)
    point = bucket(visit.journey.pk, visit.node["id"], visit.customer.pk, buckets=total)
    for branch in branches:
        point -= int(branch["weight"])
        if point < 0:
            return Step(StepOutcome.BRANCH, port=branch["port"], detail=f"{branch['port']} ({branch['weight']}/{total})")
    raise AssertionError("weights exhausted")  # pragma: no cover


def _continue(visit: Visit) -> Step:
    return Step(StepOutcome.ENTERED, port="out", log=False)


# kind → (arrive, resume). Only delay and wait ever resume.
RUNTIME: dict[NodeKind, tuple[Handler, Handler]] = {
    NodeKind.ENTRY: (arrive_entry, _continue),
    NodeKind.DELAY: (arrive_delay, resume_delay),
    NodeKind.SEND: (arrive_send, _continue),
    NodeKind.WAIT_FOR_EVENT: (arrive_wait, resume_wait),
    NodeKind.SPLIT: (arrive_split, _continue),
    NodeKind.RANDOM_SPLIT: (arrive_random_split, _continue),
    NodeKind.UPDATE_PROFILE: (arrive_update_profile, _continue),
    NodeKind.EXIT: (arrive_exit, arrive_exit),
}
