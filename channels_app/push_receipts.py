"""Push receipts: what the service worker (Web Push) or the app (FCM) reports back.

Push services tell the sender nothing after accepting a message, so the notification's
own code reports it: each push payload carries ``receipt_url`` (tracking.receipt_url, a
signed per-message token), and the code POSTs ``<receipt_url>/<event>/`` when the
notification is shown, clicked or dismissed (static/js/chorus-sw.js does it for Web Push).

Each receipt goes through tracking.do_record_receipt, the path every receipt takes: the
message moves forward only (a late "shown" after a click records its time), a click is an
engagement event once, and journeys waiting on the message wake up. A dismissal says the
notification was shown, then stamps ``dismissed_at`` once. Any number of repeats change
nothing more.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from channels_app.models import Message, MessageStatus
from channels_app.tracking import do_record_receipt
from customers.enums import Channel

S = MessageStatus
# event → the status it is evidence of.
EVENTS: dict[str, MessageStatus] = {
    "delivered": S.DELIVERED,
    "shown": S.DELIVERED,  # on screen: the device has it
    "clicked": S.CLICKED,
    "dismissed": S.DELIVERED,  # seen, then swiped away
}


def do_record_push_receipt(public_id: str, event: str, *, at: datetime | None = None) -> bool:
    """Record one receipt for a push message; False when no push message has that id."""
    if event not in EVENTS:
        raise ValueError(f"event: {event!r} is not one of {', '.join(EVENTS)}")
    at = at or timezone.now()
    with transaction.atomic():
        message_id = Message.objects.filter(public_id=public_id, channel=Channel.PUSH).values_list("pk", flat=True).first()
        if message_id is None:
            return False
        do_record_receipt(message_id, EVENTS[event], at=at, detail=f"push receipt: {event}")
        if event == "dismissed":
            Message.objects.filter(pk=message_id, dismissed_at__isnull=True).update(dismissed_at=at, updated_at=at)
    return True
