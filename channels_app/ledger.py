"""The message ledger: the one place that writes Message rows and moves their status.

A message is written (queued) before any provider is called, under a unique
idempotency key, so a retried step finds its message instead of sending twice. Every
status change is a conditional UPDATE on the status we read (compare-and-swap), so two
workers, or a worker and a webhook, can never both win the same transition.

Receipts arrive late and out of order (a click before its delivery receipt, a delivery
receipt after the open). Engagement only ever moves forward along
sent → delivered → opened → clicked → converted; a receipt for a step already passed
records its timestamp without moving the status back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Count, DateTimeField, F, QuerySet, Value
from django.db.models.functions import Coalesce, TruncHour
from django.utils import timezone

from channels_app.models import Message, MessageStatus, MessageTransition
from customers.enums import Category, Channel
from customers.hooks import MessageMove, messages_moved

S = MessageStatus

# The lifecycle, as one table: status → statuses it may move to.
ALLOWED_TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    S.QUEUED: frozenset({S.SENDING, S.SUPPRESSED, S.DEFERRED, S.FAILED}),
    S.DEFERRED: frozenset({S.QUEUED, S.SUPPRESSED}),
    # A provider's receipt can outrun the worker's own "sent" write (the webhook lands
    # before the worker commits), so a sending message accepts receipts directly.
    # A transient failure (or a provider's rate limit) puts it back in the queue for later.
    S.SENDING: frozenset({S.QUEUED, S.SENT, S.FAILED, S.UNKNOWN, S.DELIVERED, S.OPENED, S.CLICKED, S.BOUNCED}),
    S.SENT: frozenset({S.DELIVERED, S.OPENED, S.CLICKED, S.BOUNCED, S.FAILED, S.CONVERTED}),
    S.DELIVERED: frozenset({S.OPENED, S.CLICKED, S.BOUNCED, S.CONVERTED}),
    S.OPENED: frozenset({S.CLICKED, S.CONVERTED}),
    S.CLICKED: frozenset({S.CONVERTED}),
    # "Unknown" means the provider may have sent: any provider evidence resolves it.
    # A conversion is not provider evidence, so it cannot resolve it.
    S.UNKNOWN: frozenset({S.SENT, S.DELIVERED, S.OPENED, S.CLICKED, S.BOUNCED, S.FAILED}),
    S.CONVERTED: frozenset(),
    S.FAILED: frozenset(),
    S.BOUNCED: frozenset(),
    S.SUPPRESSED: frozenset(),
}

# Statuses a message may move *into* `to`, derived from the table above.
ALLOWED_FROM: dict[MessageStatus, frozenset[MessageStatus]] = {
    to: frozenset(src for src, targets in ALLOWED_TRANSITIONS.items() if to in targets)
    for to in MessageStatus
}

# Forward-only engagement. A receipt ranked below the current status is "late": its
# timestamp is recorded, the status stays.
ENGAGEMENT_RANK: dict[MessageStatus, int] = {
    S.SENT: 0,
    S.DELIVERED: 1,
    S.OPENED: 2,
    S.CLICKED: 3,
    S.CONVERTED: 4,
}

# A click implies an open: clicking fills opened_at (if still empty) with the click's
# time, since many opens are never reported (images blocked). Delivery is not implied:
# it is the provider's own signal, and a late delivery receipt still records its time.
IMPLIED: dict[MessageStatus, tuple[MessageStatus, ...]] = {
    S.CLICKED: (S.OPENED,),
}

# Statuses whose `detail` is also kept on the message as its error.
ERROR_STATUSES = frozenset({S.FAILED, S.BOUNCED, S.UNKNOWN})

# Statuses of messages that were, will be, or may have been sent: what frequency caps
# and cadence dashboards count. A queued message has passed the governor already.
COUNTED_STATUSES = frozenset(set(MessageStatus) - {S.DEFERRED, S.SUPPRESSED, S.FAILED})


class InvalidMessageRequest(ValueError):
    """A queue request that names an unknown channel or category, or lacks a key."""


class IllegalTransition(Exception):
    def __init__(self, message_id: int, from_status: str, to_status: str):
        self.message_id, self.from_status, self.to_status = message_id, from_status, to_status
        super().__init__(f"message {message_id}: illegal transition {from_status} → {to_status}")


class IdempotencyConflict(Exception):
    """The idempotency key already belongs to a message for another customer or channel."""


@dataclass(frozen=True, kw_only=True)
class QueueRequest:
    customer_id: int
    channel: str
    category: str
    idempotency_key: str
    content: dict = field(default_factory=dict)
    template_name: str = ""
    journey_id: int | None = None
    journey_version_id: int | None = None
    node_id: str = ""
    enrollment_id: int | None = None
    at: dt.datetime | None = None
    detail: str = ""  # why it was queued, when that needs saying (a fallback): its first transition


@dataclass(frozen=True)
class QueueResult:
    message: Message
    created: bool


@dataclass(frozen=True)
class TransitionResult:
    message_id: int
    from_status: str
    to_status: str
    status: str  # the status after the call
    changed: bool  # the status moved
    late: bool = False  # a receipt for a step already passed: timestamps only


@dataclass(frozen=True)
class HourlyCount:
    hour: dt.datetime
    channel: str
    count: int


# --- Queueing ----------------------------------------------------------------------------


def _choice(enum, value: str, field_name: str) -> str:
    if value not in enum.values:
        raise InvalidMessageRequest(
            f"{field_name}: {value!r} is not one of {', '.join(enum.values)}"
        )
    return value


def _validate(request: QueueRequest) -> None:
    _choice(Channel, request.channel, "channel")
    _choice(Category, request.category, "category")
    key = request.idempotency_key
    if not key or not key.strip() or len(key) > 255:
        raise InvalidMessageRequest("idempotency_key: required, at most 255 characters")


def existing_message(request: QueueRequest) -> Message | None:
    """The message already holding this request's key (None if none); a key held for another
    customer or channel raises IdempotencyConflict."""
    message = Message.objects.filter(idempotency_key=request.idempotency_key).first()
    mine = (request.customer_id, request.channel, request.category)
    if message and (message.customer_id, message.channel, message.category) != mine:
        raise IdempotencyConflict(
            f"idempotency_key: {request.idempotency_key!r} already belongs to message {message.pk} "
            f"(customer {message.customer_id}, {message.channel}, {message.category})"
        )
    return message


def do_queue_message(request: QueueRequest) -> QueueResult:
    """Write the message (queued) before any provider is called. Idempotent on the key.

    The unique constraint decides between concurrent inserts of one key: the loser's
    INSERT waits for the winner's commit, fails inside its own transaction (a savepoint
    when the caller has one open, so the caller's transaction survives), and re-reads.
    """
    _validate(request)
    at = request.at or timezone.now()
    try:
        with transaction.atomic():
            message = _message_row(request, "", at=at)
            message.save(force_insert=True)
            MessageTransition.objects.create(
                message=message, from_status="", to_status=S.QUEUED, at=at, detail=request.detail[:500]
            )
    except IntegrityError:
        existing = existing_message(request)
        if existing is None:  # not a duplicate key (e.g. a bad customer id)
            raise
        return QueueResult(message=existing, created=False)
    return QueueResult(message=message, created=True)


def queue_many(entries: list[tuple[QueueRequest, str]]) -> list[Message]:
    """Write many messages at once, each queued, or suppressed when its reason is not "".

    For a caller that already holds the transaction and knows its keys are new (the
    journey engine, whose keys come from committed step numbers): two INSERTs whatever
    the count. A key that exists raises IntegrityError for the whole call; the caller
    then falls back to do_queue_message, which resolves duplicates one by one.
    """
    for request, _ in entries:
        _validate(request)
    messages = [_message_row(request, reason) for request, reason in entries]
    Message.objects.bulk_create(messages)
    transitions = []
    for message, (request, reason) in zip(messages, entries, strict=True):
        at = message.queued_at
        transitions.append(
            MessageTransition(message=message, from_status="", to_status=S.QUEUED, at=at, detail=request.detail[:500])
        )
        if reason:
            transitions.append(
                MessageTransition(message=message, from_status=S.QUEUED, to_status=S.SUPPRESSED, at=at, detail=reason[:500])
            )
    MessageTransition.objects.bulk_create(transitions)
    return messages


def _message_row(request: QueueRequest, reason: str, *, at: dt.datetime | None = None) -> Message:
    """The unsaved row for a request: queued, or suppressed when ``reason`` is not ""."""
    at = at or request.at or timezone.now()
    row = Message(
        customer_id=request.customer_id, channel=request.channel, category=request.category,
        template_name=request.template_name, content=dict(request.content), journey_id=request.journey_id,
        journey_version_id=request.journey_version_id, node_id=request.node_id,
        enrollment_id=request.enrollment_id, idempotency_key=request.idempotency_key,
        status=S.QUEUED, queued_at=at, updated_at=at,
    )
    if reason:
        row.status, row.suppressed_at = S.SUPPRESSED, at
    return row


# --- Transitions -------------------------------------------------------------------------


def _status(value: str) -> MessageStatus:
    if value not in MessageStatus.values:
        raise ValueError(f"to_status: {value!r} is not one of {', '.join(MessageStatus.values)}")
    return MessageStatus(value)


def _is_late(current: str, to: MessageStatus) -> bool:
    if current not in ENGAGEMENT_RANK or to not in ENGAGEMENT_RANK:
        return False
    return ENGAGEMENT_RANK[MessageStatus(current)] > ENGAGEMENT_RANK[to]


def _stamps(to: MessageStatus, at: dt.datetime) -> dict:
    """Set `<status>_at` (and those it implies) only where still empty: first entry wins."""
    stamps = {}
    for status in (to, *IMPLIED.get(to, ())):
        column = f"{status}_at"
        stamps[column] = Coalesce(F(column), Value(at, output_field=DateTimeField()))
    return stamps


def _extras(to, at, detail, provider, provider_message_id) -> dict:
    extras: dict = {"updated_at": at}
    if provider is not None:
        extras["provider"] = provider
    if provider_message_id is not None:
        extras["provider_message_id"] = provider_message_id
    if detail and to in ERROR_STATUSES:
        extras["error"] = detail[:500]
    return extras


@transaction.atomic
def do_transition_message(
    message_id: int,
    to_status: str,
    *,
    at: dt.datetime | None = None,
    detail: str = "",
    provider: str | None = None,
    provider_message_id: str | None = None,
) -> TransitionResult:
    """Move a message along its lifecycle, or record a late receipt. See ALLOWED_TRANSITIONS.

    Reads the status, then updates only if it is still that status; on a lost race it
    reads again (each retry means someone else moved the message forward, so this ends).
    """
    to = _status(to_status)
    at = at or timezone.now()
    extras = _extras(to, at, detail, provider, provider_message_id)
    for _ in range(len(MessageStatus) + 1):
        current = Message.objects.filter(pk=message_id).values_list("status", flat=True).first()
        if current is None:
            raise Message.DoesNotExist(f"message {message_id} does not exist")
        if current == to:
            return TransitionResult(message_id, current, to, current, changed=False)
        late = _is_late(current, to)
        if not late and to not in ALLOWED_TRANSITIONS[MessageStatus(current)]:
            raise IllegalTransition(message_id, current, to)
        values = {**_stamps(to, at), **extras}
        if not late:
            values["status"] = to
        if Message.objects.filter(pk=message_id, status=current).update(**values):
            messages_moved([MessageMove(message_id, current, to, at, late)])  # listeners: settings
            if late:
                return TransitionResult(message_id, current, to, current, changed=False, late=True)
            MessageTransition.objects.create(
                message_id=message_id, from_status=current, to_status=to, at=at, detail=detail[:500]
            )
            return TransitionResult(message_id, current, to, to, changed=True)
    raise RuntimeError(f"message {message_id}: status kept changing under us")  # pragma: no cover


@transaction.atomic
def do_requeue_message(
    message_id: int,
    *,
    next_attempt_at: dt.datetime,
    error: str,
    at: dt.datetime | None = None,
    count_attempt: bool = True,
    provider: str = "",
    provider_config_id: int | None = None,
) -> bool:
    """sending → queued, to be tried again at ``next_attempt_at``; False if the message is
    no longer sending (a receipt or a sweeper moved it on: that wins).

    ``count_attempt``: a failure counts towards the retry limit; waiting for a rate
    limit does not. ``provider``: set when the attempt may have reached that provider, so
    the retry goes there only (see Message.provider_config_id).
    """
    at = at or timezone.now()
    values: dict = {
        "status": S.QUEUED, "next_attempt_at": next_attempt_at, "last_error": error[:500], "updated_at": at,
        "provider": provider, "provider_config_id": provider_config_id,
    }
    if count_attempt:
        values["attempts"] = F("attempts") + 1
    moved = Message.objects.filter(pk=message_id, status=S.SENDING).update(**values)
    if moved:
        MessageTransition.objects.create(
            message_id=message_id, from_status=S.SENDING, to_status=S.QUEUED, at=at, detail=error[:500]
        )
    return bool(moved)


@transaction.atomic
def claim_for_sending(message_id: int, *, at: dt.datetime | None = None) -> bool:
    """queued → sending, the claim a worker makes before calling a provider.

    One conditional UPDATE: of any number of concurrent callers exactly one gets True.
    """
    at = at or timezone.now()
    claimed = Message.objects.filter(pk=message_id, status=S.QUEUED).update(
        status=S.SENDING, updated_at=at, **_stamps(S.SENDING, at)
    )
    if claimed:
        MessageTransition.objects.create(message_id=message_id, from_status=S.QUEUED, to_status=S.SENDING, at=at)
    return bool(claimed)


# --- Queries -----------------------------------------------------------------------------


def messages_for_customer_since(
    customer_id: int, since: dt.datetime, *, statuses: Iterable[str] | None = None
) -> QuerySet[Message]:
    """A customer's messages queued at or after `since`, newest first.

    Served by message_customer_time_idx (customer, -queued_at). Pass
    ``statuses=COUNTED_STATUSES`` to count what frequency caps count.
    """
    qs = Message.objects.filter(customer_id=customer_id, queued_at__gte=since)
    if statuses is not None:
        qs = qs.filter(status__in=list(statuses))
    return qs.order_by("-queued_at", "-id")


def counts_by_channel_per_hour(
    since: dt.datetime, until: dt.datetime, *, channels: Iterable[str] | None = None
) -> list[HourlyCount]:
    """Messages queued per channel per UTC hour in [since, until), oldest hour first.

    Filtering on the channel list lets PostgreSQL use message_channel_time_idx
    (channel, queued_at) for the time range instead of scanning the table.
    """
    channel_list = list(channels) if channels is not None else list(Channel.values)
    rows = (
        Message.objects.filter(channel__in=channel_list, queued_at__gte=since, queued_at__lt=until)
        .annotate(hour=TruncHour("queued_at", tzinfo=dt.UTC))
        .values("hour", "channel")
        .annotate(count=Count("id"))
        .order_by("hour", "channel")
    )
    return [HourlyCount(hour=r["hour"], channel=r["channel"], count=r["count"]) for r in rows]


# --- Batches of transitions ---------------------------------------------------------------
#
# The batch forms of claim_for_sending and of "sending → sent": a few statements per batch
# instead of a few per message, with the same compare-and-swap guarantees. Raw SQL because
# the ORM's update() cannot say which rows it changed, and the claim must know exactly that.


# The default database's connection, without importing django.db.connection up top.
_db = transaction.get_connection


def _quoted(model, *names: str) -> list[str]:
    qn = _db().ops.quote_name
    return [qn(model._meta.db_table), *(qn(model._meta.get_field(n).column) for n in names)]


def _can_update_returning() -> bool:
    db = _db()
    return db.vendor == "postgresql" or (db.vendor == "sqlite" and db.Database.sqlite_version_info >= (3, 35))


@transaction.atomic
def claim_many_for_sending(message_ids: Iterable[int], *, at: dt.datetime | None = None) -> list[int]:
    """queued → sending for every listed message still queued; returns the ids claimed.

    One conditional UPDATE … RETURNING and one INSERT of their transitions, in one
    transaction. Of any number of concurrent callers each id is claimed by exactly one: on
    PostgreSQL the rows are locked in id order first (so overlapping batches wait for each
    other instead of deadlocking) and the status is checked again after any wait.
    """
    ids = sorted(set(message_ids))
    if not ids:
        return []
    at = at or timezone.now()
    claimed = _claim_rows(ids, at) if _can_update_returning() else [
        pk for pk in ids
        if Message.objects.filter(pk=pk, status=S.QUEUED).update(
            status=S.SENDING, updated_at=at, **_stamps(S.SENDING, at)
        )
    ]
    MessageTransition.objects.bulk_create(
        MessageTransition(message_id=pk, from_status=S.QUEUED, to_status=S.SENDING, at=at) for pk in claimed
    )
    return sorted(claimed)


def _claim_rows(ids: list[int], at: dt.datetime) -> list[int]:
    table, pk, status, sending_at, updated_at = _quoted(Message, "id", "status", "sending_at", "updated_at")
    stamp = _db().ops.adapt_datetimefield_value(at)
    sets = f"{status} = %s, {sending_at} = COALESCE({sending_at}, %s), {updated_at} = %s"
    if _db().vendor == "postgresql":
        sql = (
            f"WITH locked AS (SELECT {pk} FROM {table} WHERE {pk} = ANY(%s) AND {status} = %s"
            f" ORDER BY {pk} FOR UPDATE)"
            f" UPDATE {table} SET {sets} FROM locked"
            f" WHERE {table}.{pk} = locked.{pk} AND {table}.{status} = %s RETURNING {table}.{pk}"
        )
        params = [ids, S.QUEUED, S.SENDING, stamp, stamp, S.QUEUED]
    else:  # SQLite: one writer at a time, so the conditional UPDATE alone decides
        marks = ", ".join(["%s"] * len(ids))
        sql = f"UPDATE {table} SET {sets} WHERE {pk} IN ({marks}) AND {status} = %s RETURNING {pk}"
        params = [S.SENDING, stamp, stamp, *ids, S.QUEUED]
    with _db().cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


@transaction.atomic
def record_sent_many(
    results: Iterable[tuple[int, str, str]], *, at: dt.datetime | None = None
) -> dict[int, str]:
    """sending → sent for (message_id, provider, provider_message_id); returns final statuses.

    Messages still ``sending`` (the usual case) move in one UPDATE, and their transitions
    are written in one INSERT. A message something else moved on meanwhile goes through
    do_transition_message, exactly as a single send would: an ``unknown`` one becomes
    sent; one a receipt already took further (delivered, opened…) keeps its status and
    gains sent_at and the provider's id (a late "sent"); a bounced or failed one, or one
    already sent (a recovered resend), is left as it is. A message deleted meanwhile is
    left out of the answer.
    """
    rows = {pk: (provider, provider_message_id) for pk, provider, provider_message_id in results}
    if not rows:
        return {}
    at = at or timezone.now()
    moved = _mark_sent_rows(rows, at)
    MessageTransition.objects.bulk_create(
        MessageTransition(message_id=pk, from_status=S.SENDING, to_status=S.SENT, at=at) for pk in sorted(moved)
    )
    statuses = dict.fromkeys(moved, S.SENT.value)
    rare = sorted(rows.keys() - moved)
    if rare:  # locked before the listeners take their locks (dashboards.rollups), never after
        list(Message.objects.select_for_update().filter(pk__in=rare).order_by("pk").values_list("pk", flat=True))
    messages_moved([MessageMove(pk, S.SENDING, S.SENT, at) for pk in sorted(moved)])
    for pk in rare:  # rare: a receipt or a sweeper got there first
        provider, provider_message_id = rows[pk]
        try:
            statuses[pk] = do_transition_message(
                pk, S.SENT, at=at, provider=provider, provider_message_id=provider_message_id
            ).status
        except IllegalTransition as error:
            statuses[pk] = error.from_status
        except Message.DoesNotExist:
            continue
    return statuses


def _mark_sent_rows(rows: dict[int, tuple[str, str]], at: dt.datetime) -> set[int]:
    if _db().vendor != "postgresql":  # one conditional UPDATE per message
        return {
            pk for pk, (provider, provider_message_id) in rows.items()
            if Message.objects.filter(pk=pk, status=S.SENDING).update(
                status=S.SENT, provider=provider, provider_message_id=provider_message_id,
                updated_at=at, **_stamps(S.SENT, at),
            )
        }
    table, pk, status, sent_at, updated_at, provider, provider_id = _quoted(
        Message, "id", "status", "sent_at", "updated_at", "provider", "provider_message_id"
    )
    ids = sorted(rows)
    values = ", ".join(["(%s::bigint, %s, %s)"] * len(ids))
    sql = (
        f"WITH locked AS (SELECT {pk} FROM {table} WHERE {pk} = ANY(%s) AND {status} = %s"
        f" ORDER BY {pk} FOR UPDATE),"
        f" v (id, provider, provider_message_id) AS (VALUES {values})"
        f" UPDATE {table} SET {status} = %s, {sent_at} = COALESCE({sent_at}, %s), {updated_at} = %s,"
        f" {provider} = v.provider, {provider_id} = v.provider_message_id"
        f" FROM locked, v WHERE {table}.{pk} = locked.{pk} AND v.id = locked.{pk}"
        f" AND {table}.{status} = %s RETURNING {table}.{pk}"
    )
    params = [ids, S.SENDING, *(x for i in ids for x in (i, *rows[i])), S.SENT, at, at, S.SENDING]
    with _db().cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}
