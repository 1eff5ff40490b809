"""Admin for journeys and their versions: the Admin role looks; the services change.

A journey's settings, status and publishing go through ``journeys.services`` (the API
now, the canvas next), so the journey itself is read-only here. A draft version's graph
may be edited, through ``do_update_journey`` like every other graph edit; a published
version never changes (people inside it finish on it), so its page is read-only. Nothing
is deleted here: a journey is archived, and deleting one would take its enrollments and
step logs with it.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from journeys.models import GraphEdit, Journey, JourneyStatus, JourneyVersion
from journeys.services import JourneyInput, do_update_journey
from orchestrator.admin import (
    ChorusModelAdmin,
    ReadOnlyModelAdmin,
    ReadOnlyTabularInline,
    pretty_json,
)

JOURNEY_FIELDS = [
    "name", "description", "status", "live_version", "category", "priority", "tags",
    "goal_event", "goal_filters", "goal_window_seconds", "goal_value_property", "exit_on_conversion",
    "reentry", "reentry_cooldown_seconds", "entry_limit", "entered_count", "holdout_percent", "event_names",
    "owner", "created_by", "updated_by", "created_at", "updated_at", "page_link",
]


def journey_page_link(journey: Journey) -> str:
    return format_html('<a href="{}">Open in Chorus</a>', reverse("journeys:detail", args=[journey.pk]))


class VersionInline(ReadOnlyTabularInline):
    model = JourneyVersion
    fields = ["number", "published_at", "published_by", "created_by", "updated_at"]
    readonly_fields = fields
    ordering = ["-number"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("graph").select_related("published_by", "created_by")


@admin.register(Journey)
class JourneyAdmin(ReadOnlyModelAdmin):
    list_display = ["name", "status", "live_number", "category", "priority", "entered_count", "updated_by", "updated_at"]
    list_filter = ["status", "category"]
    search_fields = ["name", "description"]
    list_select_related = ["live_version", "updated_by"]
    fields = JOURNEY_FIELDS
    readonly_fields = JOURNEY_FIELDS
    inlines = [VersionInline]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("live_version__graph")

    def view_on_site(self, obj: Journey) -> str:
        return reverse("journeys:detail", args=[obj.pk])

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Live version", ordering="live_version__number")
    def live_number(self, obj: Journey) -> str:
        return f"v{obj.live_version.number}" if obj.live_version_id else "—"

    @admin.display(description="Journey page")
    def page_link(self, obj: Journey) -> str:
        return journey_page_link(obj)


class DraftGraphForm(forms.ModelForm):
    class Meta:
        model = JourneyVersion
        fields = ["graph"]

    def clean_graph(self):
        graph = self.cleaned_data["graph"]
        if not isinstance(graph, dict) or not all(isinstance(graph.get(k), list) for k in ("nodes", "edges")):
            raise ValidationError("Must be an object with lists “nodes” and “edges” (see docs/journeys.md).")
        if self.instance.journey.status == JourneyStatus.ARCHIVED:
            raise ValidationError("The journey is archived: its versions cannot be edited.")
        return graph


@admin.register(JourneyVersion)
class JourneyVersionAdmin(ChorusModelAdmin):
    """Drafts: the graph is editable (through do_update_journey). Published: read-only."""

    form = DraftGraphForm
    list_display = ["journey", "number", "state", "published_at", "published_by", "created_by", "updated_at"]
    list_filter = [("published_at", admin.EmptyFieldListFilter), "journey"]
    search_fields = ["journey__name"]
    list_select_related = ["journey", "published_by", "created_by"]
    readonly_fields = ["journey", "number", "state", "published_at", "published_by", "created_by", "created_at", "updated_at", "graph_json", "page_link"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("graph")  # read when a page shows it

    def get_fields(self, request, obj=None):
        graph = ["graph"] if obj is not None and not obj.is_published else ["graph_json"]
        return ["journey", "number", "state", *graph, "published_at", "published_by", "created_by", "created_at", "updated_at", "page_link"]

    def view_on_site(self, obj: JourneyVersion) -> str:
        return f"{reverse('journeys:detail', args=[obj.journey_id])}?version={obj.number}"

    def has_add_permission(self, request, *args) -> bool:
        return False  # drafts are started by the services, on the first graph edit after a publish

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_published:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        do_update_journey(obj.journey, JourneyInput(graph=form.cleaned_data["graph"]), request.user)

    @admin.display(description="State", boolean=False, ordering="published_at")
    def state(self, obj: JourneyVersion) -> str:
        if obj.is_published:
            return "live" if obj.journey.live_version_id == obj.pk else "published"
        return "draft"

    @admin.display(description="Graph")
    def graph_json(self, obj: JourneyVersion) -> str:
        return pretty_json(obj.graph)

    @admin.display(description="Journey page")
    def page_link(self, obj: JourneyVersion) -> str:
        return journey_page_link(obj.journey)


@admin.register(GraphEdit)
class GraphEditAdmin(ReadOnlyModelAdmin):
    """The canvas's undo history of draft graphs (journeys.editor_history): for looking only."""

    list_display = ["journey", "version", "revision", "label", "undone", "user", "at"]
    list_filter = ["undone"]
    search_fields = ["journey__name", "label"]
    list_select_related = ["journey", "version", "user"]
