"""The one send entry point: ``dispatch()``, called by the journey engine inside its transaction.

Decides whether a rendered message may go (consent, an address on the channel), writes it
to the ledger under the caller's idempotency key, and schedules delivery for after the
caller's commit. A message that may not go is recorded too, as suppressed with the reason,
so the customer's timeline says why nothing arrived.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from django.db import transaction
from django.utils import timezone

from channels_app.delivery import deliver_after_commit, deliver_many_after_commit
from channels_app.ledger import (
    InvalidMessageRequest,
    QueueRequest,
    do_queue_message,
    do_transition_message,
    existing_message,
    queue_many,
)
from channels_app.models import MessageStatus
from channels_app.reachability import Reachability, Refusal
from customers.enums import Category, Channel
from customers.models import Customer
from orchestrator.governor.evaluate import Governor
from orchestrator.governor.models import GovernorVerdict
from orchestrator.governor.policy import Candidate, Verdict
from orchestrator.governor.policy import Decision as GovernorDecision


@dataclass(frozen=True)
class SendRequest:
    customer_id: int
    channel: str
    category: str
    content: dict  # already rendered
    idempotency_key: str
    journey_id: int | None = None
    journey_version_id: int | None = None
    node_id: str = ""
    enrollment_id: int | None = None
    template_name: str = ""
    at: datetime | None = None
    # What the frequency governor weighs: the journey's priority and tags, and what the
    # send node does when a cap (not quiet hours, which always defer) holds it back.
    priority: int = 5
    journey_tags: tuple[str, ...] = ()
    on_cap: str = "defer"
    # Why this message is written, when not the obvious (a fallback after another failed):
    # kept on its first transition, which the message's history shows.
    detail: str = ""


class OnCap(StrEnum):
    DEFER = "defer"  # wait for room, up to the policy's horizon; suppressed after it
    SKIP = "skip"  # suppress this send and go on to the next step
    EXIT = "exit"  # suppress this send and leave the journey


class Outcome(StrEnum):
    QUEUED = "queued"
    SUPPRESSED = "suppressed"
    DEFERRED = "deferred"  # nothing written: try again at ``until``
    DUPLICATE = "duplicate"  # the key already had a message: nothing new, nothing scheduled


@dataclass(frozen=True)
class DispatchResult:
    outcome: Outcome
    message_id: int | None
    reason: str
    until: datetime | None = None  # DEFERRED: when to try again
    exit: bool = False  # SUPPRESSED by a cap on a node that exits on caps


@dataclass(frozen=True)
class Decision:
    """What decide() says of one send, with the verdict behind a refusal (for its record)."""

    outcome: Outcome
    reason: str = ""
    verdict: Verdict | None = None
    exit: bool = False

    @property
    def until(self) -> datetime | None:
        return self.verdict.until if self.outcome == Outcome.DEFERRED and self.verdict else None


def dispatch(request: SendRequest, *, deciding: Iterable[int] = ()) -> DispatchResult:
    """Queue one message (or record why it may not go). Must run inside a transaction.
    ``deciding``: the enrollments the caller's transaction advances besides this one."""
    _require_transaction()
    _validate(request)
    existing = existing_message(_queue_request(request))
    if existing is not None:  # checked first: a retried send is never judged (or deferred) again
        return DispatchResult(Outcome.DUPLICATE, existing.pk, "idempotency key already used")
    customer = Customer.objects.get(pk=request.customer_id)
    deciding = {*deciding, *([request.enrollment_id] if request.enrollment_id else [])}
    governor = Governor([customer.pk], now=_at(request), deciding=deciding)
    decision = decide(customer, request, governor=governor)
    if decision.outcome == Outcome.DEFERRED:
        _record([(request, decision, None)])
        return DispatchResult(Outcome.DEFERRED, None, decision.reason, until=decision.until)
    queued = do_queue_message(_queue_request(request))
    message_id = queued.message.pk
    if not queued.created:
        return DispatchResult(Outcome.DUPLICATE, message_id, "idempotency key already used")
    if decision.outcome == Outcome.SUPPRESSED:
        do_transition_message(message_id, MessageStatus.SUPPRESSED, at=request.at, detail=decision.reason)
        _record([(request, decision, message_id)])
        return DispatchResult(Outcome.SUPPRESSED, message_id, decision.reason, exit=decision.exit)
    deliver_after_commit(message_id)
    return DispatchResult(Outcome.QUEUED, message_id, "")


@dataclass(frozen=True)
class FirstSend:
    """What dispatch_first() did: the last dispatch, its channel, and why each channel
    not used was refused (every one tried, when none was queued)."""

    result: DispatchResult
    channel: str
    refusals: dict[str, str]
    # The channels only held back (quiet hours, a yield, a cap that waits), in order, each
    # with the moment the governor would let it go: nothing was written for them.
    deferred: dict[str, datetime] = field(default_factory=dict)

    @property
    def used(self) -> bool:
        """A channel was queued (or its key already had a message)."""
        return self.result.outcome in (Outcome.QUEUED, Outcome.DUPLICATE)


