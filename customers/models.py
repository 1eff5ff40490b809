"""Who Chorus talks to: customers, how to reach them, what they allow, what they did."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone as dj_timezone

from customers.enums import Category, Channel, ConsentStatus, PushPlatform
from customers.validators import canonical_e164, validate_e164, validate_timezone


class Customer(models.Model):
    external_id = models.CharField(max_length=255, unique=True, help_text="Your system's user id (Segment userId).")
    email = models.EmailField(max_length=254, blank=True, db_index=True)
    phone = models.CharField(max_length=16, blank=True, validators=[validate_e164], help_text="E.164, e.g. +14155550100")
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_timezone], help_text="IANA name, e.g. Europe/Paris")
    locale = models.CharField(max_length=35, blank=True)
    traits = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField(default=dj_timezone.now)
    last_seen_at = models.DateTimeField(default=dj_timezone.now, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_seen_at", "id"]
        indexes = [models.Index(fields=["phone"], name="customer_phone_idx")]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        first = str(self.traits.get("first_name", "") or "").strip()
        last = str(self.traits.get("last_name", "") or "").strip()
        name = f"{first} {last}".strip() or str(self.traits.get("name", "") or "").strip()
        return name or self.email or self.external_id


class ContactPoint(models.Model):
    """One way to reach a customer on one channel: an address, a number, a device."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contact_points")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    address = models.CharField(max_length=2048, help_text="Email address, E.164 number, push endpoint or device token.")
    platform = models.CharField(max_length=16, choices=PushPlatform.choices, blank=True)
    # Web Push subscription keys (p256dh, auth). Not secret from the customer, but kept out of lists.
    keys = models.JSONField(default=dict, blank=True)
    label = models.CharField(max_length=120, blank=True, help_text="e.g. 'Pixel 8', 'Chrome on macOS'")
    enabled = models.BooleanField(default=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_failure_reason = models.CharField(max_length=255, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["channel", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "channel", "address"], name="contact_point_unique_address"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {self.short_address}"

    @property
    def short_address(self) -> str:
        return self.address if len(self.address) <= 48 else f"{self.address[:30]}…{self.address[-12:]}"


class Consent(models.Model):
    """Current consent of one customer for one channel × category. History in ConsentChange."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    category = models.CharField(max_length=16, choices=Category.choices)
    status = models.CharField(max_length=16, choices=ConsentStatus.choices)
    source = models.CharField(max_length=120, help_text="Where the change came from: api, admin, unsubscribe link, STOP reply…")
    changed_at = models.DateTimeField(default=dj_timezone.now)

    class Meta:
        ordering = ["channel", "category"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "channel", "category"], name="consent_unique_channel_category"),
        ]

    def __str__(self) -> str:
        return f"{self.channel}/{self.category}: {self.status}"


class ConsentChange(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consent_changes")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    category = models.CharField(max_length=16, choices=Category.choices)
    previous_status = models.CharField(max_length=16, choices=ConsentStatus.choices, blank=True)
    status = models.CharField(max_length=16, choices=ConsentStatus.choices)
    source = models.CharField(max_length=120)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    changed_at = models.DateTimeField(default=dj_timezone.now)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["customer", "-changed_at"], name="consent_change_customer_idx")]

    def __str__(self) -> str:
        return f"{self.channel}/{self.category}: {self.previous_status or 'not set'} → {self.status or 'not set'}"


class Event(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=200)
    properties = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=dj_timezone.now)
    source = models.CharField(max_length=120, help_text="The API key's source label, or 'demo', 'web'…")
    # NULL, not "", when absent: the unique constraint below only covers present ids.
    source_message_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_message_id"],
                condition=Q(source_message_id__isnull=False),
                name="event_unique_source_message",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "-occurred_at"], name="event_customer_time_idx"),
            models.Index(fields=["customer", "name", "-occurred_at"], name="event_customer_name_idx"),
            models.Index(fields=["name", "-occurred_at"], name="event_name_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class ProfileUpdate(models.Model):
    """One identify call: which traits it set. Deduplicated like events."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="profile_updates")
    changes = models.JSONField(default=dict, blank=True, help_text="Trait and field values this call set.")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=dj_timezone.now)
    source = models.CharField(max_length=120)
    # NULL, not "", when absent: the unique constraint below only covers present ids.
    source_message_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_message_id"],
                condition=Q(source_message_id__isnull=False),
                name="profile_update_unique_source_message",
            ),
        ]
        indexes = [models.Index(fields=["customer", "-occurred_at"], name="profile_update_customer_idx")]

    def __str__(self) -> str:
        return f"identify {', '.join(sorted(self.changes)) or '(no changes)'} @ {self.occurred_at:%Y-%m-%d %H:%M}"


