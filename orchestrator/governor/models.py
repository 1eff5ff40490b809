"""The frequency policy as admins edit it, and the audit trail of every change.

Imported by orchestrator.models so Django registers them under the orchestrator app.
``orchestrator.governor.loading.load_policy`` turns the enabled rows into the frozen
``policy.Policy`` the decision reads; nothing on the send path reads these models directly.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.enums import Channel
from customers.validators import validate_timezone
from orchestrator.governor.policy import MARKETING_OPT_IN_DEFAULT, Scope

MAX_WINDOW_MINUTES = 30 * 24 * 60  # 30 days: the ledger the governor counts over is kept at least this long
CHANNEL_ORDER = list(Channel.values)


class ScopeChoices(models.TextChoices):
    """Choices for ``FrequencyRule.scope``, one per ``policy.Scope`` (a test keeps them in step)."""

    ALL = Scope.ALL.value, "All channels together"
    CHANNEL = Scope.CHANNEL.value, "One channel"
    CHANNELS = Scope.CHANNELS.value, "A set of channels together"
    TAG = Scope.TAG.value, "Journeys carrying a tag"


def _user_fk() -> models.ForeignKey:
    return models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )


class FrequencyRule(models.Model):
    """At most ``max_count`` marketing messages in any rolling window, within a scope."""

    name = models.CharField(max_length=120, unique=True)
    enabled = models.BooleanField(default=True)
    scope = models.CharField(max_length=16, choices=ScopeChoices.choices, default=ScopeChoices.ALL)
    channels = models.JSONField(
        default=list, blank=True,
        help_text="One channel for “one channel”, two or more for “a set of channels”, none otherwise.",
    )
    tag = models.CharField(max_length=64, blank=True, help_text="Only for “journeys carrying a tag”, e.g. growth.")
    max_count = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    window_minutes = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_WINDOW_MINUTES)],
        help_text="Rolling window: 60 = 1 hour, 1440 = 24 hours, 10080 = 7 days; at most 43200 (30 days).",
    )
    counts_transactional = models.BooleanField(
        default=False,
        help_text="Transactional messages are never held back by this rule; tick to have them use up its room.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = _user_fk()
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = _user_fk()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(max_count__gte=1), name="frequency_rule_max_count_at_least_one"),
            models.CheckConstraint(
                condition=Q(window_minutes__gte=1, window_minutes__lte=MAX_WINDOW_MINUTES),
                name="frequency_rule_window_within_30_days",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        self.tag = (self.tag or "").strip()
        channel_error = self._channels_error()
        if channel_error:
            errors["channels"] = channel_error
        if self.scope == Scope.TAG and not self.tag:
            errors["tag"] = "A tag rule needs the tag of the journeys it counts."
        elif self.scope != Scope.TAG and self.tag:
            errors["tag"] = "Only a tag rule has a tag: clear it or choose “journeys carrying a tag”."
        if errors:
            raise ValidationError(errors)

    def _channels_error(self) -> str:
        """What is wrong with ``channels`` for the scope, or ""; normalises them when right."""
        channels = self.channels if self.channels is not None else []
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            return "A list of channel names, e.g. [\"sms\"]."
        unknown = sorted(set(channels) - set(CHANNEL_ORDER))
        if unknown:
            return f"Unknown channel(s): {', '.join(unknown)}. Choose from {', '.join(CHANNEL_ORDER)}."
        distinct = [c for c in CHANNEL_ORDER if c in channels]
        if self.scope == Scope.CHANNEL and len(distinct) != 1:
            return "A one-channel rule needs exactly one channel."
        if self.scope == Scope.CHANNELS and len(distinct) < 2:
            return "A set-of-channels rule needs at least two channels (for one, choose “one channel”)."
        if self.scope in (Scope.ALL, Scope.TAG) and distinct:
            return "This scope counts every channel: leave the channels empty."
        self.channels = distinct
        return ""

    def describe(self) -> str:
        """The rule in words: "at most 3 marketing messages per 24 h across all channels"."""
        noun = "marketing message" if self.max_count == 1 else "marketing messages"
        text = f"at most {self.max_count} {noun} per {window_in_words(self.window_minutes)} {self._scope_in_words()}"
        if self.counts_transactional:
            text += ", transactional ones counted too"
        return text

    def _scope_in_words(self) -> str:
        labels = [Channel(c).label for c in (self.channels or []) if c in CHANNEL_ORDER]
        if self.scope == Scope.CHANNEL and labels:
            return f"on {labels[0]}"
        if self.scope == Scope.CHANNELS and labels:
            listed = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
            return f"across {listed}"
        if self.scope == Scope.TAG:
            return f"in journeys tagged “{self.tag}”"
        return "across all channels"


def window_in_words(minutes: int) -> str:
    if minutes >= 2 * 1440 and minutes % 1440 == 0:
        return f"{minutes // 1440} days"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def default_marketing_opt_in_channels() -> list[str]:
    return [c for c in CHANNEL_ORDER if c in MARKETING_OPT_IN_DEFAULT]


class GovernorSettings(models.Model):
    """The policy's single set of settings: one row, pk=1 (see ``get``)."""

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    min_spacing_minutes = models.PositiveIntegerField(
        default=30, validators=[MaxValueValidator(24 * 60)],
        help_text="Least time between any two marketing messages to the same person; 0 turns it off.",
    )
    fallback_timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone],
        help_text="Quiet hours use this for customers without a time zone (IANA name, e.g. Europe/London).",
    )
    in_app_counts = models.BooleanField(default=False, help_text="Whether in-app messages count toward the caps.")
    defer_horizon_hours = models.PositiveIntegerField(
        default=72, validators=[MinValueValidator(1), MaxValueValidator(30 * 24)],
        help_text="A send deferred further than this past when it was due is suppressed instead.",
    )
    marketing_opt_in_channels = models.JSONField(
        default=default_marketing_opt_in_channels, blank=True,
        help_text=(
            "Channels on which marketing goes only to customers who opted in to it. On the others, "
            "marketing goes unless the customer opted out, unsubscribed, complained or bounced."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = _user_fk()

    class Meta:
        verbose_name = "governor settings"
        verbose_name_plural = "governor settings"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="governor_settings_singleton")]

    def __str__(self) -> str:
        return "Governor settings"

    def clean(self) -> None:
        channels = self.marketing_opt_in_channels if self.marketing_opt_in_channels is not None else []
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise ValidationError({"marketing_opt_in_channels": 'A list of channel names, e.g. ["email", "sms"].'})
        unknown = sorted(set(channels) - set(CHANNEL_ORDER))
        if unknown:
            raise ValidationError({"marketing_opt_in_channels": (
                f"Unknown channel(s): {', '.join(unknown)}. Choose from {', '.join(CHANNEL_ORDER)}."
            )})
        self.marketing_opt_in_channels = [c for c in CHANNEL_ORDER if c in channels]

    @classmethod
    def get(cls) -> GovernorSettings:
        settings_row, _ = cls.objects.get_or_create(pk=cls.SINGLETON_PK)
        return settings_row


