"""The in-app inbox: what a customer's inbox shows, and what the customer does with it.

The inbox is a view of the ledger: a customer's in-app messages that were handed to the
inbox (status ``sending`` with the in-app provider, or further), not dismissed, not
expired (``content["expires_at"]``, an ISO 8601 UTC time such as ``2026-12-31T23:00:00Z``).

When is an in-app message sent? When the customer first sees it. The in-app provider
leaves a message ``sending`` ("on its way to the inbox": the app is closed, or open and
about to be told); the first inbox fetch or WebSocket frame that shows it moves it
``sending → sent`` with ``sent_at`` = that moment. The move is the ledger's
compare-and-swap, so with two tabs open exactly one of them records the send.

Read and clicked go through ``tracking.do_record_engagement`` like a tracked email open or
click (forward only, one engagement event, listeners woken after commit); dismissed sets
``dismissed_at`` once. All three are idempotent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from channels_app.ledger import do_transition_message
from channels_app.models import Message, MessageStatus
from channels_app.tracking import do_record_engagement
from customers.enums import Channel

S = MessageStatus
VISIBLE = (S.SENDING, S.SENT, S.DELIVERED, S.OPENED, S.CLICKED, S.CONVERTED)
SEEN_DETAIL = "shown in the in-app inbox"
ACTIONS = ("read", "clicked", "dismissed")
ENGAGEMENT = {"read": S.OPENED, "clicked": S.CLICKED}


def _utc_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def inbox_messages(customer_id: int, *, now: dt.datetime | None = None) -> QuerySet[Message]:
    """The customer's inbox, newest first (served by message_customer_time_idx)."""
    now = now or timezone.now()
    unexpired = Q(content__expires_at__isnull=True) | Q(content__expires_at__gt=_utc_text(now))
    return (
        Message.objects.filter(customer_id=customer_id, channel=Channel.IN_APP, status__in=VISIBLE,
                               dismissed_at__isnull=True)
        .filter(unexpired)
        .order_by("-queued_at", "-id")
    )


def unread_count(customer_id: int, *, now: dt.datetime | None = None) -> int:
    return inbox_messages(customer_id, now=now).filter(opened_at__isnull=True).count()


def do_record_seen(message_ids: Iterable[int], *, at: dt.datetime | None = None) -> list[int]:
    """``sending → sent`` at ``at`` for each message still waiting to be seen; the ids moved now.

    Each move is a compare-and-swap: a message another tab (or request) showed first is
    left as that one recorded it.
    """
    at = at or timezone.now()
    waiting = Message.objects.filter(pk__in=list(message_ids), status=S.SENDING).values_list("pk", flat=True)
    moved = []
    for pk in sorted(waiting):
        if do_transition_message(pk, S.SENT, at=at, detail=SEEN_DETAIL).changed:
            moved.append(pk)
    return moved


def find_inbox_message(customer_id: int, public_id: str) -> Message | None:
    """One of the customer's in-app messages, dismissed or not; None when it is not theirs."""
    try:
        uuid.UUID(public_id)
    except ValueError:
        return None
    return Message.objects.filter(customer_id=customer_id, channel=Channel.IN_APP, public_id=public_id).first()


def do_mark_inbox_message(message: Message, action: str, *, at: dt.datetime | None = None) -> Message:
    """Read, clicked or dismissed: each implies the customer saw it, so it is sent first."""
    if action not in ACTIONS:
        raise ValueError(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
    at = at or timezone.now()
    with transaction.atomic():
        do_record_seen([message.pk], at=at)
        if action == "dismissed":
            Message.objects.filter(pk=message.pk, dismissed_at__isnull=True).update(dismissed_at=at, updated_at=at)
        else:
            do_record_engagement(str(message.public_id), ENGAGEMENT[action], at=at, detail="in-app inbox")
    return Message.objects.get(pk=message.pk)
