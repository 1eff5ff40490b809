"""A customer's email and phone, and what follows them: contact points and suppressions.

Ingestion changes addresses in bulk (``sync_contact_points`` with every change of a request
in two statements); a hand edit in the admin changes one customer (``do_save_customer``).
Both leave one enabled contact point per current address and disable the replaced ones,
then lift the bounces of replaced addresses (``lift_bounces``) before re-applying the
suppression list to the new ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q

from customers.consent import apply_suppressions, lift_bounces_after_address_change
from customers.enums import Channel, ConsentStatus
from customers.models import Consent, ContactPoint, Customer
from customers.validators import canonical_e164

# Customer columns holding an address, and the channel whose contact point mirrors each.
ADDRESS_CHANNELS = {"email": Channel.EMAIL, "phone": Channel.SMS}


@dataclass(frozen=True, slots=True)
class AddressChange:
    """A customer's ``column`` (email or phone) went from ``old`` to ``new`` ("" for none)."""

    customer_id: int
    column: str
    old: str
    new: str


def normalise_email(value: str) -> str:
    """Trimmed, with the domain lower-cased (the local part may be case-sensitive)."""
    value = value.strip()
    if "@" not in value:
        return value
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def sync_contact_points(changes: Iterable[AddressChange]) -> None:
    """Each new address gets an enabled contact point (re-enabled if it existed); each
    replaced one is disabled. Two statements whatever the number of changes."""
    current: list[ContactPoint] = []
    replaced = Q()
    for change in changes:
        channel = ADDRESS_CHANNELS[change.column]
        if change.new:
            current.append(
                ContactPoint(customer_id=change.customer_id, channel=channel, address=change.new)
            )
        if change.old:
            replaced |= Q(customer_id=change.customer_id, channel=channel, address=change.old)
    if replaced:
        ContactPoint.objects.filter(replaced).update(enabled=False)
    if current:
        ContactPoint.objects.bulk_create(
            current,
            update_conflicts=True,
            unique_fields=["customer", "channel", "address"],
            update_fields=["enabled"],
        )


def lift_bounces(customers: dict[int, Customer], changes: Iterable[AddressChange]) -> None:
    """Lift the bounced consent of channels whose address changed to a new one (by id in
    ``customers``), as ``lift_bounces_after_address_change`` rules. Run it before
    re-applying the suppression list, which may find the new address bounced too.

    One query finds the changed channels that hold a bounced consent, which are rare; only
    those are lifted, one at a time. Leave out customers created with these changes: they
    hold no consent yet.
    """
    changed = {(c.customer_id, ADDRESS_CHANNELS[c.column]): c.old for c in changes if c.new}
    if not changed:
        return
    pairs = Q()
    for customer_id, channel in changed:
        pairs |= Q(customer_id=customer_id, channel=channel)
    bounced = (
        Consent.objects.filter(pairs, status=ConsentStatus.BOUNCED)
        .values_list("customer_id", "channel")
        .distinct()
        .order_by("customer_id", "channel")
    )
    for customer_id, channel in bounced:
        lift_bounces_after_address_change(
            customers[customer_id], channel, previous_address=changed[customer_id, channel]
        )


@transaction.atomic
def do_save_customer(customer: Customer) -> list[AddressChange]:
    """Save a customer edited by hand (new or changed), normalising email and phone as
    ingestion does; contact points follow the addresses, a replaced address takes its
    bounces with it, and the suppression list is re-applied when the customer is new or
    changed email, phone or external id. Returns the address changes it applied."""
    customer.email = normalise_email(customer.email)
    customer.phone = canonical_e164(customer.phone) if customer.phone else ""
    stored = _stored_identifiers(customer)
    customer.save()
    before = stored or dict.fromkeys(_IDENTIFIERS, "")
    changes = [
        AddressChange(customer.pk, column, before[column], getattr(customer, column))
        for column in ADDRESS_CHANNELS
        if before[column] != getattr(customer, column)
    ]
    sync_contact_points(changes)
    if stored is not None:
        lift_bounces({customer.pk: customer}, changes)
    if stored is None or any(stored[name] != getattr(customer, name) for name in _IDENTIFIERS):
        apply_suppressions(customer)  # a known-suppressed address starts suppressed
    return changes


_IDENTIFIERS = ("external_id", "email", "phone")


def _stored_identifiers(customer: Customer) -> dict | None:
    """The identifiers as stored, under a row lock; None for a customer not saved yet."""
    if customer.pk is None:
        return None
    return Customer.objects.select_for_update().filter(pk=customer.pk).values(*_IDENTIFIERS).first()
