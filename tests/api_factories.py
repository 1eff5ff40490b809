"""Small factories for the API tests: plain ORM calls with sensible defaults."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from channels_app.models import Message, MessageTransition
from customers.models import Consent, ContactPoint, Customer, Event

_seq = itertools.count(1)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def customer(external_id: str | None = None, **fields) -> Customer:
    n = next(_seq)
    fields.setdefault("email", f"person{n}@example.com")
    fields.setdefault("last_seen_at", T0)
    fields.setdefault("first_seen_at", T0 - timedelta(days=30))
    return Customer.objects.create(external_id=external_id or f"user-{n}", **fields)


def contact_point(owner: Customer, channel: str, address: str, **fields) -> ContactPoint:
    return ContactPoint.objects.create(customer=owner, channel=channel, address=address, **fields)


def consent(owner: Customer, channel: str, category: str, status: str, source: str = "test") -> Consent:
    return Consent.objects.create(customer=owner, channel=channel, category=category, status=status, source=source)


def opted_in(owner: Customer, *channels: str, category: str = "marketing") -> Customer:
    """The customer opted in on these channels (all four when none are named): marketing
    on email, SMS and push goes only to people who did."""
    Consent.objects.bulk_create(
        Consent(customer=owner, channel=channel, category=category, status="opted_in", source="test")
        for channel in channels or ("email", "sms", "push", "in_app")
    )
    return owner


def event(owner: Customer, name: str = "Viewed Product", at: datetime = T0, **fields) -> Event:
    fields.setdefault("source", "test")
    return Event.objects.create(customer=owner, name=name, occurred_at=at, **fields)


def message(owner: Customer, channel: str = "email", status: str = "sent", at: datetime = T0, **fields) -> Message:
    fields.setdefault("category", "marketing")
    fields.setdefault("content", {"subject": "Hello"})
    msg = Message.objects.create(
        customer=owner, channel=channel, status=status, queued_at=at,
        idempotency_key=f"test:{uuid.uuid4()}", **fields,
    )
    MessageTransition.objects.create(message=msg, from_status="", to_status="queued", at=at)
    if status != "queued":
        MessageTransition.objects.create(
            message=msg, from_status="queued", to_status=status, at=at + timedelta(seconds=5), detail="test"
        )
    return msg
