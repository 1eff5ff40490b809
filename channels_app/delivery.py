"""Delivery: the provider call for a queued message, made once, after commit; and recovery.

A message is queued inside the transaction that decided to send it; delivery is scheduled
with ``deliver_many_after_commit`` (or ``deliver_after_commit`` for one) and claimed with a
conditional UPDATE (queued → sending), so of any number of callers exactly one calls the
provider. Delivery works in batches: one claim, one load, one ``send_batch`` per channel
and one "sent" write per batch, so its cost does not grow with the batch. Provider calls happen outside any
database transaction: a slow provider must not hold row locks, and a rolled-back
transaction must never have sent anything.

A worker can die between commit and delivery (the message stays queued) or during the
provider call (it stays sending). ``recover_stranded`` finds both: queued messages are
delivered; a sending message is sent again only through a provider that honours
idempotency keys, since any other provider may already have delivered it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from channels_app.ledger import (
    claim_many_for_sending,
    record_sent_many,
)
from channels_app.models import Message, MessageStatus
from channels_app.providers import (
    Delivery,
    Provider,
    ProviderError,
    SendResult,
    get_provider,
    get_providers,
)
from channels_app.providers.inapp import InAppProvider, hold_until_seen
from channels_app.reachability import NO_ADDRESS, Reachability
from channels_app.retries import ChannelRun
from channels_app.retries import call_provider as _call
from channels_app.retries import finish as _finish
from customers.models import Customer

logger = logging.getLogger(__name__)
S = MessageStatus

UNKNOWN_AFTER_CRASH = "worker stopped mid-send; not resent to avoid a duplicate"
RECOVERY_BATCH = 100


# --- Addresses -------------------------------------------------------------------------------
# The rule (which contact point wins, when the profile's address stands in) is
# channels_app.reachability's; these read it for messages.


def address_for_customer(customer: Customer, channel: str) -> str | None:
    """Where a message on `channel` goes: an enabled contact point first, then the profile."""
    return Reachability.load([customer.pk], consents=False).address(customer, channel)


def address_for(message: Message) -> str | None:
    return address_for_customer(message.customer, message.channel)


def _with_addresses(message_ids: Iterable[int]) -> list[tuple[Message, str | None]]:
    """The messages with their customers and addresses: two queries, whatever the count."""
    messages = list(Message.objects.filter(pk__in=list(message_ids)).select_related("customer").order_by("pk"))
    reach = Reachability.load({m.customer_id for m in messages}, consents=False)
    return [(message, reach.address(message.customer, message.channel)) for message in messages]


# --- Delivering ------------------------------------------------------------------------------


def deliver_after_commit(message_id: int) -> None:
    """Schedule one message's delivery for after the transaction that queued it commits."""
    deliver_many_after_commit([message_id])


def deliver_many_after_commit(message_ids: Iterable[int]) -> None:
    """The only way code schedules deliveries: after the transaction that queued them commits.

    One callback for the whole batch. ``robust``: a failing delivery must not turn the
    caller's committed work into an error; the messages stay queued or sending, and
    recover_stranded picks them up.
    """
    ids = list(message_ids)
    if ids:
        transaction.on_commit(lambda: deliver_many(ids), robust=True)


def deliver(message_id: int, *, now: datetime | None = None) -> str:
    """Send a queued message once; return its status afterwards. Call outside transactions."""
    statuses = deliver_many([message_id], now=now)
    if message_id not in statuses:
        raise Message.DoesNotExist(f"message {message_id} does not exist")
    return statuses[message_id]


def deliver_many(message_ids: Iterable[int], *, now: datetime | None = None) -> dict[int, str]:
    """Send each queued message once; return every existing message's status afterwards.

    Call outside transactions. A message that is not queued (already claimed, sent,
    suppressed…) is left alone. Costs a handful of queries per batch (claim, load, one
    provider call per channel, mark sent); only failures cost queries per message.
    """
    ids = list(dict.fromkeys(message_ids))
    if not ids:
        return {}
    claimed = claim_many_for_sending(ids, at=now)
    statuses = _statuses_of(set(ids) - set(claimed))
    statuses.update(_send_claimed_many(claimed, now))
    return statuses


def _statuses_of(message_ids: set[int]) -> dict[int, str]:
    if not message_ids:
        return {}
    return dict(Message.objects.filter(pk__in=message_ids).values_list("pk", "status"))


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


