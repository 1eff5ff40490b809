"""Saving provider accounts (with an audit row that never holds a secret) and sending a test message.

Every save and delete writes one ``PolicyChange`` in the same transaction, like the
frequency policy: who, when, the plain fields before and after, and for secrets only
*which keys* are stored and which changed, never a value, not even encrypted. Once
committed, every process reloads the configurations (``providers.forget_provider_configs``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.db import transaction

from channels_app.ledger import (
    QueueRequest,
    claim_for_sending,
    do_queue_message,
    do_transition_message,
    record_sent_many,
)
from channels_app.models import Message, MessageStatus, ProviderConfig
from channels_app.providers import PROVIDERS, Delivery, ProviderError, forget_provider_configs
from customers.enums import Category, Channel
from customers.models import ContactPoint, Customer
from orchestrator.governor.models import PolicyChange

TEST_TEMPLATE_NAME = "admin test message"
# The ledger needs a customer for every message; test messages to a typed-in address
# belong to this one internal customer rather than to whoever holds that address.
TEST_CUSTOMER_EXTERNAL_ID = "chorus:admin-test-messages"
SNAPSHOT_FIELDS = ("channel", "provider", "label", "enabled", "is_primary", "failover_order", "options")


@dataclass(frozen=True)
class SecretChanges:
    """What the admin form asks for: new values to store, and keys to remove."""

    set: Mapping[str, str]
    cleared: frozenset[str] = frozenset()


def snapshot(row: ProviderConfig, *, secret_keys: Iterable[str]) -> dict:
    values = {name: getattr(row, name) for name in SNAPSHOT_FIELDS}
    return {**values, "options": dict(row.options or {}), "secret_keys": sorted(secret_keys)}


def _record(user, row: ProviderConfig, action: str, before: dict | None, after: dict | None) -> PolicyChange:
    return PolicyChange.objects.create(
        user=user if user and user.pk else None, username=getattr(user, "username", "") or "",
        model_label=row._meta.label_lower, object_id=str(row.pk), object_repr=str(row)[:200],
        action=action, before=before, after=after,
    )


def do_save_provider_config(row: ProviderConfig, user, *, created: bool, secrets: SecretChanges) -> PolicyChange:
    """Save the row with its secrets changed as asked (others kept), and record the change."""
    with transaction.atomic():
        stored: dict[str, str] = {}
        before = None
        if not created:
            current = ProviderConfig.objects.select_for_update().get(pk=row.pk)
            stored = current.secrets()
            before = snapshot(current, secret_keys=stored)
        updated = {k: v for k, v in stored.items() if k not in secrets.cleared}
        updated.update({k: v for k, v in secrets.set.items() if v})
        changed = sorted(k for k in stored.keys() | updated.keys() if stored.get(k) != updated.get(k))
        if created:
            row.created_by = user
        row.updated_by = user
        row.set_secrets(updated)
        row.save()
        after = snapshot(row, secret_keys=updated)
        if changed:  # names only, so the trail's "changed fields" shows a new value under a kept key
            after["secrets_changed"] = changed
        action = PolicyChange.Action.CREATED if created else PolicyChange.Action.CHANGED
        change = _record(user, row, action, before, after)
        transaction.on_commit(forget_provider_configs)
    return change


def do_delete_provider_configs(rows: Iterable[ProviderConfig], user) -> int:
    deleted = 0
    with transaction.atomic():
        for row in rows:
            _record(user, row, PolicyChange.Action.DELETED, snapshot(row, secret_keys=row.secrets()), None)
            row.delete()
            deleted += 1
        transaction.on_commit(forget_provider_configs)
    return deleted


# --- The test message --------------------------------------------------------------------------


@dataclass(frozen=True)
class SendTestOutcome:
    message: Message
    status: str
    answer: str  # the provider's message id, or its error


def sample_content(channel: str) -> dict[str, str]:
    text = "This is a test message from Chorus: the provider account works."
    return {
        Channel.EMAIL: {"subject": "Chorus test message", "html": f"<p>{text}</p>", "text": text},
        Channel.SMS: {"body": text},
        Channel.PUSH: {"title": "Chorus test message", "body": text},
        Channel.IN_APP: {"title": "Chorus test message", "body": text},
    }[Channel(channel)]


def _test_customer_id(channel: str, to: str) -> int:
    """The admin test customer; for push, the customer whose subscription ``to`` is: a push
    message goes only to a subscription of its own customer (with that browser's keys)."""
    if channel == Channel.PUSH:
        owner = ContactPoint.objects.filter(channel=Channel.PUSH, address=to).values_list("customer_id", flat=True).first()
        if owner is not None:
            return owner
    customer, _ = Customer.objects.get_or_create(external_id=TEST_CUSTOMER_EXTERNAL_ID)
    return customer.pk


def do_send_test_message(config: ProviderConfig, to: str) -> SendTestOutcome:
    """One transactional message through this account's adapter directly (no journey, no
    governor), written to the ledger first like any other. Not inside a transaction: the
    provider call must not hold one open, and the ledger rows must stay whatever it answers."""
    request = QueueRequest(
        customer_id=_test_customer_id(config.channel, to), channel=config.channel, category=Category.TRANSACTIONAL,
        idempotency_key=f"admin-test:{uuid.uuid4()}", content=sample_content(config.channel),
        template_name=TEST_TEMPLATE_NAME,
    )
    message = do_queue_message(request).message
    claim_for_sending(message.pk)
    provider = PROVIDERS[config.provider](config.values())
    delivery = Delivery(
        message_id=message.pk, public_id=str(message.public_id), channel=message.channel, category=message.category,
        to=to, content=dict(message.content), idempotency_key=message.idempotency_key,
    )
    try:
        result = provider.send(delivery)
    except ProviderError as error:
        detail = error.reason if error.permanent else f"transient: {error.reason}"
        return _outcome(message, MessageStatus.FAILED, detail, provider.name)
    except Exception as error:  # the request may have left: the provider may have sent it
        return _outcome(message, MessageStatus.UNKNOWN, f"provider raised {type(error).__name__}: {error}", provider.name)
    status = record_sent_many([(message.pk, provider.name, result.provider_message_id)]).get(message.pk, "")
    message.refresh_from_db()
    return SendTestOutcome(message, status, result.provider_message_id)


def _outcome(message: Message, status: str, detail: str, provider: str) -> SendTestOutcome:
    result = do_transition_message(message.pk, status, detail=detail, provider=provider)
    message.refresh_from_db()
    return SendTestOutcome(message, result.status, detail)
