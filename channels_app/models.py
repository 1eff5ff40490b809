"""The message ledger: one row per message on any channel, written before any provider call.

Also the channel content rules' settings, as admins edit them (``ContentRuleSettings``), and the
provider accounts each channel sends through (``ProviderConfig``).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from channels_app.content_rules import DEFAULT_RULES, RULE_NAMES, RuleSet, rule_errors
from channels_app.crypto import decrypt_secrets, encrypt_secrets
from customers.enums import Category, Channel
from customers.models import Customer

if TYPE_CHECKING:  # the providers package imports these models
    from channels_app.providers.base import ProviderConfigValues


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
    # Retry state (channels_app.delivery): failed attempts so far, when a queued message
    # may be tried again (null: now), and why the last attempt failed.
    # Database defaults too: the demo writer COPYs ledger rows naming only the columns it fills.
    attempts = models.PositiveIntegerField(default=0, db_default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, db_default="")
    # The ProviderConfig that sent it, or that an ambiguous attempt may have reached: a
    # queued message with a provider set is resent only there, under the same key.
    provider_config_id = models.BigIntegerField(null=True, blank=True)
    # In-app only: when the customer dismissed it from their inbox (channels_app.api_inbox).
    dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-queued_at"], name="message_customer_time_idx"),
            models.Index(fields=["channel", "queued_at"], name="message_channel_time_idx"),
            models.Index(fields=["provider", "provider_message_id"], name="message_provider_id_idx"),
            models.Index(fields=["status", "queued_at"], name="message_status_time_idx"),
            models.Index(
                fields=["next_attempt_at"], name="message_retry_due_idx", condition=models.Q(status="queued")
            ),
            # Measurement: a customer's touches in an attribution window, read index-only.
            models.Index(
                fields=["customer", "sent_at"], include=["channel", "journey_id", "category", "id"],
                condition=models.Q(sent_at__isnull=False), name="message_customer_sent_idx",
            ),
            # Measurement: each enrollment's sent messages in order (touch sequences).
            models.Index(
                fields=["enrollment_id", "sent_at"], include=["channel", "journey_id"],
                condition=models.Q(enrollment_id__isnull=False, sent_at__isnull=False),
                name="message_enrollment_sent_idx",
            ),
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


# --- Channel content rules, as admins edit them ------------------------------------------


def default_sms_opt_out_phrases() -> list[str]:
    return list(DEFAULT_RULES.sms_opt_out_phrases)


def default_sms_promotional_terms() -> list[str]:
    return list(DEFAULT_RULES.sms_promotional_terms)


def default_in_app_presence_events() -> list[str]:
    return list(DEFAULT_RULES.in_app_presence_events)


def _threshold(name: str, help_text: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(default=getattr(DEFAULT_RULES, name), help_text=help_text)


class ContentRuleSettings(models.Model):
    """The thresholds and word lists of the channel content rules: one row, pk=1 (migration 0004).

    One field per ``content_rules.RuleSet`` field, with the same name and default (a test
    keeps them in step). ``clean`` validates with ``content_rules.rule_errors``, the one
    validator, and nothing on the send path reads this model directly:
    ``content_rules_loading.load_rules`` turns it into the frozen RuleSet the checks read.
    """

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    push_title_max_chars = _threshold("push_title_max_chars", "Longest push title; longer ones are cut.")
    push_body_max_chars = _threshold("push_body_max_chars", "Longest push body: about what a lock screen shows.")
    push_max_actions = _threshold("push_max_actions", "Most links (actions) a push may carry.")
    sms_max_segments_marketing = _threshold("sms_max_segments_marketing", "Most SMS parts a marketing SMS may take.")
    sms_max_segments_transactional = _threshold(
        "sms_max_segments_transactional", "Most SMS parts a transactional SMS may take; carriers stop at about 10."
    )
    sms_opt_out_phrases = models.JSONField(
        default=default_sms_opt_out_phrases,
        help_text="A marketing SMS must contain one of these (any case, punctuation ignored).",
    )
    sms_promotional_terms = models.JSONField(
        default=default_sms_promotional_terms,
        help_text="Wording that makes an SMS labelled transactional read as marketing (an error).",
    )
    sms_discount_code_pattern = models.CharField(
        max_length=500, default=DEFAULT_RULES.sms_discount_code_pattern,
        help_text="A regular expression for discount codes, which a transactional SMS may not carry.",
    )
    email_subject_max_chars = _threshold("email_subject_max_chars", "Longer subjects get a warning: inboxes cut them.")
    in_app_requires_app_presence = models.BooleanField(
        default=DEFAULT_RULES.in_app_requires_app_presence,
        help_text="In-app messages only where the journey sends them as the customer is in the app.",
    )
    in_app_presence_events = models.JSONField(
        default=default_in_app_presence_events,
        help_text="Events that mean the customer is in the app as they happen (exact event names, any case).",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        verbose_name = "content rules"
        verbose_name_plural = "content rules"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="content_rule_settings_singleton")]

    def __str__(self) -> str:
        return "Content rules"

    def rule_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RULE_NAMES}

    def clean(self) -> None:
        errors = rule_errors(self.rule_values())
        if errors:
            raise ValidationError(errors)

    def to_rules(self) -> RuleSet:
        return RuleSet.from_mapping(self.rule_values())


class ProviderConfig(models.Model):
    """One provider account for one channel, as the Admin role configures it.

    Several per channel: the primary first, then the others by ``failover_order``
    (``providers.get_providers``). Options are plain (a sender address, an API base URL);
    secrets (API keys, passwords) are stored only as one MultiFernet token
    (``channels_app.crypto``) and never shown back by the admin.
    """

    channel = models.CharField(max_length=16, choices=Channel.choices)
    provider = models.CharField(max_length=64, help_text="The adapter: its registry name in channels_app.providers.")
    label = models.CharField(max_length=100, help_text="Which account this is, e.g. “Postmark, transactional”.")
    enabled = models.BooleanField(default=True)
    is_primary = models.BooleanField("primary", default=False, help_text="Tried first; at most one per channel.")
    failover_order = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Order among the non-primary ones: 1 is tried first."
    )
    options = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        ordering = ["channel", "-is_primary", "failover_order", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel"], condition=models.Q(is_primary=True), name="provider_config_one_primary_per_channel"
            ),
            models.CheckConstraint(condition=models.Q(failover_order__gte=1), name="provider_config_failover_order_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.provider}, {self.get_channel_display()})"

    def clean(self) -> None:
        from channels_app.providers import PROVIDERS  # the registry imports the models

        adapter = PROVIDERS.get(self.provider)
        if adapter is None:
            raise ValidationError({"provider": f"Unknown provider {self.provider!r}; expected one of {', '.join(sorted(PROVIDERS))}."})
        if self.channel and self.channel not in adapter.channels:
            raise ValidationError({"provider": f"{self.provider} does not send {self.get_channel_display()}."})

    def secrets(self) -> dict[str, str]:
        return decrypt_secrets(self.secrets_encrypted)

    def set_secrets(self, secrets: dict[str, str]) -> None:
        self.secrets_encrypted = encrypt_secrets({k: v for k, v in secrets.items() if v})

    def values(self) -> ProviderConfigValues:
        """What the adapter reads (``ProviderConfigValues``), with the secrets decrypted."""
        from channels_app.providers.base import ProviderConfigValues

        return ProviderConfigValues(name=self.provider, options=dict(self.options or {}), secrets=self.secrets(), config_id=self.pk)


class ProviderEvent(models.Model):
    """One receipt a provider sent us (a status callback, an inbound SMS, a tracking event).

    The unique (provider, event_id) is the webhooks' idempotency: a provider that retries
    or a replayed request inserts nothing the second time, so it changes nothing.
    """

    provider = models.CharField(max_length=64)
    event_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=32, help_text="e.g. delivered, bounced, inbound, stop.")
    received_at = models.DateTimeField(default=timezone.now)
    # A plain id, not a foreign key: a receipt for a message deleted since stays recorded.
    message_id = models.BigIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="provider_event_unique_id"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.kind} {self.event_id}"
