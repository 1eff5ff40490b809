"""Consent per channel × category, the suppression list, and erasure.

The one place that changes consent. Every change is kept in ConsentChange; a blocking
status (unsubscribed, complained, bounced, opted out, replied STOP) is also written to the
suppression list as a hash of the identifier, which outlives erasure of the customer.
What each status allows at send time is channels_app.reachability's rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from customers import hooks
from customers.enums import (
    BLOCKING_CONSENT,
    CHANNEL_WIDE_CONSENT,
    Category,
    Channel,
    ConsentStatus,
    consent_status_problem,
)
from customers.models import (
    Consent,
    ConsentChange,
    ContactPoint,
    Customer,
    SuppressedIdentifier,
    hash_identifier,
)

SUPPRESSION_SOURCE = "suppression list"
ERASED_REPR = "erased customer"
# Sources of the changes that lift a bounce after an address change: back to the status
# before the bounce, or back to no consent at all (a ConsentChange to NOT_SET).
ADDRESS_CHANGED_SOURCE = "address changed"
BOUNCE_LIFTED_SOURCE = "address changed: bounce lifted"
NOT_SET = ""  # ConsentChange.status when the pair went back to having no Consent row
# Sources of the carrier-level SMS keywords (issue 5's inbound-SMS webhook passes its own).
SMS_STOP_SOURCE = "SMS reply: STOP"
SMS_START_SOURCE = "SMS reply: START"

# How strong a suppression entry is. An entry is never replaced by a weaker one: a later
# unsubscribe must not turn a bounced address or a STOP (which also block transactional
# messages) or a complaint back into a plain unsubscribe that opting in would lift.
SUPPRESSION_STRENGTH = {
    ConsentStatus.OPTED_OUT: 1,
    ConsentStatus.UNSUBSCRIBED: 1,
    ConsentStatus.COMPLAINED: 2,
    ConsentStatus.STOPPED: 3,
    ConsentStatus.BOUNCED: 4,
}


@dataclass(frozen=True)
class ConsentResult:
    """What do_set_consent did: the current row, and whether it changed from what."""

    consent: Consent
    changed: bool
    previous_status: str  # "" when the customer had never said anything for this pair


def identifiers_for(customer: Customer, channel: str) -> list[tuple[str, str]]:
    """(kind, clear value) pairs that identify the customer on a channel: address, then person."""
    return [*addresses_for(customer, channel), (SuppressedIdentifier.Kind.EXTERNAL_ID, customer.external_id)]


def addresses_for(customer: Customer, channel: str) -> list[tuple[str, str]]:
    """The customer's current address on a channel (a bounce is about this, not the person)."""
    if channel == Channel.EMAIL and customer.email:
        return [(SuppressedIdentifier.Kind.EMAIL, customer.email)]
    if channel == Channel.SMS and customer.phone:
        return [(SuppressedIdentifier.Kind.PHONE, customer.phone)]
    return []


def consent_status(customer: Customer, channel: str, category: str) -> str | None:
    """The recorded status, or None when the customer never said anything for this pair."""
    return (
        Consent.objects.filter(customer=customer, channel=channel, category=category)
        .values_list("status", flat=True)
        .first()
    )


def _lock_customer(customer: Customer) -> Customer:
    """Lock the customer's row (the first lock every consent change takes) and re-read it.

    Serialises consent changes for one customer, also the first one, when no Consent row
    exists yet to lock; re-reading makes suppression hashes use the current email and phone.
    """
    return Customer.objects.select_for_update().get(pk=customer.pk)


def _record_suppression(customer: Customer, channel: str, status: str, source: str) -> None:
    # A bounce is a fact about an address: hashing the person too would suppress their
    # next, working address.
    pairs = addresses_for(customer, channel) if status == ConsentStatus.BOUNCED else identifiers_for(customer, channel)
    for kind, value in pairs:
        entry, created = SuppressedIdentifier.objects.select_for_update().get_or_create(
            identifier_hash=hash_identifier(kind, value),
            channel=channel,
            defaults={"kind": kind, "status": status, "reason": source[:255]},
        )
        if not created and SUPPRESSION_STRENGTH[status] >= SUPPRESSION_STRENGTH[ConsentStatus(entry.status)]:
            entry.status, entry.reason = status, source[:255]
            entry.save(update_fields=["status", "reason"])


def _lift_suppression(customer: Customer, channel: str) -> None:
    """Opting in lifts the person's own choices, never a bounce: that address stays dead."""
    hashes = [hash_identifier(kind, value) for kind, value in identifiers_for(customer, channel)]
    SuppressedIdentifier.objects.filter(identifier_hash__in=hashes, channel=channel).exclude(
        status=ConsentStatus.BOUNCED
    ).delete()


