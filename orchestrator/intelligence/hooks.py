"""The explicit hooks that keep the stored models current (no signals).

- ``on_messages_moved``: the ledger's listener (settings.CHORUS_MESSAGE_LISTENERS), called
  inside the transaction that moved the messages, so the models move with the ledger or not
  at all. A marketing message counts as a send
  when it first leaves ``sending``/``unknown`` for a status that reached the customer; as
  engaged at its first click or conversion; as activity at its first open or click.
- ``on_events_stored``: the ingestion listener (settings.CHORUS_EVENT_LISTENERS): sessions,
  app opens and purchases say when the customer is around.

The rules mirror what ``recompute`` reads from scratch (``intelligence.ledger``), so the
incremental state equals the rebuilt one (tests/test_intelligence_wiring.py).
"""

from __future__ import annotations

from channels_app.models import Message, MessageStatus
from customers.enums import Category
from customers.hooks import MessageMove, StoredEvents
from customers.models import Customer, Event
from orchestrator.intelligence import store
from orchestrator.intelligence.activity import add_activity, increments
from orchestrator.intelligence.ledger import ACTIVITY_EVENTS, EXPOSED_STATUSES, send_from_message

S = MessageStatus
LEAVING = frozenset({S.SENDING, S.UNKNOWN})
ENGAGED = frozenset({S.CLICKED, S.CONVERTED})
NOTICED = frozenset({S.OPENED, S.CLICKED})
UNSENT = frozenset({S.BOUNCED, S.FAILED})
_FIELDS = ("id", "customer_id", "channel", "category", "queued_at", "sent_at", "delivered_at",
           "opened_at", "clicked_at", "converted_at")


def on_messages_moved(moves: list[MessageMove]) -> None:
    """Judged on the statuses alone first: a move that changes nothing here costs no query."""
    relevant = [m for m in moves if _matters(m)]
    if not relevant:
        return
    messages = Message.objects.only(*_FIELDS).in_bulk([m.message_id for m in relevant])
    marketing = {pk for pk, m in messages.items() if m.category == Category.MARKETING}
    sends = [m for m in relevant if m.message_id in marketing and _sent(m)]
    if sends:  # the delivery path moves whole batches to sent: a few queries per batch
        store.record_sends([_send_of(messages[m.message_id]) for m in sends])
    rest = [m for m in relevant if m.message_id in messages and _other(m)]
    if rest:
        ids = {messages[m.message_id].customer_id for m in rest}
        zones = dict(Customer.objects.filter(pk__in=ids).values_list("pk", "timezone"))
        for move in rest:
            message = messages[move.message_id]
            _apply(move, message, zones.get(message.customer_id, ""), marketing=message.category == Category.MARKETING)


def _sent(move: MessageMove) -> bool:
    return not move.late and move.from_status in LEAVING and move.to_status in EXPOSED_STATUSES


def _other(move: MessageMove) -> bool:
    """What else a move may mean besides a send (a receipt that outran "sent" is also a click)."""
    to, before = move.to_status, move.from_status
    unsent = not move.late and before in EXPOSED_STATUSES and to in UNSENT
    return unsent or (to in ENGAGED and before not in ENGAGED) or (to in NOTICED and before not in NOTICED)


def _matters(move: MessageMove) -> bool:
    return _sent(move) or _other(move)


def _send_of(message: Message) -> tuple[int, str, object]:
    return message.customer_id, message.channel, send_from_message(message).sent_at


def _apply(move: MessageMove, message: Message, tz: str, *, marketing: bool) -> None:
    """Everything but the send itself (recorded in a batch before this runs)."""
    to, before = move.to_status, move.from_status
    if marketing:
        send = send_from_message(message)
        if to in ENGAGED and before not in ENGAGED and send.engaged_at == move.at:
            store.record_engagement(message.customer_id, message.channel, sent_at=send.sent_at, at=move.at)
        if not move.late and before in EXPOSED_STATUSES and to in UNSENT:
            store.record_unsend(message.customer_id, message.channel, send.sent_at, move.at)
    if to in NOTICED and before not in NOTICED and _first_noticed(message) == move.at:
        store.record_activity(message.customer_id, [move.at], tz)


def _first_noticed(message: Message):
    times = [t for t in (message.opened_at, message.clicked_at) if t is not None]
    return min(times) if times else None


def on_events_stored(batch: StoredEvents) -> None:
    """Two queries whatever the batch: the events with their customers' zones, one upsert."""
    names = batch.names & set(ACTIVITY_EVENTS)
    if not names:
        return
    rows = Event.objects.filter(
        source=batch.source, received_at=batch.received_at, customer_id__in=batch.customer_ids, name__in=names
    ).values_list("customer_id", "occurred_at", "customer__timezone")
    add_activity(increments(rows))
