"""Whether, and where, customers can be reached on each channel: read once for many.

The journey engine sends for up to a few hundred customers per transaction; asking the
database about each one's consent and addresses would cost two queries per message.
``Reachability.load`` reads both for all of them in two queries; the rules that use the
answers (which consent blocks, which address wins) live here once, for one customer or
many.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from customers.enums import Channel
from customers.models import Consent, ContactPoint, Customer

INBOX = "inbox"  # every customer has an in-app inbox
# Why a channel has nowhere to send, as shown on the customer's timeline.
NO_ADDRESS: dict[str, str] = {
    Channel.EMAIL: "no email address",
    Channel.SMS: "no phone number",
    Channel.PUSH: "no enabled push subscription",
}


@dataclass
class Reachability:
    consents: dict[tuple[int, str, str], str] = field(default_factory=dict)
    # The newest enabled contact point per (customer, channel).
    points: dict[tuple[int, str], str] = field(default_factory=dict)

    @classmethod
    def load(cls, customer_ids: Iterable[int], *, consents: bool = True) -> Reachability:
        """Consent (unless ``consents=False``) and enabled contact points: one query each."""
        ids = list(customer_ids)
        return cls(consents=_consents(ids) if consents else {}, points=_points(ids))

    def consent(self, customer_id: int, channel: str, category: str) -> str | None:
        """The recorded status, or None when the customer never said anything for this pair."""
        return self.consents.get((customer_id, channel, category))

    def address(self, customer: Customer, channel: str) -> str | None:
        """Where a message on `channel` goes: an enabled contact point first, then the profile."""
        if channel == Channel.IN_APP:
            return INBOX
        point = self.points.get((customer.pk, channel))
        if point:
            return point
        profile = {Channel.EMAIL: customer.email, Channel.SMS: customer.phone}.get(channel, "")
        return profile or None


def _consents(ids: list[int]) -> dict[tuple[int, str, str], str]:
    rows = Consent.objects.filter(customer_id__in=ids).values_list("customer_id", "channel", "category", "status")
    return {(cid, channel, category): status for cid, channel, category, status in rows}


def _points(ids: list[int]) -> dict[tuple[int, str], str]:
    """The newest enabled contact point per (customer, channel); ties by the newest row."""
    points: dict[tuple[int, str], str] = {}
    enabled = ContactPoint.objects.filter(customer_id__in=ids, enabled=True).order_by(
        "customer_id", "channel", "-created_at", "-id"
    )
    for cid, channel, address in enabled.values_list("customer_id", "channel", "address"):
        points.setdefault((cid, channel), address)
    return points