@transaction.atomic
def do_set_consent(
    customer: Customer,
    channel: str,
    category: str,
    status: str,
    *,
    source: str,
    actor=None,
    at: datetime | None = None,
    lift_suppression: bool = True,
) -> ConsentResult:
    """Set one consent, keeping history and the suppression list in step. Idempotent.

    A marketing opt-in lifts the suppression of the person's identifiers, unless
    ``lift_suppression`` is False: a status Chorus restores (lifting a bounce) is not a new
    opt-in, and must not erase an unsubscribe already listed for the customer's new address.
    """
    channel, category, status = Channel(channel), Category(category), ConsentStatus(status)
    problem = consent_status_problem(channel, status)
    if problem:  # the forms and the API say so first; this keeps every other caller honest
        raise ValueError(f"status: {problem}")
    at = at or timezone.now()
    customer = _lock_customer(customer)
    consent = Consent.objects.filter(customer=customer, channel=channel, category=category).first()
    previous = consent.status if consent else ""
    if consent is None:
        consent = Consent.objects.create(
            customer=customer, channel=channel, category=category, status=status, source=source, changed_at=at
        )
    elif consent.status != status:
        consent.status, consent.source, consent.changed_at = status, source, at
        consent.save(update_fields=["status", "source", "changed_at"])
    else:
        return ConsentResult(consent, changed=False, previous_status=previous)
    ConsentChange.objects.create(
        customer=customer,
        channel=channel,
        category=category,
        previous_status=previous,
        status=status,
        source=source,
        actor=actor,
        changed_at=at,
    )
    if category == Category.MARKETING or status in CHANNEL_WIDE_CONSENT:
        if status in BLOCKING_CONSENT:
            _record_suppression(customer, channel, status, source)
        elif status == ConsentStatus.OPTED_IN and category == Category.MARKETING and lift_suppression:
            _lift_suppression(customer, channel)
    return ConsentResult(consent, changed=True, previous_status=previous)


@transaction.atomic
def do_record_sms_stop(customer: Customer, *, source: str = SMS_STOP_SOURCE, at: datetime | None = None) -> list[str]:
    """The customer texted STOP: no more SMS of any kind, transactional included.

    Both SMS categories become stopped, history kept, and the number and the person go on
    the suppression list. A bounced category stays bounced: the stronger fact, which START
    must not lift. Idempotent. Returns the categories changed.
    """
    customer = _lock_customer(customer)
    changed = []
    for category in (Category.MARKETING, Category.TRANSACTIONAL):
        if consent_status(customer, Channel.SMS, category) == ConsentStatus.BOUNCED:
            continue
        if do_set_consent(customer, Channel.SMS, category, ConsentStatus.STOPPED, source=source, at=at).changed:
            changed.append(category)
    return changed


@transaction.atomic
def do_record_sms_start(customer: Customer, *, source: str = SMS_START_SOURCE, at: datetime | None = None) -> list[str]:
    """The customer texted START after a STOP: the STOP is lifted, history kept.

    Transactional SMS resumes (opted in: START asks for texts again). Marketing goes back
    to its status before the STOP, or to nothing recorded: START is not consent to the
    marketing the customer never gave or had refused. Does nothing without a STOP.
    Returns the categories changed.
    """
    customer = _lock_customer(customer)
    stopped = list(Consent.objects.filter(customer=customer, channel=Channel.SMS, status=ConsentStatus.STOPPED))
    if stopped:
        _lift_stop_suppression(customer)
    for consent in stopped:
        if consent.category == Category.TRANSACTIONAL:
            do_set_consent(customer, Channel.SMS, consent.category, ConsentStatus.OPTED_IN, source=source, at=at)
        else:
            _restore_before(customer, consent, source=source, lifted_source=source, lift_suppression=True, at=at)
    return [consent.category for consent in stopped]


def _lift_stop_suppression(customer: Customer) -> None:
    # Before the restored statuses are written: a marketing opt-out that STOP replaced on
    # the list goes back on it, which a STOP entry (stronger) would prevent.
    hashes = [hash_identifier(kind, value) for kind, value in identifiers_for(customer, Channel.SMS)]
    SuppressedIdentifier.objects.filter(
        identifier_hash__in=hashes, channel=Channel.SMS, status=ConsentStatus.STOPPED
    ).delete()


@transaction.atomic
def apply_suppressions(customer: Customer) -> list[str]:
    """Re-apply suppression-list entries matching this customer's identifiers.

    Called whenever a customer is created or their email/phone changes, so an erased and
    re-imported person (or a known-bounced address) starts unsubscribed. A bounce applies
    only through the customer's current address on that channel, never through their
    external id. Returns the channels that were suppressed.
    """
    customer = _lock_customer(customer)
    # hash -> [(channel, is an address)]
    by_hash: dict[str, list[tuple[str, bool]]] = {}
    for channel in Channel:
        for kind, value in identifiers_for(customer, channel):
            is_address = kind != SuppressedIdentifier.Kind.EXTERNAL_ID
            by_hash.setdefault(hash_identifier(kind, value), []).append((channel, is_address))
    entries = SuppressedIdentifier.objects.filter(identifier_hash__in=list(by_hash))
    applied: list[str] = []
    for entry in entries:
        matches = [is_address for channel, is_address in by_hash[entry.identifier_hash] if channel == entry.channel]
        bounced = entry.status == ConsentStatus.BOUNCED
        if not matches or (bounced and not any(matches)):
            continue
        _apply_entry(customer, entry)
        applied.append(entry.channel)
    return applied