def dispatch_first(requests: Iterable[SendRequest]) -> FirstSend:
    """Each send in order until one is queued (or its key already had a message): an
    ordered channel list. A refused one (suppressed or deferred) hands over to the next.
    Must run inside a transaction; ``requests`` must not be empty."""
    refusals: dict[str, str] = {}
    deferred: dict[str, datetime] = {}
    last = None
    for request in requests:
        last = FirstSend(dispatch(request), request.channel, dict(refusals), dict(deferred))
        if last.used:
            return last
        refusals[request.channel] = last.result.reason
        if last.result.outcome == Outcome.DEFERRED and last.result.until is not None:
            deferred[request.channel] = last.result.until
    if last is None:
        raise ValueError("dispatch_first() needs at least one send")
    return replace(last, refusals=refusals, deferred=deferred)


def refuse(request: SendRequest, reason: str, *, rule: str) -> DispatchResult:
    """Record a send refused before anyone weighs it, whatever the customer's consent or
    caps (its rendered content breaks a channel content rule): suppressed on the ledger
    with ``reason`` and stored as a verdict under ``rule``. Must run inside a transaction."""
    _require_transaction()
    _validate(request)
    queued = do_queue_message(_queue_request(request))
    if not queued.created:
        return DispatchResult(Outcome.DUPLICATE, queued.message.pk, "idempotency key already used")
    do_transition_message(queued.message.pk, MessageStatus.SUPPRESSED, at=request.at, detail=reason)
    _record([(request, _refused(reason, rule), queued.message.pk)])
    return DispatchResult(Outcome.SUPPRESSED, queued.message.pk, reason)


def _refused(reason: str, rule: str) -> Decision:
    return Decision(Outcome.SUPPRESSED, reason, Verdict(GovernorDecision.SUPPRESS, reason=reason, rule=rule))


def _require_transaction() -> None:
    if not transaction.get_connection().in_atomic_block:
        # Outside a transaction the message would be written apart from the step that
        # caused it, and delivery would run before the caller's own writes commit.
        raise RuntimeError("dispatch() must be called inside the caller's transaction")


def decide(customer: Customer, request: SendRequest, reach: Reachability | None = None, *, governor: Governor) -> Decision:
    """The one decision whether a send may go, for single sends and batches alike: consent
    and an address first, then the frequency governor, then the node's on-cap behaviour."""
    refusal = suppression_reason(customer, request.channel, request.category, reach)
    if refusal:
        verdict = Verdict(GovernorDecision.SUPPRESS, reason=refusal.reason, rule=refusal.rule)
        return Decision(Outcome.SUPPRESSED, refusal.reason, verdict)
    verdict = governor.evaluate(customer.pk, _candidate(customer, request))
    if verdict.allowed:
        return Decision(Outcome.QUEUED)
    quiet = verdict.always_defers  # quiet hours, or a yield to a higher-priority send
    if verdict.decision == GovernorDecision.DEFER and (quiet or request.on_cap == OnCap.DEFER):
        return Decision(Outcome.DEFERRED, verdict.reason, verdict)
    # Past the horizon, or held by a cap on a node that skips or exits rather than waits;
    # quiet hours alone never make a customer leave the journey.
    return Decision(Outcome.SUPPRESSED, verdict.reason, verdict, exit=request.on_cap == OnCap.EXIT and not quiet)


def _candidate(customer: Customer, request: SendRequest) -> Candidate:
    return Candidate(
        channel=request.channel, category=request.category, at=_at(request),
        customer_timezone=customer.timezone, journey_tags=frozenset(request.journey_tags), priority=request.priority,
    )


def _at(request: SendRequest) -> datetime:
    return request.at or timezone.now()


def _record(refusals: list[tuple[SendRequest, Decision, object]]) -> list[GovernorVerdict]:
    """Store every refusal (deferred or suppressed) with its rule and counts, in one INSERT.
    The third item is the suppressed message's id, or a PendingSend that fills it in."""
    rows = []
    for request, decision, message in refusals:
        verdict = decision.verdict
        row = GovernorVerdict(
            customer_id=request.customer_id, channel=request.channel, category=request.category,
            decision=(GovernorVerdict.Decision.DEFER if decision.outcome == Outcome.DEFERRED else GovernorVerdict.Decision.SUPPRESS),
            until=decision.until, rule=verdict.rule[:200], reason=decision.reason[:500], counts=verdict.counts,
            journey_id=request.journey_id, enrollment_id=request.enrollment_id, node_id=request.node_id, at=_at(request),
        )
        if isinstance(message, PendingSend):
            message.fill(row, "message_id")
        else:
            row.message_id = message
        rows.append(row)
    return GovernorVerdict.objects.bulk_create(rows)


