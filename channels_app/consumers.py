"""Live in-app delivery: ``ws/inbox/<external_id>/?token=<inbox token>``.

On connect the consumer checks the token (closing with 4401 when it is missing, forged or
expired, 4403 when it belongs to another customer, 4404 when there is no such customer),
joins the group ``inbox.<customer id>`` and sends the inbox (``{"type": "inbox"}``),
recording the send of each message shown for the first time. While connected it relays
each message the in-app provider pushes (``{"type": "message"}``), recording its send the
same way: with two tabs open both show it, and the ledger's compare-and-swap lets exactly
one record it. The app may send ``{"type": "read" | "clicked" | "dismissed", "id": <id>}``;
each is answered with ``{"type": "marked", "message": …}`` or ``{"type": "error", …}``.

The close codes need the socket accepted first: a handshake refused before ``accept`` reaches
the browser as a bare HTTP 403 with no reason.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from channels_app.api_inbox import InboxMessageSerializer
from channels_app.inbox import (
    ACTIONS,
    do_mark_inbox_message,
    do_record_seen,
    find_inbox_message,
    inbox_messages,
    unread_count,
)
from channels_app.inbox_tokens import InboxTokenError, check_inbox_token
from channels_app.models import Message
from channels_app.providers.inapp import inbox_group
from customers.models import Customer

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
FIRST_PAGE = 50  # messages sent on connect; the app pages further through the HTTP API


def _data(message: Message) -> dict:
    return dict(InboxMessageSerializer(message).data)


@database_sync_to_async
def _find_customer(external_id: str) -> Customer | None:
    return Customer.objects.filter(external_id=external_id).first()


@database_sync_to_async
def _show_inbox(customer_id: int) -> dict:
    now = timezone.now()
    page = inbox_messages(customer_id, now=now)
    do_record_seen(page.values_list("pk", flat=True)[:FIRST_PAGE], at=now)
    return {
        "type": "inbox",
        "unread": unread_count(customer_id, now=now),
        "messages": [_data(m) for m in page[:FIRST_PAGE]],
    }


@database_sync_to_async
def _show_pushed(customer_id: int, message_id: int) -> dict | None:
    now = timezone.now()
    message = inbox_messages(customer_id, now=now).filter(pk=message_id).first()
    if message is None:  # not this customer's, dismissed or expired meanwhile
        return None
    do_record_seen([message.pk], at=now)
    message.refresh_from_db()
    return {"type": "message", "message": _data(message)}


@database_sync_to_async
def _mark(customer_id: int, public_id: str, action: str) -> dict:
    message = find_inbox_message(customer_id, public_id)
    if message is None:
        return {"type": "error", "id": public_id, "reason": "no such message in this inbox"}
    return {"type": "marked", "action": action, "message": _data(do_mark_inbox_message(message, action))}


class InboxConsumer(AsyncJsonWebsocketConsumer):
    customer_id: int | None = None

    async def connect(self) -> None:
        external_id = self.scope["url_route"]["kwargs"]["external_id"]
        token = (parse_qs(self.scope.get("query_string", b"").decode()).get("token") or [""])[0]
        await self.accept()
        try:
            check_inbox_token(token, external_id)
        except InboxTokenError as error:
            await self.close(code=CLOSE_FORBIDDEN if error.status == 403 else CLOSE_UNAUTHENTICATED)
            return
        customer = await _find_customer(external_id)
        if customer is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.customer_id = customer.pk
        await self.channel_layer.group_add(inbox_group(customer.pk), self.channel_name)
        await self.send_json(await _show_inbox(customer.pk))

    async def disconnect(self, code: int) -> None:
        if self.customer_id is not None:
            await self.channel_layer.group_discard(inbox_group(self.customer_id), self.channel_name)

    async def inbox_message(self, event: dict) -> None:
        """The in-app provider's push (type ``inbox.message``)."""
        if self.customer_id is None:
            return
        frame = await _show_pushed(self.customer_id, int(event["message_id"]))
        if frame is not None:
            await self.send_json(frame)

    @classmethod
    async def decode_json(cls, text_data):
        try:
            return json.loads(text_data)
        except ValueError:  # answered as an error frame, not a crash
            return None

    async def receive_json(self, content, **kwargs) -> None:
        if self.customer_id is None:
            return
        action = content.get("type") if isinstance(content, dict) else None
        public_id = content.get("id") if isinstance(content, dict) else None
        if action not in ACTIONS or not isinstance(public_id, str):
            await self.send_json({"type": "error", "reason": f"expected {{'type': one of {', '.join(ACTIONS)}, 'id': <message id>}}"})
            return
        await self.send_json(await _mark(self.customer_id, public_id, action))
