"""What marketers author: journeys and the immutable published versions of their graphs.

A journey is the stable identity (name, goal, entry rules, status); its behaviour is a
JourneyVersion's graph. A version is a draft until published, and never changes after:
people inside a journey finish on the version they entered, so editing a live journey
makes a new draft, and publishing that draft moves only new entrants to it.

The graph format and every node kind's config are documented in docs/journeys.md and
validated by journeys.graph / journeys.nodes.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from customers.enums import Category


class JourneyStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    LIVE = "live", "Live"
    PAUSED = "paused", "Paused"
    STOPPED = "stopped", "Stopped"
    ARCHIVED = "archived", "Archived"


class ReentryPolicy(models.TextChoices):
    ONCE = "once", "Once per customer"
    COOLDOWN = "cooldown", "Again after a cool-down"
    ALWAYS = "always", "Every time the trigger happens"


class Journey(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=JourneyStatus.choices, default=JourneyStatus.DRAFT)
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.MARKETING)
    # Higher wins when journeys compete for the last slot under a frequency cap.
    priority = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="1 (lowest) to 10 (highest): who wins the last slot under a frequency cap.",
    )
    tags = models.JSONField(default=list, blank=True, help_text="Team or programme labels, e.g. ['lifecycle'].")
    # Conversion goal: an event (with property filters) within a window after entry.
    goal_event = models.CharField(max_length=200, blank=True)
    goal_filters = models.JSONField(default=list, blank=True)
    goal_window_seconds = models.PositiveIntegerField(default=7 * 24 * 3600)
    goal_value_property = models.CharField(
        max_length=100, blank=True, default="revenue",
        help_text="Property of the goal event that holds its value (revenue).",
    )
    exit_on_conversion = models.BooleanField(default=True)
    reentry = models.CharField(max_length=16, choices=ReentryPolicy.choices, default=ReentryPolicy.ONCE)
    reentry_cooldown_seconds = models.PositiveIntegerField(default=0)
    entry_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Most customers ever entered; empty for no limit.")
    holdout_percent = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(90)],
        help_text="Share of entrants kept as a control group: they enter but are sent nothing.",
    )
    # The version new entrants enter; null until first published.
    live_version = models.ForeignKey(
        "JourneyVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Counted in the database (F()), so the entry limit holds under concurrent entries.
    entered_count = models.PositiveIntegerField(default=0)
    # Bumped by every write of the draft graph (services.write_draft_graph): an editor's
    # change names the revision it was based on, so two editors never silently overwrite.
    graph_revision = models.PositiveIntegerField(default=0)
    # Event names this journey listens for in any version people may still be inside
    # (entry, waits, goal): ingestion asks only about these. Set on publish.
    event_names = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["status"], name="journey_status_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=1) & Q(priority__lte=10), name="journey_priority_range"
            ),
            models.CheckConstraint(condition=Q(holdout_percent__lte=90), name="journey_holdout_range"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def accepts_entries(self) -> bool:
        return self.status == JourneyStatus.LIVE and self.live_version_id is not None


class VersionImmutable(ValidationError):
    """A published version's graph was about to change."""


class JourneyVersion(models.Model):
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    graph = models.JSONField(default=dict, help_text="Nodes and edges; see docs/journeys.md.")
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["journey", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["journey", "number"], name="journey_version_unique_number"),
            # At most one draft per journey: editing always continues that draft.
            models.UniqueConstraint(
                fields=["journey"], condition=Q(published_at__isnull=True), name="journey_one_draft"
            ),
        ]

    def __str__(self) -> str:
        state = "published" if self.is_published else "draft"
        return f"{self.journey} v{self.number} ({state})"

    def save(self, *args, **kwargs):
        # Belt and braces: the services never write a published graph, and this refuses it.
        if self.pk is not None:
            stored = JourneyVersion.objects.filter(pk=self.pk).values("published_at", "graph").first()
            if stored and stored["published_at"] is not None and stored["graph"] != self.graph:
                raise VersionImmutable(f"version {self.number} of {self.journey_id} is published and immutable")
        super().save(*args, **kwargs)

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    def node(self, node_id: str) -> dict | None:
        for node in self.graph.get("nodes", []):
            if node.get("id") == node_id:
                return node
        return None


class GraphEdit(models.Model):
    """One write of a draft's graph, before and after: the editor's undo and redo history.

    Undo writes ``before`` back and marks the edit undone; redo writes ``after`` again. A
    new edit forgets the undone ones (as every editor does), and only the newest
    ``HISTORY_LENGTH`` are kept. Edits belong to one draft: publishing ends its history.
    """

    HISTORY_LENGTH = 30

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="graph_edits")
    version = models.ForeignKey(JourneyVersion, on_delete=models.CASCADE, related_name="graph_edits")
    revision = models.PositiveIntegerField(help_text="The journey's graph revision this edit produced.")
    label = models.CharField(max_length=200)
    before = models.JSONField()
    after = models.JSONField()
    undone = models.BooleanField(default=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["version", "id"]
        indexes = [models.Index(fields=["version", "undone"], name="graph_edit_version_idx")]

    def __str__(self) -> str:
        return f"{self.label} (r{self.revision})"
