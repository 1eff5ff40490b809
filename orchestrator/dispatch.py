"""The one send entry point: ``dispatch()``, called by the journey engine inside its transaction.

Decides whether a rendered message may go (consent, an address on the channel), writes it
to the ledger under the caller's idempotency key, and schedules delivery for after the
caller's commit. A message that may not go is recorded too, as suppressed with the reason,
so the customer's timeline says why nothing arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.db import transaction

from channels_app.delivery import NO_ADDRESS, address_for_customer, deliver_after_commit
from channels_app.ledger import (
    InvalidMessageRequest,
    QueueRequest,
    do_queue_message,
    do_transition_message,
)
from channels_app.models import MessageStatus
from customers.consent import consent_status
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
    if not transaction.get_connection().in_atomic_block:
        # Outside a transaction the message would be written apart from the step that
        # caused it, and delivery would run before the caller's own writes commit.
        raise RuntimeError("dispatch() must be called inside the caller's transaction")
    _validate(request)
    customer = Customer.objects.get(pk=request.customer_id)
    reason = suppression_reason(customer, request.channel, request.category)
    # governor.evaluate() goes here (issue: global frequency governor)
    queued = do_queue_message(_queue_request(request))
    message_id = queued.message.pk
    if not queued.created:
        return DispatchResult(Outcome.DUPLICATE, message_id, "idempotency key already used")
    if reason:
        do_transition_message(message_id, MessageStatus.SUPPRESSED, at=request.at, detail=reason)
        return DispatchResult(Outcome.SUPPRESSED, message_id, reason)
    deliver_after_commit(message_id)
    return DispatchResult(Outcome.QUEUED, message_id, "")


def suppression_reason(customer: Customer, channel: str, category: str) -> str:
    """Why this customer may not get this channel × category now, or "" when they may."""
    status = consent_status(customer, channel, category)
    if status in BLOCKING_CONSENT:
        return f"{channel}/{category}: {status}"
    if address_for_customer(customer, channel) is None:
        return NO_ADDRESS[channel]
    return ""


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