def suppression_reason(customer: Customer, channel: str, category: str, reach: Reachability | None = None) -> Refusal | None:
    """Why this customer may not get this channel × category now (consent or address: the
    rule is ``Reachability.refusal``'s), with the rule's name; None when they may."""
    return (reach or Reachability.load([customer.pk])).refusal(customer, channel, category)


@dataclass
class PendingSend:
    """A send decided now and written when its batch is flushed; ``message_id`` arrives
    then, and is copied into whatever asked for it with ``fill``."""

    outcome: Outcome
    reason: str
    message_id: int | None = None
    until: datetime | None = None
    exit: bool = False
    _fills: list[tuple[object, str]] = field(default_factory=list)

    def fill(self, target: object, key: str) -> None:
        if self.message_id is not None:
            _put(target, key, self.message_id)
        else:
            self._fills.append((target, key))

    def resolve(self, message_id: int) -> None:
        self.message_id = message_id
        for target, key in self._fills:
            _put(target, key, message_id)
        self._fills.clear()


def _put(target: object, key: str, value: int) -> None:
    if isinstance(target, dict):
        target[key] = value
    else:
        setattr(target, key, value)


class DispatchBatch:
    """dispatch() for the many sends of one engine batch, inside its transaction.

    Consent and addresses of all the batch's customers are read once, at its first send
    (two queries); the
    messages are written together at ``flush`` (two INSERTs), and their delivery is
    scheduled once for the batch. The rules are dispatch()'s own (suppression_reason).
    ``careful`` (the engine's retry after a failure) dispatches each send on its own, so a
    reused idempotency key is resolved instead of failing the batch."""

    def __init__(self, customers: dict[int, Customer], *, now: datetime, careful: bool = False, enrollment_ids: Iterable[int] = ()):
        self.customers = customers
        self.careful = careful
        self._reach: Reachability | None = None
        self.enrollment_ids = list(enrollment_ids)
        self.governor = Governor(customers, now=now, deciding=self.enrollment_ids)
        self.pending: list[tuple[QueueRequest, str, PendingSend]] = []
        self.refusals: list[tuple[SendRequest, Decision, object]] = []

    def dispatch(self, request: SendRequest) -> PendingSend:
        if self.careful:
            result = dispatch(request, deciding=self.enrollment_ids)
            return PendingSend(result.outcome, result.reason, result.message_id, until=result.until, exit=result.exit)
        _validate(request)
        if self._reach is None:  # read on the first send: a batch of delays reads nothing
            self._reach = Reachability.load(self.customers)
        decision = decide(self.customers[request.customer_id], request, self._reach, governor=self.governor)
        pending = PendingSend(decision.outcome, decision.reason, until=decision.until, exit=decision.exit)
        if decision.outcome != Outcome.QUEUED:
            self.refusals.append((request, decision, pending if decision.outcome == Outcome.SUPPRESSED else None))
        if decision.outcome != Outcome.DEFERRED:
            self.pending.append((_queue_request(request), decision.reason, pending))
        return pending

    def refuse(self, request: SendRequest, reason: str, *, rule: str) -> PendingSend:
        """refuse() for a send of this batch: written suppressed when the batch is."""
        if self.careful:
            result = refuse(request, reason, rule=rule)
            return PendingSend(result.outcome, result.reason, result.message_id)
        _validate(request)
        pending = PendingSend(Outcome.SUPPRESSED, reason)
        self.refusals.append((request, _refused(reason, rule), pending))
        self.pending.append((_queue_request(request), reason, pending))
        return pending

    def flush(self) -> None:
        """Write the batch's messages and refusals; schedule delivery of the queued ones
        after commit."""
        if not self.pending and not self.refusals:
            return
        _require_transaction()
        messages = queue_many([(request, reason) for request, reason, _ in self.pending])
        for message, (_, _, pending) in zip(messages, self.pending, strict=True):
            pending.resolve(message.pk)
        _record(self.refusals)
        self.pending, self.refusals = [], []
        deliver_many_after_commit([m.pk for m in messages if m.status == MessageStatus.QUEUED])


def _validate(request: SendRequest) -> None:
    # Checked before consent and addresses, which would otherwise read an unknown
    # channel as "no address" and record a suppression for a programming error.
    if request.channel not in Channel.values:
        raise InvalidMessageRequest(f"channel: {request.channel!r} is not one of {', '.join(Channel.values)}")
    if request.category not in Category.values:
        raise InvalidMessageRequest(f"category: {request.category!r} is not one of {', '.join(Category.values)}")


def _queue_request(request: SendRequest) -> QueueRequest:
    return QueueRequest(
        customer_id=request.customer_id,
        channel=request.channel,
        category=request.category,
        idempotency_key=request.idempotency_key,
        content=dict(request.content),
        template_name=request.template_name,
        journey_id=request.journey_id,
        journey_version_id=request.journey_version_id,
        node_id=request.node_id,
        enrollment_id=request.enrollment_id,
        at=request.at,
        detail=request.detail,
    )

