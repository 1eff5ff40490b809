"""The ledger read into the models' plain values: the one module of this package that
imports Django models. The estimators never see a row, only ``Send`` values and times.

- ``send_from_message``: a Message row (or anything with its attributes) as a ``Send``.
- ``customer_sends``: a customer's marketing messages that left us since a moment.
- ``activity_times``: when the customer was around: their message opens and clicks, and
  their sessions and purchases from the event stream.
"""

from __future__ import annotations

import datetime as dt

from channels_app.models import Message, MessageStatus
from customers.enums import Category
from customers.models import Event
from orchestrator.intelligence.affinity import Send

S = MessageStatus
# Statuses of messages that reached the customer (or left us and were not refused):
# each is one trial. Bounced, failed, suppressed, deferred, queued never reached anyone;
# "unknown" may or may not have, so it is left out rather than counted as ignored.
EXPOSED_STATUSES = frozenset({S.SENT, S.DELIVERED, S.OPENED, S.CLICKED, S.CONVERTED})
# Events the customer starts themselves: when they are around, whatever we sent.
# ("App Opened" is the demo's name, "Application Opened" the Segment spec's.)
ACTIVITY_EVENTS = ("Session Started", "App Opened", "Application Opened", "Order Completed")
_MESSAGE_FIELDS = (
    "channel",
    "queued_at",
    "sent_at",
    "delivered_at",
    "opened_at",
    "clicked_at",
    "converted_at",
)


def send_from_message(message: Message) -> Send:
    """A row as a Send. A receipt can outrun the "sent" write (see channels_app.ledger),
    so the send time falls back to the delivery and then the queue time."""
    sent_at = message.sent_at or message.delivered_at or message.queued_at
    return Send(
        channel=message.channel,
        sent_at=sent_at,
        opened_at=message.opened_at,
        clicked_at=message.clicked_at,
        converted_at=message.converted_at,
    )


def customer_sends(customer_id: int, *, since: dt.datetime) -> list[Send]:
    """The customer's marketing messages queued since `since` that reached them, oldest first.

    Transactional messages are left out: an order confirmation is opened because it is
    one, not because of the channel.
    """
    rows = (
        Message.objects.filter(
            customer_id=customer_id,
            category=Category.MARKETING,
            status__in=list(EXPOSED_STATUSES),
            queued_at__gte=since,
        )
        .only(*_MESSAGE_FIELDS)
        .order_by("queued_at", "id")
    )
    return [send_from_message(row) for row in rows]


def activity_times(customer_id: int, *, since: dt.datetime) -> list[dt.datetime]:
    """Every moment since `since` the customer showed they were around, oldest first."""
    messages = Message.objects.filter(customer_id=customer_id, queued_at__gte=since).values_list(
        "opened_at", "clicked_at"
    )
    # One moment per message: a click fills opened_at too (channels_app.ledger.IMPLIED).
    engaged = [min(at for at in pair if at is not None) for pair in messages if any(pair)]
    events = Event.objects.filter(
        customer_id=customer_id, name__in=ACTIVITY_EVENTS, occurred_at__gte=since
    )
    return sorted(engaged + list(events.values_list("occurred_at", flat=True)))
