"""Consent per channel × category, the suppression list, and erasure.

The one place that changes consent. Every change is kept in ConsentChange; a blocking
status (unsubscribed, complained, bounced, opted out) is also written to the suppression
list as a hash of the identifier, which outlives erasure of the customer.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from customers.enums import BLOCKING_CONSENT, Category, Channel, ConsentStatus
from customers.models import (
    Consent,
    ConsentChange,
    Customer,
    SuppressedIdentifier,
    hash_identifier,
)

SUPPRESSION_SOURCE = "suppression list"


def identifiers_for(customer: Customer, channel: str) -> list[tuple[str, str]]:
    """(kind, clear value) pairs that identify the customer on a channel."""
    pairs: list[tuple[str, str]] = []
    if channel == Channel.EMAIL and customer.email:
        pairs.append((SuppressedIdentifier.Kind.EMAIL, customer.email))
    if channel == Channel.SMS and customer.phone:
        pairs.append((SuppressedIdentifier.Kind.PHONE, customer.phone))
    pairs.append((SuppressedIdentifier.Kind.EXTERNAL_ID, customer.external_id))
    return pairs


def consent_status(customer: Customer, channel: str, category: str) -> str | None:
    """The recorded status, or None when the customer never said anything for this pair."""
    return (
        Consent.objects.filter(customer=customer, channel=channel, category=category)
        .values_list("status", flat=True)
        .first()
    )


def _record_suppression(customer: Customer, channel: str, status: str, source: str) -> None:
    for kind, value in identifiers_for(customer, channel):
        SuppressedIdentifier.objects.update_or_create(
            identifier_hash=hash_identifier(value),
            channel=channel,
            defaults={"kind": kind, "status": status, "reason": source[:255]},
        )


def _lift_suppression(customer: Customer, channel: str) -> None:
    hashes = [hash_identifier(value) for _, value in identifiers_for(customer, channel)]
    SuppressedIdentifier.objects.filter(identifier_hash__in=hashes, channel=channel).delete()


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
) -> Consent:
    """Set one consent, keeping history and the suppression list in step. Idempotent."""
    channel, category, status = Channel(channel), Category(category), ConsentStatus(status)
    at = at or timezone.now()
    consent = (
        Consent.objects.select_for_update()
        .filter(customer=customer, channel=channel, category=category)
        .first()
    )
    previous = consent.status if consent else ""
    if consent is None:
        consent = Consent.objects.create(
            customer=customer, channel=channel, category=category, status=status, source=source, changed_at=at
        )
    elif consent.status != status:
        consent.status, consent.source, consent.changed_at = status, source, at
        consent.save(update_fields=["status", "source", "changed_at"])
    else:
        return consent
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
    if category == Category.MARKETING or status == ConsentStatus.BOUNCED:
        if status in BLOCKING_CONSENT:
            _record_suppression(customer, channel, status, source)
        elif status == ConsentStatus.OPTED_IN and category == Category.MARKETING:
            _lift_suppression(customer, channel)
    return consent


def apply_suppressions(customer: Customer) -> list[str]:
    """Re-apply suppression-list entries matching this customer's identifiers.

    Called whenever a customer is created or their email/phone changes, so an erased and
    re-imported person (or a known-bounced address) starts unsubscribed. Returns the
    channels that were suppressed.
    """
    by_hash: dict[str, list[str]] = {}
    for channel in Channel:
        for _, value in identifiers_for(customer, channel):
            by_hash.setdefault(hash_identifier(value), []).append(channel)
    entries = SuppressedIdentifier.objects.filter(identifier_hash__in=list(by_hash))
    applied: list[str] = []
    for entry in entries:
        if entry.channel not in by_hash.get(entry.identifier_hash, []):
            continue
        current = consent_status(customer, entry.channel, Category.MARKETING)
        if current not in BLOCKING_CONSENT:
            do_set_consent(customer, entry.channel, Category.MARKETING, entry.status, source=SUPPRESSION_SOURCE)
        if entry.status == ConsentStatus.BOUNCED:
            if consent_status(customer, entry.channel, Category.TRANSACTIONAL) != ConsentStatus.BOUNCED:
                do_set_consent(customer, entry.channel, Category.TRANSACTIONAL, entry.status, source=SUPPRESSION_SOURCE)
        applied.append(entry.channel)
    return applied


@transaction.atomic
def do_erase_customer(customer: Customer) -> None:
    """Delete a customer and everything about them, keeping only suppression hashes."""
    for consent in Consent.objects.filter(customer=customer, status__in=BLOCKING_CONSENT):
        if consent.category == Category.MARKETING or consent.status == ConsentStatus.BOUNCED:
            _record_suppression(customer, consent.channel, consent.status, "kept at erasure")
    customer.delete()