def _send_claimed_many(message_ids: list[int], now: datetime | None) -> dict[int, str]:
    """Send messages this worker has claimed (status sending), one provider call per channel
    and provider; what cannot go now is put back in the queue (see channels_app.retries)."""
    if not message_ids:
        return {}
    statuses: dict[int, str] = {}
    by_channel: dict[str, list[tuple[Message, Delivery]]] = defaultdict(list)
    for message, to in _with_addresses(message_ids):
        if to is None:  # the address went away between queueing and sending
            statuses[message.pk] = _finish(message.pk, S.FAILED, now, detail=NO_ADDRESS[message.channel])
        else:
            by_channel[message.channel].append((message, _delivery(message, to)))
    sent: list[tuple[int, str, str]] = []
    config_ids: dict[int, list[int]] = defaultdict(list)
    for channel, items in by_channel.items():
        try:
            providers = get_providers(channel)
        except Exception as error:  # nothing was sent, so "failed" is certain
            logger.exception("no provider for %s", channel)
            for message, _ in items:
                statuses[message.pk] = _finish(message.pk, S.FAILED, now, detail=f"no provider: {error}")
            continue
        run = ChannelRun(providers, now or timezone.now(), now)
        statuses.update(run.deliver(items))
        sent.extend(run.sent)
        for message_id, config_id in run.config_ids.items():
            config_ids[config_id].append(message_id)
    sent, held = hold_until_seen(sent)  # in-app: sent when the customer first sees it
    statuses.update(held)
    statuses.update(record_sent_many(sent, at=now))
    for config_id, ids in config_ids.items():  # one UPDATE per configured account, not per message
        Message.objects.filter(pk__in=ids).update(provider_config_id=config_id)
    return statuses


def _failed(message_id: int, provider: Provider, error: Exception, now: datetime | None) -> str:
    if isinstance(error, ProviderError):
        # Transient errors fail too for now: retries with backoff are a later issue.
        detail = error.reason if error.permanent else f"transient: {error.reason}"
        return _finish(message_id, S.FAILED, now, detail=detail, provider=provider.name)
    # The request may have left before this: the provider may have sent it.
    logger.error("message %s: %s provider raised %r; marking unknown", message_id, provider.name, error)
    detail = f"provider raised {type(error).__name__}: {error}"
    return _finish(message_id, S.UNKNOWN, now, detail=detail, provider=provider.name)


def _send(message_id: int, provider: Provider, delivery: Delivery, now: datetime | None) -> str:
    """Send one claimed message through one provider (crash recovery's resend)."""
    (outcome,) = _call(provider, [delivery])
    if isinstance(outcome, SendResult):
        sent, held = hold_until_seen([(message_id, provider.name, outcome.provider_message_id)])
        statuses = {**held, **record_sent_many(sent, at=now)}
        return statuses.get(message_id, "")
    return _failed(message_id, provider, outcome, now)


# --- Crash recovery ----------------------------------------------------------------------------


def recover_stranded(
    *,
    now: datetime | None = None,
    queued_older_than: timedelta = timedelta(seconds=30),
    sending_older_than: timedelta = timedelta(minutes=2),
    batch_size: int = RECOVERY_BATCH,
) -> dict[str, int]:
    """Deliver queued messages whose after-commit delivery was lost or whose retry is due;
    settle stale sends.

    Time in a status is measured from ``updated_at``, which every transition sets. Call it
    outside any transaction (a periodic task): each batch is claimed and committed before
    its provider calls. Returns how many messages were delivered, resent, marked unknown.

    What is stale is judged once, as of the sweep's start, so a sweep ends even while other
    workers keep queueing; but each claim is stamped when it is made (without ``now``, the
    clock is read again per batch): a sweep through a long queue takes minutes, and a claim
    stamped with the sweep's start would look stale to a concurrent sweeper before its
    provider call began, which would then settle or resend a send still in progress.
    """
    started = now or timezone.now()

    def clock() -> datetime:
        return now or timezone.now()

    counts = {"delivered": 0, "resent": 0, "unknown": 0}
    while batch := _claim_stale_queued(started - queued_older_than, started, clock(), batch_size):
        try:
            counts["delivered"] += len(_send_claimed_many(batch, clock()))
        except Exception:
            # A broken batch must not stop the sweep: its messages stay sending, and a later
            # sweep settles them like any stale send.
            logger.exception("recovering queued messages %s failed", batch)
    while batch := _claim_stale_sending(started - sending_older_than, at := clock(), batch_size):
        for message_id in batch:
            outcome = _guarded(_recover_sending, message_id, at)
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
def _claim_stale_queued(cutoff: datetime, due_by: datetime, at: datetime, limit: int) -> list[int]:
    """Queued messages whose after-commit delivery was lost, and retries due by ``due_by``."""
    lost_or_due = Q(next_attempt_at__isnull=True, updated_at__lt=cutoff) | Q(next_attempt_at__lte=due_by)
    due = Message.objects.filter(lost_or_due, status=S.QUEUED).order_by("updated_at", "id")
    if connection.features.has_select_for_update_skip_locked:
        due = due.select_for_update(skip_locked=True)
    return claim_many_for_sending(due.values_list("pk", flat=True)[:limit], at=at)


@transaction.atomic
def _claim_stale_sending(cutoff: datetime, now: datetime, limit: int) -> list[int]:
    # In-app messages wait in the inbox as "sending" until seen: not stranded (providers.inapp).
    waiting = _stale(S.SENDING, cutoff).exclude(provider=InAppProvider.name)
    rows = list(waiting.values_list("pk", "updated_at")[:limit])
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
