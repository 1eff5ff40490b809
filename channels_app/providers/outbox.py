"""The development outbox: records each message instead of sending it (the embedded default)."""

from __future__ import annotations

from django.db.models import F

from channels_app.models import OutboxMessage
from channels_app.providers.base import Delivery, Provider, SendResult


class OutboxProvider(Provider):
    """One OutboxMessage per message, so a resend after a crash never records twice.

    No network call, so no timeout. The one-to-one on the message is this provider's
    idempotency key: a message has exactly one key, and the key one message.
    """

    name = "outbox"
    honours_idempotency_key = True

    def send(self, delivery: Delivery) -> SendResult:
        record, created = OutboxMessage.objects.get_or_create(
            message_id=delivery.message_id,
            defaults={"channel": delivery.channel, "to": delivery.to, "content": dict(delivery.content)},
        )
        if not created:
            # F(), not +=, so two concurrent resends both count.
            OutboxMessage.objects.filter(pk=record.pk).update(attempts=F("attempts") + 1)
        return SendResult(provider_message_id=f"outbox-{record.pk}")
