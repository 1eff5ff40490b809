"""What every receipt webhook does once the request is verified.

``record_provider_event`` is the idempotency: the unique (provider, event_id) lets
exactly one of any number of identical deliveries through. ``apply_receipt`` moves the
message along the ledger, which never moves a status backwards (a late "delivered"
after a click only records its time), and, after commit, tells the engagement listeners
so a journey waiting on "opened"/"clicked" wakes up.

Engagement listeners are dotted paths (``settings.CHORUS_ENGAGEMENT_LISTENERS``), the
pattern of customers.hooks: channels_app must not import the orchestrator.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from channels_app.ledger import IllegalTransition, TransitionResult, do_transition_message
from channels_app.models import Message, MessageStatus, ProviderEvent
from channels_app.tracking import notify_engagement

logger = logging.getLogger(__name__)

S = MessageStatus
ENGAGEMENT_STATUSES = frozenset({S.DELIVERED, S.OPENED, S.CLICKED})
# Until settings name them, the journey engine's: it wakes waits on a message's engagement.


def record_provider_event(provider: str, event_id: str, kind: str, message_id: int | None = None) -> bool:
    """True when this event is new; False for a duplicate (then the caller changes nothing).

    A savepoint keeps the caller's transaction usable after the unique constraint refuses."""
    try:
        with transaction.atomic():
            ProviderEvent.objects.create(
                provider=provider, event_id=event_id[:255], kind=kind[:32], message_id=message_id
            )
    except IntegrityError:
        return False
    return True


def apply_receipt(
    message: Message, status: str, *, at: datetime | None = None, detail: str = "",
    provider: str | None = None, provider_message_id: str | None = None,
) -> TransitionResult | None:
    """Move the message to ``status`` if the lifecycle allows; None when it does not (e.g. a
    "failed" receipt for a message already delivered: the earlier evidence stands)."""
    try:
        result = do_transition_message(
            message.pk, status, at=at or timezone.now(), detail=detail,
            provider=provider, provider_message_id=provider_message_id,
        )
    except IllegalTransition as error:
        logger.info("receipt ignored: %s", error)
        return None
    if status in ENGAGEMENT_STATUSES:
        transaction.on_commit(lambda: notify_engagement(message.pk))
    return result