def _apply_entry(customer: Customer, entry: SuppressedIdentifier) -> None:
    current = consent_status(customer, entry.channel, Category.MARKETING)
    if current not in BLOCKING_CONSENT:
        do_set_consent(customer, entry.channel, Category.MARKETING, entry.status, source=SUPPRESSION_SOURCE)
    # A bounce or a STOP blocks transactional messages too; a STOP never hides a bounce.
    transactional = consent_status(customer, entry.channel, Category.TRANSACTIONAL)
    if entry.status in CHANNEL_WIDE_CONSENT and transactional != ConsentStatus.BOUNCED:
        do_set_consent(customer, entry.channel, Category.TRANSACTIONAL, entry.status, source=SUPPRESSION_SOURCE)


@transaction.atomic
def lift_bounces_after_address_change(
    customer: Customer, channel: str, *, previous_address: str
) -> list[str]:
    """Undo a channel's bounced consent after the customer's address on it changed.

    A bounce is a fact about the old address (which stays on the suppression list), not
    about the person: each bounced category goes back to its status before the bounce,
    or to not set when the bounce was its first record, history kept. Nothing is lifted
    when the new address is empty, is the previous one (as the suppression list compares
    them: emails ignore case) or is itself listed as bounced; apply_suppressions, run
    after this, then keeps or makes the channel bounced. Returns the categories lifted.
    """
    channel = Channel(channel)
    customer = _lock_customer(customer)
    addresses = addresses_for(customer, channel)
    if not addresses or not _is_new_working_address(*addresses[0], previous_address, channel):
        return []
    lifted = []
    for consent in Consent.objects.filter(customer=customer, channel=channel, status=ConsentStatus.BOUNCED):
        _restore_before(customer, consent, source=ADDRESS_CHANGED_SOURCE, lifted_source=BOUNCE_LIFTED_SOURCE)
        lifted.append(consent.category)
    return lifted


def _is_new_working_address(kind: str, address: str, previous_address: str, channel: str) -> bool:
    address_hash = hash_identifier(kind, address)
    if previous_address and hash_identifier(kind, previous_address) == address_hash:
        return False
    return not SuppressedIdentifier.objects.filter(
        identifier_hash=address_hash, channel=channel, status=ConsentStatus.BOUNCED
    ).exists()


def _restore_before(
    customer: Customer,
    consent: Consent,
    *,
    source: str,
    lifted_source: str,
    lift_suppression: bool = False,
    at: datetime | None = None,
) -> None:
    """Put a pair back to its status before it became ``consent.status`` (a bounce, a STOP),
    or to no consent at all (recorded as a change to NOT_SET, from ``lifted_source``)."""
    # The latest change recorded into the status is the one that made the row so (ids,
    # not changed_at, which may be a provider's earlier timestamp).
    lifted = (
        ConsentChange.objects.filter(
            customer=customer, channel=consent.channel, category=consent.category, status=consent.status
        )
        .order_by("-id")
        .first()
    )
    before = lifted.previous_status if lifted else NOT_SET
    if before:
        do_set_consent(
            customer, consent.channel, consent.category, before, source=source, at=at, lift_suppression=lift_suppression
        )
        return
    consent.delete()
    ConsentChange.objects.create(
        customer=customer,
        channel=consent.channel,
        category=consent.category,
        previous_status=consent.status,
        status=NOT_SET,
        source=lifted_source,
        changed_at=at or timezone.now(),
    )


@transaction.atomic
def do_erase_customer(customer: Customer) -> None:
    """Delete a customer and everything about them, keeping only suppression hashes.

    Also scrubs Django's admin log: its entries for the customer, their contact points and
    consents keep object names and change messages ("SMS: +14155550100") that would
    otherwise outlive the person.
    """
    customer = _lock_customer(customer)
    # Bounces are not re-recorded: each went on the list under the address that bounced,
    # when it bounced; the customer's address today may be a newer, working one.
    person_blocks = BLOCKING_CONSENT - {ConsentStatus.BOUNCED}
    for consent in Consent.objects.filter(customer=customer, category=Category.MARKETING, status__in=person_blocks):
        _record_suppression(customer, consent.channel, consent.status, "kept at erasure")
    _scrub_admin_log(customer)
    hooks.customer_erasing(customer.pk)
    customer.delete()


def _scrub_admin_log(customer: Customer) -> None:
    related = {
        Customer: [customer.pk],
        ContactPoint: list(ContactPoint.objects.filter(customer=customer).values_list("pk", flat=True)),
        Consent: list(Consent.objects.filter(customer=customer).values_list("pk", flat=True)),
    }
    entries = Q()
    for model, pks in related.items():
        if pks:
            content_type = ContentType.objects.get_for_model(model)
            entries |= Q(content_type=content_type, object_id__in=[str(pk) for pk in pks])
    LogEntry.objects.filter(entries).update(object_repr=ERASED_REPR, change_message="")
