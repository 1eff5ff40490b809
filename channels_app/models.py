"""The message ledger: one row per message on any channel, written before any provider call."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from customers.enums import Category, Channel
from customers.models import Customer


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    CONVERTED = "converted", "Converted"
    FAILED = "failed", "Failed"
    BOUNCED = "bounced", "Bounced"
    SUPPRESSED = "suppressed", "Suppressed"
    DEFERRED = "deferred", "Deferred"
    UNKNOWN = "unknown", "Unknown (provider may have sent)"


class Message(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="messages")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    category = models.CharField(max_length=16, choices=Category.choices)
    template_name = models.CharField(max_length=200, blank=True)
    # What was (or would be) sent, rendered: subject/body/title/url… frozen at queue time.
    content = models.JSONField(default=dict, blank=True)
    # Journey references are plain ids: channels_app must not depend on journeys.
    journey_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    journey_version_id = models.BigIntegerField(null=True, blank=True)
    node_id = models.CharField(max_length=64, blank=True)
    enrollment_id = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    provider = models.CharField(max_length=64, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    error = models.CharField(max_length=500, blank=True)
    # One timestamp per lifecycle state, set on the transition into it.
    queued_at = models.DateTimeField(default=timezone.now)
    sending_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    suppressed_at = models.DateTimeField(null=True, blank=True)
    deferred_at = models.DateTimeField(null=True, blank=True)
    unknown_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-queued_at"], name="message_customer_time_idx"),
            models.Index(fields=["channel", "queued_at"], name="message_channel_time_idx"),
            models.Index(fields=["provider", "provider_message_id"], name="message_provider_id_idx"),
            models.Index(fields=["status", "queued_at"], name="message_status_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.status} → {self.customer_id}"

    @property
    def summary(self) -> str:
        """One line describing the content, for timelines and lists."""
        c = self.content or {}
        return str(c.get("subject") or c.get("title") or c.get("body") or self.template_name or "")[:140]


class MessageTransition(models.Model):
    """The full status history of a message, with what caused each change."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16, choices=MessageStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=MessageStatus.choices)
    at = models.DateTimeField(default=timezone.now)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status} at {self.at:%Y-%m-%d %H:%M:%S}"


class OutboxMessage(models.Model):
    """What the development outbox provider "sent": the embedded default on every channel.

    One row per message (the provider honours the message's idempotency key through this
    constraint), so a resend after a crash finds the first record instead of adding one.
    """

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="outbox_record")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    to = models.CharField(max_length=2048, help_text="Address, number, device or 'inbox'.")
    content = models.JSONField(default=dict)
    recorded_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=1, help_text="Send calls for this message; >1 after a recovered crash.")

    class Meta:
        ordering = ["-recorded_at", "-id"]

    def __str__(self) -> str:
        return f"outbox {self.channel} → {self.to}"
