"""Idempotency-Key for POST requests: the first response, stored under (caller, key).

The row is inserted before the work, inside the same transaction: a concurrent request
with the same key waits on the unique index until the first commits, then fails its
insert and replays the stored response; if the first rolled back, the second goes ahead.
The request's hash is kept so the same key with a different body is refused (409).

A send request also keeps what its asynchronous fallback needs (orchestrator.engine.fallback):
``send_key``, the prefix of its messages' idempotency keys (``<send_key>:<channel>``), by
which a failed message finds its request; ``send``, its ordered channels with their
rendered content; and ``fallbacks``, what each fallback did, which replays return.
"""

from __future__ import annotations

import hashlib
import json

from django.db import models
from django.utils import timezone


class IdempotentRequest(models.Model):
    # Who asked: "key:<api key id>" or "user:<user id>", so two callers' keys never collide.
    owner = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=100)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(default=0)
    response_body = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    send_key = models.CharField(max_length=255, blank=True, db_index=True)
    # {"customer_id", "category", "template_name", "channels": [[channel, rendered content], …]}
    send = models.JSONField(default=dict)
    fallbacks = models.JSONField(default=list)

    class Meta:
        app_label = "orchestrator"
        constraints = [
            models.UniqueConstraint(fields=["owner", "endpoint", "key"], name="idempotent_request_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.key} ({self.owner})"


def request_hash(body: object) -> str:
    """The body's fingerprint: key order and whitespace do not matter."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
