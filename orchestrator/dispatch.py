"""The one send entry point: ``dispatch()``, called by the journey engine inside its transaction.

Decides whether a rendered message may go (consent, an address on the channel), writes it
to the ledger under the caller's idempotency key, and schedules delivery for after the
caller's commit. A message that may not go is recorded too, as suppressed with the reason,
so the customer's timeline says why nothing arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.db import transaction

from channels_app.delivery import deliver_after_commit, deliver_many_after_commit
from channels_app.ledger import (
    InvalidMessageRequest,
    QueueRequest,
    do_queue_message,
    do_transition_message,
    queue_many,
)
from channels_app.models import MessageStatus
from channels_app.reachability import NO_ADDRESS, Reachability
from customers.enums import BLOCKING_CONSENT, Category, Channel
from customers.models import Customer


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


class Outcome(StrEnum):
    QUEUED = "queued"
    SUPPRESSED = "suppressed"
    DUPLICATE = "duplicate"  # the key already had a message: nothing new, nothing scheduled


@dataclass(frozen=True)
class DispatchResult:
    outcome: Outcome
    message_id: int | None
    reason: str


def dispatch(request: SendRequest) -> DispatchResult:
    """Queue one message (or record why it may not go). Must run inside a transaction."""
    _require_transaction()
    _validate(request)
    customer = Customer.objects.get(pk=request.customer_id)
    reason = decide(customer, request)
    queued = do_queue_message(_queue_request(request))
    message_id = queued.message.pk
    if not queued.created:
        return DispatchResult(Outcome.DUPLICATE, message_id, "idempotency key already used")
    if reason:
        do_transition_message(message_id, MessageStatus.SUPPRESSED, at=request.at, detail=reason)
        return DispatchResult(Outcome.SUPPRESSED, message_id, reason)
    deliver_after_commit(message_id)
    return DispatchResult(Outcome.QUEUED, message_id, "")


def _require_transaction() -> None:
    if not transaction.get_connection().in_atomic_block:
        # Outside a transaction the message would be written apart from the step that
        # caused it, and delivery would run before the caller's own writes commit.
        raise RuntimeError("dispatch() must be called inside the caller's transaction")


def decide(customer: Customer, request: SendRequest, reach: Reachability | None = None) -> str:
    """The one decision whether a send may go, for single sends and batches alike: ""
    to go, else the reason it is suppressed."""
    # governor.evaluate() goes here (issue: global frequency governor)
    return suppression_reason(customer, request.channel, request.category, reach)


def suppression_reason(customer: Customer, channel: str, category: str, reach: Reachability | None = None) -> str:
    """Why this customer may not get this channel × category now, or "" when they may."""
    reach = reach or Reachability.load([customer.pk])
    status = reach.consent(customer.pk, channel, category)
    if status in BLOCKING_CONSENT:
        return f"{channel}/{category}: {status}"
    if reach.address(customer, channel) is None:
        return NO_ADDRESS[channel]
    return ""


@dataclass
class PendingSend:
    """A send decided now and written when its batch is flushed; ``message_id`` arrives
    then, and is copied into whatever asked for it with ``fill``."""

    outcome: Outcome
    reason: str
    message_id: int | None = None
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

    def __init__(self, customers: dict[int, Customer], *, careful: bool = False):
        self.customers = customers
        self.careful = careful
        self._reach: Reachability | None = None
        self.pending: list[tuple[QueueRequest, str, PendingSend]] = []

    def dispatch(self, request: SendRequest) -> PendingSend:
        if self.careful:
            result = dispatch(request)
            return PendingSend(result.outcome, result.reason, result.message_id)
        _validate(request)
        if self._reach is None:  # read on the first send: a batch of delays reads nothing
            self._reach = Reachability.load(self.customers)
        reason = decide(self.customers[request.customer_id], request, self._reach)
        pending = PendingSend(Outcome.SUPPRESSED if reason else Outcome.QUEUED, reason)
        self.pending.append((_queue_request(request), reason, pending))
        return pending

    def flush(self) -> None:
        """Write the batch's messages and schedule delivery of the queued ones after commit."""
        if not self.pending:
            return
        _require_transaction()
        messages = queue_many([(request, reason) for request, reason, _ in self.pending])
        for message, (_, _, pending) in zip(messages, self.pending, strict=True):
            pending.resolve(message.pk)
        self.pending = []
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
    )

