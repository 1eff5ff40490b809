"""Runtime state of journeys: who is where in which version, and every step they took.

Imported by orchestrator.models so Django registers them under the orchestrator app.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.models import Customer
from journeys.models import Journey, JourneyVersion


class EnrollmentState(models.TextChoices):
    ACTIVE = "active", "Active"  # due for its next step at due_at
    WAITING = "waiting", "Waiting"  # at a wait node: an event, an engagement or the timeout
    EXITED = "exited", "Exited"


class Phase(models.TextChoices):
    ARRIVE = "arrive", "Arriving at the node"
    RESUME = "resume", "Resuming the node (its timer fired or its event happened)"


class ExitReason(models.TextChoices):
    COMPLETED = "completed", "Completed the journey"
    CONVERTED = "converted", "Converted (goal reached)"
    STOPPED = "stopped", "Journey stopped"
    ERROR = "error", "Error"
    CAPPED = "capped", "Held back by a frequency cap (the send node exits on caps)"


class Enrollment(models.Model):
    """One customer's pass through one journey version."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="enrollments")
    version = models.ForeignKey(JourneyVersion, on_delete=models.PROTECT, related_name="enrollments")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="enrollments")
    state = models.CharField(max_length=16, choices=EnrollmentState.choices, default=EnrollmentState.ACTIVE)
    current_node = models.CharField(max_length=64)
    phase = models.CharField(max_length=8, choices=Phase.choices, default=Phase.ARRIVE)
    # When the engine next looks at this enrollment; null once exited.
    due_at = models.DateTimeField(null=True, blank=True)
    # At a wait-for-event node: the event name that resumes it (engagement waits use
    # wait_message_id instead).
    waiting_for = models.CharField(max_length=200, blank=True)
    wait_message_id = models.BigIntegerField(null=True, blank=True)
    # Entry event (name, properties, id), wait outcome, last message: what templates and
    # later steps read. See orchestrator.engine.context.
    context = models.JSONField(default=dict, blank=True)
    holdout = models.BooleanField(default=False, help_text="Control group: walks the journey, is sent nothing.")
    # Unique per (journey, customer): "once" for once-only journeys, the event or API
    # request id otherwise, so a redelivered trigger never enrols twice.
    trigger_key = models.CharField(max_length=255)
    # Steps taken so far: names each step, so a send's idempotency key is stable when a
    # crashed transaction is replayed.
    step_seq = models.PositiveIntegerField(default=0)
    entered_at = models.DateTimeField(default=timezone.now)
    exited_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=16, choices=ExitReason.choices, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    conversion_value = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    conversion_event_id = models.BigIntegerField(null=True, blank=True)
    # Messages sent in this enrollment before the conversion: [{"message_id", "channel", "at"}].
    touch_sequence = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-entered_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["journey", "customer", "trigger_key"], name="enrollment_unique_trigger"
            ),
        ]
        indexes = [
            # The scheduler's claim: due enrollments oldest first. Exited rows have no due_at.
            models.Index(fields=["due_at"], condition=Q(due_at__isnull=False), name="enrollment_due_idx"),
            models.Index(
                fields=["customer", "waiting_for"],
                condition=Q(state="waiting"),
                name="enrollment_waiting_idx",
            ),
            models.Index(fields=["customer", "journey", "-entered_at"], name="enrollment_customer_idx"),
            # The governor's rivals: a customer's enrollments with a step ahead of them
            # (exited ones, the bulk of a long history, have no due_at).
            models.Index(fields=["customer", "due_at"], condition=Q(due_at__isnull=False), name="enrollment_customer_due_idx"),
            models.Index(fields=["journey", "state"], name="enrollment_journey_state_idx"),
            # The cadence dashboard's upcoming load: live, non-holdout enrollments by due
            # time, covering what it groups by so the 7-day window is an index-only scan.
            models.Index(
                fields=["due_at"],
                include=["version", "current_node", "state"],
                condition=Q(due_at__isnull=False, holdout=False) & ~Q(state="exited"),
                name="enrollment_upcoming_idx",
            ),
            # The cadence dashboard's journey overlap: who is inside which journeys, read
            # index-only in customer order (panels.overlap).
            models.Index(
                fields=["customer", "journey"], condition=Q(state__in=["active", "waiting"]),
                name="enrollment_inside_idx",
            ),
            # Measurement: a journey's conversions, latest first.
            models.Index(
                fields=["journey", "converted_at"], condition=Q(converted_at__isnull=False),
                name="enrollment_conversion_idx",
            ),
            models.Index(
                fields=["wait_message_id"],
                condition=Q(wait_message_id__isnull=False),
                name="enrollment_wait_message_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.journey_id} v{self.version_id} at {self.current_node} ({self.state})"


class StepOutcome(models.TextChoices):
    ENTERED = "entered", "Entered"
    WAITING = "waiting", "Waiting"
    DELAYED = "delayed", "Delayed"
    SENT = "sent", "Message queued"
    HELD_OUT = "held_out", "Held out (control group)"
    SUPPRESSED = "suppressed", "Suppressed"
    DEFERRED = "deferred", "Deferred by the governor"
    FAILED = "failed", "Failed"
    HAPPENED = "happened", "Event happened"
    TIMED_OUT = "timed_out", "Timed out"
    BRANCH = "branch", "Branch taken"
    UPDATED = "updated", "Profile updated"
    CONVERTED = "converted", "Converted"
    EXITED = "exited", "Exited"
    HELD = "held", "Held (journey paused)"


class EnrollmentStep(models.Model):
    """One transition of one enrollment: the step log behind per-node statistics."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="steps")
    # Denormalised so per-node statistics are one indexed GROUP BY.
    journey_id = models.BigIntegerField()
    version_id = models.BigIntegerField()
    node_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=32)
    outcome = models.CharField(max_length=16, choices=StepOutcome.choices)
    port = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["version_id", "node_id", "outcome"], name="step_node_stats_idx"),
            models.Index(fields=["enrollment", "at"], name="step_enrollment_idx"),
            models.Index(fields=["journey_id", "at"], name="step_journey_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.node_id} {self.outcome} at {self.at:%Y-%m-%d %H:%M:%S}"


class SchedulerLease(models.Model):
    """Who runs the engine's poller now: one holder at a time, renewed while it runs.

    The django-q2 schedule starts a poller every minute as a safety net; the lease keeps
    that to one poller, which re-enqueues itself so due steps never wait for the next
    schedule slot.
    """

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder} until {self.expires_at:%H:%M:%S}"