def hash_identifier(kind: str, value: str) -> str:
    """Keyed hash (HMAC-SHA256, 64 hex) of an email, phone or external id, normalised by kind.

    Keyed with settings.SUPPRESSION_HASH_KEY, not SECRET_KEY (which may rotate), because a
    plain hash of a phone number or email is brute-forced in minutes, which would undo
    erasure. Emails compare case-insensitively; phones (E.164) and external ids exactly,
    since external ids "AbC" and "abc" are different customers. The kind is part of the
    message, so an external id that looks like an email never matches that email.
    """
    kind = SuppressedIdentifier.Kind(kind)
    normalised = value.strip()
    if kind == SuppressedIdentifier.Kind.EMAIL:
        normalised = normalised.lower()
    elif kind == SuppressedIdentifier.Kind.PHONE:
        # "+4402079460000" as typed into the admin must match "+442079460000" as ingested.
        try:
            normalised = canonical_e164(normalised)
        except ValidationError:
            pass
    elif kind == SuppressedIdentifier.Kind.EXTERNAL_ID:
        normalised = value
    message = f"{kind.value}:{normalised}".encode()
    return hmac.new(settings.SUPPRESSION_HASH_KEY.encode(), message, hashlib.sha256).hexdigest()


class SuppressedIdentifier(models.Model):
    """A hashed identifier that must not receive a channel's marketing, surviving erasure.

    Erasing a customer deletes their row and everything about them, but keeps this hash,
    so a re-import of the same address is still unsubscribed.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", "Email address"
        PHONE = "phone", "Phone number"
        EXTERNAL_ID = "external_id", "External id"

    identifier_hash = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=ConsentStatus.choices, default=ConsentStatus.UNSUBSCRIBED)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=dj_timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["identifier_hash", "channel"], name="suppression_unique_hash_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.identifier_hash[:12]}… ({self.channel})"


class Segment(models.Model):
    """A saved audience: conditions on traits and event aggregates (see customers.segments)."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    definition = models.JSONField(help_text="Conditions; validated and compiled by customers.segments.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# --- Channel affinity and send-time evidence (orchestrator.intelligence.store) -------------


class ChannelAffinity(models.Model):
    """One customer's recency-weighted evidence on one channel (intelligence.affinity.AffinityState),
    updated in O(1) per send and first engagement. ``mean`` is the posterior mean when it
    was last updated, denormalised so segments and splits can filter on it by index."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="affinities")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    as_of = models.DateTimeField(null=True, blank=True)
    sends = models.FloatField(default=0.0)
    engagements = models.FloatField(default=0.0)
    spread = models.FloatField(default=0.0)
    raw_sends = models.PositiveIntegerField(default=0)
    raw_engagements = models.PositiveIntegerField(default=0)
    first_sent_at = models.DateTimeField(null=True, blank=True)
    mean = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "channel"], name="channel_affinity_customer_channel_uniq")]
        indexes = [models.Index(fields=["channel", "mean"], name="channel_affinity_mean_idx")]

    def __str__(self) -> str:
        return f"{self.customer_id} · {self.channel}: {self.mean:.3f}"


class ActivityProfile(models.Model):
    """When a customer is around: 168 local hour-of-week counts (intelligence.sendtime).
    Kept off the Customer row, which the frequency governor locks at every send."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="activity_profile")
    counts = models.JSONField(default=list)  # 168 numbers; [] before the first event
    total = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.total:g} events"
