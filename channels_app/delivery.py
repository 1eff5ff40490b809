"""Delivery: the provider call for a queued message, made once, after commit; and recovery.

A message is queued inside the transaction that decided to send it; delivery is scheduled
with ``deliver_after_commit`` and claimed with a conditional UPDATE (queued → sending), so
of any number of callers exactly one calls the provider. Provider calls happen outside any
database transaction: a slow provider must not hold row locks, and a rolled-back
transaction must never have sent anything.

A worker can die between commit and delivery (the message stays queued) or during the
provider call (it stays sending). ``recover_stranded`` finds both: queued messages are
delivered; a sending message is sent again only through a provider that honours
idempotency keys, since any other provider may already have delivered it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from channels_app.ledger import IllegalTransition, claim_for_sending, do_transition_message
from channels_app.models import Message, MessageStatus
from channels_app.providers import Delivery, Provider, ProviderError, get_provider
from customers.enums import Channel
from customers.models import ContactPoint, Customer

logger = logging.getLogger(__name__)
S = MessageStatus

INBOX = "inbox"  # every customer has an in-app inbox
# Why a channel has nowhere to send, as shown on the customer's timeline.
NO_ADDRESS: dict[str, str] = {
    Channel.EMAIL: "no email address",
    Channel.SMS: "no phone number",
    Channel.PUSH: "no enabled push subscription",
}
UNKNOWN_AFTER_CRASH = "worker stopped mid-send; not resent to avoid a duplicate"
RECOVERY_BATCH = 100


# --- Addresses -------------------------------------------------------------------------------


def address_for_customer(customer: Customer, channel: str) -> str | None:
    """Where a message on `channel` goes: an enabled contact point first, then the profile."""
    if channel == Channel.IN_APP:
        return INBOX
    point = (
        ContactPoint.objects.filter(customer=customer, channel=channel, enabled=True)
        .values_list("address", flat=True)
        .first()
    )
    if point:
        return point
    profile = {Channel.EMAIL: customer.email, Channel.SMS: customer.phone}.get(channel, "")
    return profile or None


def address_for(message: Message) -> str | None:
    return address_for_customer(message.customer, message.channel)


# --- Delivering one message ------------------------------------------------------------------


def deliver_after_commit(message_id: int) -> None:
    """The only way code schedules a delivery: after the transaction that queued it commits.

    ``robust``: a failing delivery must not turn the caller's committed work into an error;
    the message stays queued or sending, and recover_stranded picks it up.
    """
    transaction.on_commit(lambda: deliver(message_id), robust=True)


def deliver(message_id: int, *, now: datetime | None = None) -> str:
    """Send a queued message once; return its status afterwards. Call outside transactions.

    A message that is not queued (already claimed, sent, suppressed…) is left alone.
    """
    if not claim_for_sending(message_id, at=now):
        return _status_of(message_id)
    return _send_claimed(message_id, now)


def _status_of(message_id: int) -> str:
    return Message.objects.values_list("status", flat=True).get(pk=message_id)


def _delivery(message: Message, to: str) -> Delivery:
    return Delivery(
        message_id=message.pk,
        public_id=str(message.public_id),
        channel=message.channel,
        category=message.category,
        to=to,
        content=dict(message.content or {}),
        idempotency_key=message.idempotency_key,
    )


def _send_claimed(message_id: int, now: datetime | None) -> str:
    """Send a message this worker has claimed (status sending)."""
    message = Message.objects.select_related("customer").get(pk=message_id)
    to = address_for(message)
    if to is None:  # the address went away between queueing and sending
        return _finish(message_id, S.FAILED, now, detail=NO_ADDRESS[message.channel])
    try:
        provider = get_provider(message.channel)
    except Exception as error:  # nothing was sent, so "failed" is certain
        logger.exception("message %s: no provider for %s", message_id, message.channel)
        return _finish(message_id, S.FAILED, now, detail=f"no provider: {error}")
    return _send(message_id, provider, _delivery(message, to), now)


def _send(message_id: int, provider: Provider, delivery: Delivery, now: datetime | None) -> str:
    try:
        result = provider.send(delivery)
    except ProviderError as error:
        # Transient errors fail too for now: retries with backoff are a later issue.
        detail = error.reason if error.permanent else f"transient: {error.reason}"
        return _finish(message_id, S.FAILED, now, detail=detail, provider=provider.name)
    except Exception as error:
        # The request may have left before this: the provider may have sent it.
        logger.exception("message %s: %s provider raised; marking unknown", message_id, provider.name)
        detail = f"provider raised {type(error).__name__}: {error}"
        return _finish(message_id, S.UNKNOWN, now, detail=detail, provider=provider.name)
    return _finish(
        message_id, S.SENT, now, provider=provider.name, provider_message_id=result.provider_message_id
    )


def _finish(message_id: int, status: str, now: datetime | None, **fields) -> str:
    try:
        return do_transition_message(message_id, status, at=now, **fields).status
    except IllegalTransition as error:
        # A receipt (a bounce, say) moved the message on while we were sending: it wins.
        logger.warning("%s; keeping the receipt's status", error)
        return _status_of(message_id)


# --- Crash recovery ----------------------------------------------------------------------------


def recover_stranded(
    *,
    now: datetime | None = None,
    queued_older_than: timedelta = timedelta(seconds=30),
    sending_older_than: timedelta = timedelta(minutes=2),
    batch_size: int = RECOVERY_BATCH,
) -> dict[str, int]:
    """Deliver queued messages whose after-commit delivery was lost; settle stale sends.

    Time in a status is measured from ``updated_at``, which every transition sets. Call it
    outside any transaction (a periodic task): each batch is claimed and committed before
    its provider calls. Returns how many messages were delivered, resent, marked unknown.
    """
    now = now or timezone.now()
    counts = {"delivered": 0, "resent": 0, "unknown": 0}
    while batch := _claim_stale_queued(now - queued_older_than, now, batch_size):
        for message_id in batch:
            if _guarded(_send_claimed, message_id, now) is not None:
                counts["delivered"] += 1
    while batch := _claim_stale_sending(now - sending_older_than, now, batch_size):
        for message_id in batch:
            outcome = _guarded(_recover_sending, message_id, now)
            if outcome is not None:
                counts[outcome] += 1
    return counts


def _stale(status: str, cutoff: datetime) -> QuerySet[Message]:
    stale = Message.objects.filter(status=status, updated_at__lt=cutoff).order_by("updated_at", "id")
    # On PostgreSQL concurrent sweepers take disjoint batches instead of queueing on locks.
    # SQLite has no row locks; the conditional updates below still make each claim unique.
    if connection.features.has_select_for_update_skip_locked:
        stale = stale.select_for_update(skip_locked=True)
    return stale


@transaction.atomic
def _claim_stale_queued(cutoff: datetime, now: datetime, limit: int) -> list[int]:
    ids = list(_stale(S.QUEUED, cutoff).values_list("pk", flat=True)[:limit])
    return [pk for pk in ids if claim_for_sending(pk, at=now)]


@transaction.atomic
def _claim_stale_sending(cutoff: datetime, now: datetime, limit: int) -> list[int]:
    rows = list(_stale(S.SENDING, cutoff).values_list("pk", "updated_at")[:limit])
    # Restarting the clock is the claim: a conditional update on the time we read, so
    # another sweeper neither wins the same message nor sees it stale again this soon.
    return [
        pk
        for pk, updated_at in rows
        if Message.objects.filter(pk=pk, status=S.SENDING, updated_at=updated_at).update(updated_at=now)
    ]


def _recover_sending(message_id: int, now: datetime) -> str:
    """A send that never finished: resend under the same key, or mark it unknown."""
    message = Message.objects.select_related("customer").get(pk=message_id)
    provider = get_provider(message.channel)
    to = address_for(message)
    if not provider.honours_idempotency_key or to is None:
        detail = UNKNOWN_AFTER_CRASH if to else f"worker stopped mid-send; not resent: {NO_ADDRESS[message.channel]}"
        _finish(message_id, S.UNKNOWN, now, detail=detail, provider=provider.name)
        return "unknown"
    _send(message_id, provider, _delivery(message, to), now)
    return "resent"


def _guarded(step: Callable[[int, datetime], str], message_id: int, now: datetime) -> str | None:
    try:
        return step(message_id, now)
    except Exception:
        # One bad message must not stop the sweep; it stays put and a later sweep retries it.
        logger.exception("recovering message %s failed", message_id)
        return None
