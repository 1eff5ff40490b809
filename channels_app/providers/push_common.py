"""What the push adapters share: finding the subscription behind a Delivery, disabling a
dead one, the notification's fields, and reading HTTP failures as ProviderErrors.

A push Delivery carries only the address (a Web Push endpoint or an FCM token): the
subscription's keys and platform stay on the ContactPoint. Rather than widen Delivery for
one channel, an adapter looks the ContactPoint up by the message's customer and that
address (unique together): one query per batch.
"""

from __future__ import annotations

import email.utils
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import requests
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone
from urllib3.exceptions import NewConnectionError

from channels_app.providers.base import Delivery, Provider, ProviderError, SendResult
from channels_app.tracking import receipt_url, track_links
from customers.enums import Channel
from customers.models import ContactPoint


@dataclass(frozen=True)
class Subscription:
    contact_point_id: int
    address: str
    platform: str
    keys: Mapping[str, str]
    enabled: bool


class PushAdapter(Provider):
    """A push provider: finds each delivery's subscription, then ``send_to`` it."""

    channels = frozenset({Channel.PUSH.value})
    platforms: ClassVar[frozenset[str]] = frozenset()

    def send(self, delivery: Delivery) -> SendResult:
        (outcome,) = self.send_batch([delivery])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def send_batch(self, deliveries: Sequence[Delivery]) -> list[SendResult | Exception]:
        try:
            found = load_subscriptions(deliveries)
        except DatabaseError as error:  # nothing was sent yet: transient, not "unknown"
            return [ProviderError(f"reading push subscriptions: {error}", permanent=False) for _ in deliveries]
        outcomes: list[SendResult | Exception] = []
        for delivery in deliveries:
            try:
                outcomes.append(self._send_found(delivery, found))
            except Exception as error:  # each outcome is judged by the caller
                outcomes.append(error)
        return outcomes

    def _send_found(self, delivery: Delivery, found: Mapping[int, Subscription]) -> SendResult:
        subscription = found.get(delivery.message_id)
        if subscription is None or not subscription.enabled:
            raise ProviderError("push subscription removed or disabled before sending", permanent=True)
        if subscription.platform not in self.platforms:
            raise ProviderError(
                f"{self.name} sends to {'/'.join(sorted(self.platforms))} subscriptions; "
                f"this one is {subscription.platform or 'of no platform'}",
                permanent=True,
            )
        return self.send_to(delivery, subscription)

    @abstractmethod
    def send_to(self, delivery: Delivery, subscription: Subscription) -> SendResult:
        """Send once to a subscription of one of ``platforms``; raise ProviderError otherwise."""


def load_subscriptions(deliveries: Sequence[Delivery]) -> dict[int, Subscription]:
    """message id -> the push ContactPoint of that message's customer at ``delivery.to``."""
    wanted = {d.message_id: d.to for d in deliveries}
    rows = (
        ContactPoint.objects.filter(
            channel=Channel.PUSH,
            address__in=set(wanted.values()),
            customer__messages__id__in=list(wanted),
        )
        .annotate(message_id=F("customer__messages__id"))
        .values("message_id", "id", "address", "platform", "keys", "enabled")
    )
    return {
        row["message_id"]: Subscription(row["id"], row["address"], row["platform"], row["keys"] or {}, row["enabled"])
        for row in rows
        if wanted[row["message_id"]] == row["address"]
    }


def do_disable_subscription(subscription: Subscription, reason: str) -> bool:
    """Stop sending to a subscription the push service says is gone; True if this call did it.

    Conditional on ``enabled`` so concurrent senders record the failure once. Reachability
    then picks the customer's next enabled subscription, or none (and the send node falls
    back to its next channel).
    """
    updated = ContactPoint.objects.filter(pk=subscription.contact_point_id, enabled=True).update(
        enabled=False, last_failure_at=timezone.now(), last_failure_reason=reason[:255]
    )
    return bool(updated)


def gone(subscription: Subscription, status: int, detail: str) -> ProviderError:
    """Disable the subscription and say so in the error, which the message records."""
    reason = f"push subscription gone ({status} {detail}); disabled"
    do_disable_subscription(subscription, reason)
    return ProviderError(reason, permanent=True)


def notification(delivery: Delivery) -> dict[str, str]:
    """The notification's fields from the message content; empty optional ones left out.

    The url is a click-tracking link: push services report no clicks, and a service worker
    or app that opens ``url`` reports one without any code of its own. ``receipt_url`` is
    for the rest (shown, dismissed): push services report no deliveries either."""
    content = delivery.content
    fields = {
        "title": str(content.get("title", "")),
        "body": str(content.get("body", "")),
        # Opening the notification goes through our signed redirect, which records the click.
        "url": track_links(str(content.get("url", "") or "").strip(), delivery.public_id),
        "icon": str(content.get("icon", "") or ""),
        "tag": str(content.get("tag", "") or ""),
        "message_id": delivery.public_id,
        # Where the notification's code posts "shown", "clicked", "dismissed" (channels_app.push_receipts).
        "receipt_url": receipt_url(delivery.public_id),
    }
    return {key: value for key, value in fields.items() if value or key in ("title", "body", "message_id")}


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(status: int, headers: Mapping[str, str], detail: str) -> ProviderError:
    """The usual reading of an HTTP failure: 429 and 5xx may pass, other 4xx will not."""
    if status == 429 or status >= 500:
        return ProviderError(f"{status} {detail}", permanent=False, retry_after=retry_after(headers))
    return ProviderError(f"{status} {detail}", permanent=True)


def transport_error(error: requests.RequestException) -> ProviderError:
    """A failure with no HTTP answer. Before the request left (no connection): plainly
    transient. After (a read timeout, a dropped connection): it may have been delivered."""
    if isinstance(error, requests.ConnectTimeout) or _refused(error):
        return ProviderError(f"could not connect: {error}", permanent=False)
    return ProviderError(f"no answer: {error}", permanent=False, ambiguous=True)


def _refused(error: requests.RequestException) -> bool:
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(error, requests.ConnectionError) and isinstance(reason, NewConnectionError)


__all__ = [
    "PushAdapter",
    "Subscription",
    "do_disable_subscription",
    "gone",
    "load_subscriptions",
    "notification",
    "retry_after",
    "status_error",
    "transport_error",
]
