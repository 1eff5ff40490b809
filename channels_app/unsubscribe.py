"""One-click unsubscribe (RFC 8058): signed links, the List-Unsubscribe headers, the change.

A marketing email carries ``List-Unsubscribe: <{PUBLIC_URL}/u/<token>/>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. Mail providers POST that URL
(body ``List-Unsubscribe=One-Click``) when the reader presses their "unsubscribe" button;
a GET only shows a confirmation page, so a link scanner that fetches every URL in a mail
unsubscribes nobody.

Two kinds of token, both signed with ``SALT`` and never expiring (an unsubscribe link in
a years-old email must still work):

- the header's token names the message (``{"m": public_id}``): written at send time, when
  the message exists;
- the ``{{ unsubscribe_url }}`` a template prints names the customer, channel, category and
  journey (``{"c", "ch", "cat", "j"}``): templates are rendered before the message row
  exists (orchestrator.engine.steps.arrive_send renders, then dispatch writes the row), so
  the message id is not known yet, and the customer is all an unsubscribe needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from channels_app.models import Message
from channels_app.tracking import record_engagement_event
from customers.consent import do_set_consent
from customers.enums import Category, Channel, ConsentStatus
from customers.models import Customer

SALT = "chorus.unsubscribe"
SOURCE = "one-click unsubscribe"
ONE_CLICK = "List-Unsubscribe=One-Click"
ENGAGEMENT_EVENT = "message_unsubscribed"


class BadToken(Exception):
    """A token that was tampered with, truncated, or names nothing we know."""


@dataclass(frozen=True)
class Target:
    """What one token unsubscribes: a customer from one channel × category."""

    customer: Customer
    channel: str
    category: str
    message: Message | None = None
    journey_id: int | None = None


# --- Tokens and URLs -----------------------------------------------------------------------


def _signer() -> signing.Signer:
    # No timestamp: the links never expire, and one message always gets the same URL.
    return signing.Signer(salt=SALT)


def message_token(public_id: str) -> str:
    return _signer().sign_object({"m": str(public_id)})


def customer_token(customer_id: int, *, channel: str = Channel.EMAIL, category: str = Category.MARKETING,
                   journey_id: int | None = None) -> str:
    payload = {"c": customer_id, "ch": str(channel), "cat": str(category)}
    if journey_id is not None:
        payload["j"] = journey_id
    return _signer().sign_object(payload)


def url_for_token(token: str) -> str:
    return f"{settings.PUBLIC_URL}/u/{token}/"


def message_unsubscribe_url(public_id: str) -> str:
    return url_for_token(message_token(public_id))


def list_unsubscribe_headers(public_id: str, *, mailto: str = "") -> dict[str, str]:
    """The RFC 2369 / RFC 8058 headers for one marketing email (none for transactional)."""
    targets = [f"<{message_unsubscribe_url(public_id)}>"]
    if mailto:
        targets.append(f"<mailto:{mailto}?subject=unsubscribe>")
    return {"List-Unsubscribe": ", ".join(targets), "List-Unsubscribe-Post": ONE_CLICK}


def resolve(token: str) -> Target:
    """The target a token names; BadToken when the signature fails or the row is gone."""
    try:
        payload = _signer().unsign_object(token)
    except signing.BadSignature as error:
        raise BadToken("bad signature") from error
    if not isinstance(payload, dict):
        raise BadToken("not a payload")
    if "m" in payload:
        message = Message.objects.select_related("customer").filter(public_id=payload["m"]).first()
        if message is None:
            raise BadToken("no such message")
        return Target(message.customer, message.channel, message.category, message, message.journey_id)
    customer = Customer.objects.filter(pk=payload.get("c")).first()
    if customer is None or payload.get("ch") not in Channel.values or payload.get("cat") not in Category.values:
        raise BadToken("no such customer")
    return Target(customer, payload["ch"], payload["cat"], None, payload.get("j"))


# --- The change ------------------------------------------------------------------------------


@transaction.atomic
def do_unsubscribe(target: Target, *, at: datetime | None = None) -> bool:
    """Unsubscribe the target's customer; True when consent changed. Idempotent.

    The engagement event (``message_unsubscribed``) is recorded once per message (or per
    customer × journey for a template link), whatever the number of POSTs.
    """
    at = at or timezone.now()
    result = do_set_consent(
        target.customer, target.channel, target.category, ConsentStatus.UNSUBSCRIBED, source=SOURCE, at=at
    )
    key = str(target.message.public_id) if target.message else f"customer:{target.customer.pk}:j:{target.journey_id}"
    record_engagement_event(
        target.customer.pk, ENGAGEMENT_EVENT, key=f"{key}:unsubscribed", at=at,
        properties={
            "message_id": str(target.message.public_id) if target.message else None,
            "channel": target.channel, "category": target.category, "journey_id": target.journey_id,
        },
    )
    return result.changed
