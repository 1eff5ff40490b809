"""Models of the shared layer. API keys live here: every app's API is reached through them."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models


class ApiScope(models.TextChoices):
    INGEST = "ingest", "Ingest (identify, track, page, screen, batch)"
    READ = "read", "Read customers, events and messages"
    MANAGE = "manage", "Manage (consent updates, journeys API)"


class ApiKey(models.Model):
    """A hashed API key. The clear key is shown once, when created, and never stored."""

    name = models.CharField(max_length=120, unique=True)
    source = models.CharField(
        max_length=120,
        help_text="Label stored on events this key sends; messageId deduplication is per source.",
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_secret = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, help_text="Any of: ingest, read, manage.")
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Requests per minute; empty uses API_RATE_LIMIT_PER_MINUTE.",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])


# Runtime models of the journey engine, registered under this app.
# Idempotency-Key records of the API's POST endpoints (POST /api/v1/messages).
from orchestrator.api.idempotency import IdempotentRequest  # noqa: E402, F401
from orchestrator.engine.models import (  # noqa: E402, F401
    Enrollment,
    EnrollmentState,
    EnrollmentStep,
    ExitReason,
    Phase,
    SchedulerLease,
    StepOutcome,
)

# The frequency governor's admin-managed policy and its audit trail.
from orchestrator.governor.models import (  # noqa: E402, F401
    FrequencyRule,
    GovernorSettings,
    GovernorVerdict,
    PolicyChange,
    QuietHoursRule,
)

# The population priors and profile of channel affinity and send-time optimisation.
from orchestrator.intelligence.models import PopulationModel  # noqa: E402, F401
