"""The in-app provider: puts a message in the customer's inbox and tells any open app.

An in-app message is sent when the customer first sees it, not when it is queued: a
message for the "next visit" may wait days for the app to open. So ``send()`` only makes
the message available (the inbox lists it from the ledger) and pushes a notice to the
channel-layer group ``inbox.<customer id>``, where every open WebSocket of that customer
listens. Delivery leaves the message ``sending`` (``sent_when_seen``); the inbox API or the
WebSocket that first shows it records ``sent`` (channels_app.inbox.do_record_seen).

Whether an app is open cannot be known cheaply across processes, so the push is always
made and is harmless when nobody listens. It runs outside any transaction (delivery calls
providers after commit), and a failed push loses nothing: the next fetch shows the message.
With the in-memory channel layer the push reaches only sockets in this process; set
``REDIS_URL`` for a worker's pushes to reach the web process.

Not the default: the development outbox stays the in-app default so the outbox page keeps
showing in-app messages. Enable it with ``CHORUS_PROVIDERS["in_app"] = "inapp"`` or with a
provider configuration in the admin (channel In-app, provider ``inapp``; no secrets).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from channels_app.models import Message
from channels_app.providers.base import Delivery, Provider, SendResult

logger = logging.getLogger(__name__)

PUSH_TYPE = "inbox.message"  # the consumer's inbox_message handler


def inbox_group(customer_id: int) -> str:
    return f"inbox.{customer_id}"


class InAppProvider(Provider):
    """No network call of its own and no secrets; the inbox is the ledger itself."""

    name = "inapp"
    channels = frozenset({"in_app"})
    option_fields = ()
    secret_fields = ()
    # Posting twice shows the message once (the inbox lists ledger rows), so a send
    # interrupted by a crash may be made again.
    honours_idempotency_key = True
    # Delivery leaves the message "sending" until the customer sees it.
    sent_when_seen = True

    def send(self, delivery: Delivery) -> SendResult:
        return self.send_batch([delivery])[0]  # type: ignore[return-value]

    def send_batch(self, deliveries: Sequence[Delivery]) -> list[SendResult | Exception]:
        owners = dict(
            Message.objects.filter(pk__in=[d.message_id for d in deliveries]).values_list("pk", "customer_id")
        )
        for delivery in deliveries:
            if delivery.message_id in owners:
                transaction.on_commit(lambda d=delivery: push(owners[d.message_id], d.message_id), robust=True)
        return [SendResult(provider_message_id=f"inbox-{d.public_id}") for d in deliveries]


def push(customer_id: int, message_id: int) -> None:
    """Tell the customer's open apps that a message waits. Never raises: the inbox has it anyway."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(inbox_group(customer_id), {"type": PUSH_TYPE, "message_id": message_id})
    except Exception:
        logger.exception("in-app push for message %s failed; the next inbox fetch shows it", message_id)


def hold_until_seen(sent: list[tuple[int, str, str]]) -> tuple[list[tuple[int, str, str]], dict[int, str]]:
    """Split delivery's "sent" list: (what to record as sent now, what stays sending until seen).

    Messages the in-app provider posted stay ``sending`` with the provider named on the row,
    so crash recovery (which resends stale ``sending`` messages) knows to leave them to the
    inbox. One UPDATE, whatever the count.
    """
    held = [pk for pk, name, _ in sent if name == InAppProvider.name]
    if not held:
        return sent, {}
    Message.objects.filter(pk__in=held, status="sending").update(provider=InAppProvider.name)
    return [row for row in sent if row[1] != InAppProvider.name], dict.fromkeys(held, "sending")
