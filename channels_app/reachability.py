"""Whether, and where, customers can be reached on each channel: read once for many.

The one place for the availability rule: whether consent allows a channel × category,
and where the message goes. ``Reachability.refusal`` applies it at send time (dispatch),
``sendable_q`` is the same rule as SQL for lists and segments; a test holds the two to the
same table of cases.

In order, for one customer, channel and category:

1. a bounce recorded on any category of the channel blocks everything on it (a hard
   bounce is a fact about the address, not about one kind of message);
2. so does a STOP (the customer texted STOP: the carrier-level opt-out);
3. the category's own opt-out, unsubscribe or complaint blocks that category only, so
   transactional messages ignore marketing opt-outs;
4. marketing on a channel the policy lists (``GovernorSettings.marketing_opt_in_channels``)
   needs an explicit opt-in; elsewhere no consent recorded is enough;
5. there must be an address: an enabled contact point, else the profile's.

The journey engine sends for up to a few hundred customers per transaction; asking the
database about each one's consent and addresses would cost two queries per message.
``Reachability.load`` reads both for all of them in two queries.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from django.db.models import Exists, OuterRef, Q

from customers.enums import BLOCKING_CONSENT, CHANNEL_WIDE_CONSENT, Category, Channel, ConsentStatus
from customers.models import Consent, ContactPoint, Customer
from orchestrator.governor.loading import load_policy

INBOX = "inbox"  # every customer has an in-app inbox
# Why a channel has nowhere to send, as shown on the customer's timeline.
NO_ADDRESS: dict[str, str] = {
    Channel.EMAIL: "no email address",
    Channel.SMS: "no phone number",
    Channel.PUSH: "no enabled push subscription",
}
# The channel as a word inside a sentence ("marketing SMS", "marketing push").
CHANNEL_WORDS: dict[str, str] = {
    Channel.EMAIL: "email", Channel.SMS: "SMS", Channel.PUSH: "push", Channel.IN_APP: "in-app",
}
ADDRESS_WORDS: dict[str, str] = {Channel.SMS: "number", Channel.PUSH: "device"}  # else "address"
# What the customer did, for a category's own blocking status.
OPT_OUT_WORDS: dict[str, str] = {
    ConsentStatus.OPTED_OUT: "the customer opted out",
    ConsentStatus.UNSUBSCRIBED: "the customer unsubscribed",
    ConsentStatus.COMPLAINED: "the customer complained (marked a message as spam)",
}


class Rule(StrEnum):
    """Which part of the rule refused: GovernorVerdict.rule of a suppressed send."""

    BOUNCE = "bounce"
    STOP = "stop"
    CONSENT = "consent"  # the category's own opt-out, unsubscribe or complaint
    OPT_IN = "opt-in"  # marketing where an opt-in is needed, and none was given
    REACHABILITY = "reachability"  # nowhere to send


@dataclass(frozen=True)
class Refusal:
    rule: Rule
    reason: str  # plain words, for the customer's timeline


def consent_refusal(
    channel: str, category: str, statuses: Mapping[str, str | None], *, opt_in_channels: Collection[str]
) -> Refusal | None:
    """Steps 1–4 of the rule over one customer's statuses on ``channel`` (category -> status,
    None or missing when nothing is recorded). Pure: no database."""
    words = CHANNEL_WORDS[channel]
    recorded = set(statuses.values())
    if ConsentStatus.BOUNCED in recorded:
        return Refusal(Rule.BOUNCE, f"{words}: the {ADDRESS_WORDS.get(channel, 'address')} bounced")
    if ConsentStatus.STOPPED in recorded:
        return Refusal(Rule.STOP, f"{words}: the customer replied STOP")
    status = statuses.get(category)
    if status in BLOCKING_CONSENT:
        return Refusal(Rule.CONSENT, f"{category} {words}: {OPT_OUT_WORDS[status]}")
    if category == Category.MARKETING and channel in opt_in_channels and status != ConsentStatus.OPTED_IN:
        return Refusal(Rule.OPT_IN, f"marketing {words} needs an opt-in, and this customer has none")
    return None


@dataclass
class Reachability:
    consents: dict[tuple[int, str, str], str] = field(default_factory=dict)
    # The newest enabled contact point per (customer, channel).
    points: dict[tuple[int, str], str] = field(default_factory=dict)
    # The policy's channels where marketing needs an explicit opt-in.
    opt_in_channels: frozenset[str] = frozenset()

    @classmethod
    def load(cls, customer_ids: Iterable[int], *, consents: bool = True) -> Reachability:
        """Consent and the policy's opt-in channels (unless ``consents=False``: addresses
        only) and enabled contact points: one query each, the policy cached."""
        ids = list(customer_ids)
        if not consents:
            return cls(points=_points(ids))
        return cls(consents=_consents(ids), points=_points(ids), opt_in_channels=load_policy().marketing_opt_in_channels)

    def consent(self, customer_id: int, channel: str, category: str) -> str | None:
        """The recorded status, or None when the customer never said anything for this pair."""
        return self.consents.get((customer_id, channel, category))

    def refusal(self, customer: Customer, channel: str, category: str) -> Refusal | None:
        """Why this customer may not get a ``category`` message on ``channel`` now, or None."""
        statuses = {c: self.consent(customer.pk, channel, c) for c in Category}
        refusal = consent_refusal(channel, category, statuses, opt_in_channels=self.opt_in_channels)
        if refusal is None and self.address(customer, channel) is None:
            return Refusal(Rule.REACHABILITY, NO_ADDRESS[channel])
        return refusal

    def address(self, customer: Customer, channel: str) -> str | None:
        """Where a message on `channel` goes: an enabled contact point first, then the profile."""
        if channel == Channel.IN_APP:
            return INBOX
        point = self.points.get((customer.pk, channel))
        if point:
            return point
        profile = {Channel.EMAIL: customer.email, Channel.SMS: customer.phone}.get(channel, "")
        return profile or None


def sendable_q(channel: str, category: str, *, opt_in_channels: Collection[str] | None = None) -> Q:
    """The rule as a condition on Customer: ``refusal()`` would return None. Defaults to the
    current policy's opt-in channels."""
    if opt_in_channels is None:
        opt_in_channels = load_policy().marketing_opt_in_channels
    consents = Consent.objects.filter(customer=OuterRef("pk"), channel=channel)
    allowed = ~Q(Exists(consents.filter(status__in=CHANNEL_WIDE_CONSENT)))
    allowed &= ~Q(Exists(consents.filter(category=category, status__in=BLOCKING_CONSENT)))
    if category == Category.MARKETING and channel in opt_in_channels:
        allowed &= Q(Exists(consents.filter(category=category, status=ConsentStatus.OPTED_IN)))
    return allowed & _has_address_q(channel)


def _has_address_q(channel: str) -> Q:
    """Reachability.address is not None: an enabled contact point, else the profile's."""
    if channel == Channel.IN_APP:
        return Q()
    point = Q(Exists(ContactPoint.objects.filter(customer=OuterRef("pk"), channel=channel, enabled=True).exclude(address="")))
    profile = {Channel.EMAIL: "email", Channel.SMS: "phone"}.get(channel)
    return point | ~Q(**{profile: ""}) if profile else point


def _consents(ids: list[int]) -> dict[tuple[int, str, str], str]:
    rows = Consent.objects.filter(customer_id__in=ids).values_list("customer_id", "channel", "category", "status")
    return {(cid, channel, category): status for cid, channel, category, status in rows}


def _points(ids: list[int]) -> dict[tuple[int, str], str]:
    """The newest enabled contact point per (customer, channel); ties by the newest row."""
    points: dict[tuple[int, str], str] = {}
    enabled = (
        ContactPoint.objects.filter(customer_id__in=ids, enabled=True)
        .exclude(address="")
        .order_by("customer_id", "channel", "-created_at", "-id")
    )
    for cid, channel, address in enabled.values_list("customer_id", "channel", "address"):
        points.setdefault((cid, channel), address)
    return points
