"""The development outbox: records each message instead of sending it (the embedded default)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import F

from channels_app.models import OutboxMessage
from channels_app.providers.base import Delivery, Provider, SendResult

# Rows per INSERT: six parameters each, well under any database's limit on parameters.
UPSERT_CHUNK = 500


class OutboxProvider(Provider):
    """One OutboxMessage per message, so a resend after a crash never records twice.

    No network call, so no timeout. The one-to-one on the message is this provider's
    idempotency key: a message has exactly one key, and the key one message.
    """

    name = "outbox"
    channels = frozenset({"email", "sms", "push", "in_app"})
    honours_idempotency_key = True
    # Nothing to configure: no account, no secret.
    option_fields = ()
    secret_fields = ()

    def send(self, delivery: Delivery) -> SendResult:
        record, created = OutboxMessage.objects.get_or_create(
            message_id=delivery.message_id,
            defaults={"channel": delivery.channel, "to": delivery.to, "content": dict(delivery.content)},
        )
        if not created:
            # F(), not +=, so two concurrent resends both count.
            OutboxMessage.objects.filter(pk=record.pk).update(attempts=F("attempts") + 1)
        return SendResult(provider_message_id=f"outbox-{record.pk}")

    def send_batch(self, deliveries: Sequence[Delivery]) -> list[SendResult | Exception]:
        """Record the whole batch in one INSERT … ON CONFLICT DO UPDATE … RETURNING.

        A message already recorded (a resend) keeps its row and counts one more attempt.
        bulk_create(update_conflicts=True) can only set ``attempts`` to the inserted
        value, not add one to it, hence the SQL. A batch naming one message twice takes
        the per-message path (ON CONFLICT may not touch a row twice in one statement).
        """
        message_ids = [d.message_id for d in deliveries]
        if not deliveries or not _can_upsert_returning() or len(set(message_ids)) < len(message_ids):
            return super().send_batch(deliveries)
        record_ids: dict[int, int] = {}
        # In message order, so overlapping concurrent batches lock the index in one order.
        ordered = sorted(deliveries, key=lambda d: d.message_id)
        for start in range(0, len(ordered), UPSERT_CHUNK):
            record_ids.update(_upsert(ordered[start : start + UPSERT_CHUNK]))
        return [SendResult(provider_message_id=f"outbox-{record_ids[pk]}") for pk in message_ids]


def _can_upsert_returning() -> bool:
    return connection.vendor == "postgresql" or (
        connection.vendor == "sqlite" and connection.Database.sqlite_version_info >= (3, 35)
    )


def _upsert(deliveries: Sequence[Delivery]) -> dict[int, int]:
    """message id → outbox record id, recording new messages and counting resends."""
    qn = connection.ops.quote_name
    opts = OutboxMessage._meta
    table = qn(opts.db_table)
    fields = [opts.get_field(name) for name in ("message", "channel", "to", "content", "recorded_at", "attempts")]
    columns = ", ".join(qn(f.column) for f in fields)
    message, attempts, pk = (qn(opts.get_field(n).column) for n in ("message", "attempts", "id"))
    now = opts.get_field("recorded_at").get_default()
    params: list = []
    for d in deliveries:
        row = (d.message_id, d.channel, d.to, dict(d.content), now, 1)
        params += [f.get_db_prep_save(value, connection) for f, value in zip(fields, row, strict=True)]
    marks = ", ".join([f"({', '.join(['%s'] * len(fields))})"] * len(deliveries))
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES {marks}"
        f" ON CONFLICT ({message}) DO UPDATE SET {attempts} = {table}.{attempts} + 1"
        f" RETURNING {pk}, {message}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {message_id: record_id for record_id, message_id in cursor.fetchall()}
