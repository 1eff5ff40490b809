"""What every receipt webhook does once the request is verified.

``record_provider_event`` is the idempotency: the unique (provider, event_id) lets
exactly one of any number of identical deliveries through. ``apply_receipt`` hands the
receipt to ``tracking.do_record_receipt``, the one path our own tracking uses too: it moves
the message along the ledger, which never moves a status backwards (a late "delivered"
after a click only records its time), records an open or click as an engagement event,
and, after commit, tells the engagement listeners so a journey waiting on it wakes up.

Engagement listeners are dotted paths (``settings.CHORUS_ENGAGEMENT_LISTENERS``), the
pattern of customers.hooks: channels_app must not import the orchestrator.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction

from channels_app.ledger import TransitionResult
from channels_app.models import Message, ProviderEvent
from channels_app.tracking import do_record_receipt

logger = logging.getLogger(__name__)



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
    "failed" receipt for a message already delivered: the earlier evidence stands). An open
    or click also counts as engagement: tracking.do_record_receipt, the one receipt path."""
    return do_record_receipt(message.pk, status, at=at, detail=detail, provider=provider,
                             provider_message_id=provider_message_id)