class QuietHoursRule(models.Model):
    """No marketing on ``channel`` between ``start`` and ``end``, in the customer's local time.

    ``start`` after ``end`` spans midnight (21:00–08:00).
    """

    channel = models.CharField(max_length=16, choices=Channel.choices, unique=True)
    enabled = models.BooleanField(default=True)
    start = models.TimeField(help_text="Local time quiet hours begin, e.g. 21:00.")
    end = models.TimeField(help_text="Local time they end, e.g. 08:00 (the next morning when before the start).")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = _user_fk()

    class Meta:
        ordering = ["channel"]
        verbose_name = "quiet hours"
        verbose_name_plural = "quiet hours"
        constraints = [models.CheckConstraint(condition=~Q(start=models.F("end")), name="quiet_hours_start_differs_from_end")]

    def __str__(self) -> str:
        return f"Quiet hours {self.get_channel_display()}"

    def clean(self) -> None:
        if self.start is not None and self.start == self.end:
            raise ValidationError({"end": "The end must differ from the start (equal times would be no or all hours)."})

    def describe(self) -> str:
        return f"no marketing {self.get_channel_display()} {self.start:%H:%M}–{self.end:%H:%M}, customer's local time"


class PolicyChange(models.Model):
    """Who changed which policy row, when, and its fields before and after. Never edited."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        CHANGED = "changed", "Changed"
        DELETED = "deleted", "Deleted"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Kept so the trail still names the person after their account is deleted.
    username = models.CharField(max_length=150, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    model_label = models.CharField(max_length=100)  # e.g. "orchestrator.frequencyrule"
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    action = models.CharField(max_length=8, choices=Action.choices)
    before = models.JSONField(null=True, blank=True)  # null when created
    after = models.JSONField(null=True, blank=True)  # null when deleted

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.object_repr} {self.action} by {self.username or 'unknown'}"


class GovernorVerdict(models.Model):
    """A send the governor (or consent, or reachability) did not allow as asked: deferred
    until a moment, or suppressed, with the rule and what it counted. Read by the customer
    timeline, the simulator and the cadence dashboards."""

    class Decision(models.TextChoices):
        DEFER = "defer", "Deferred"
        SUPPRESS = "suppress", "Suppressed"

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="governor_verdicts")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    until = models.DateTimeField(null=True, blank=True)
    rule = models.CharField(max_length=200)
    reason = models.CharField(max_length=500)
    counts = models.JSONField(default=dict, blank=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    category = models.CharField(max_length=16)
    # Plain ids, like the ledger's: verdicts outlive edits of the journeys they name.
    journey_id = models.BigIntegerField(null=True, blank=True)
    enrollment_id = models.BigIntegerField(null=True, blank=True)
    node_id = models.CharField(max_length=64, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True)  # the suppressed message, if one was recorded
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-at"], name="verdict_customer_time_idx"),
            models.Index(fields=["at"], name="verdict_time_idx"),
            # The cadence dashboard's governor panel: a period's verdicts with everything it
            # groups and filters by, read index-only (half the time of the heap on 100k).
            models.Index(
                fields=["at"],
                include=["rule", "channel", "category", "journey_id", "decision", "until"],
                name="verdict_dashboard_idx",
            ),
            models.Index(fields=["journey_id", "at"], name="verdict_journey_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.decision} {self.channel} for {self.customer_id}: {self.rule}"
