"""Serializers of the journeys API: representations out, and the documented request bodies.

Journey settings and graphs are validated by journeys.services (the same rules for the API,
the canvas and imported files), so the write serializers here document the bodies for the
OpenAPI schema; a test keeps their fields in step with ``JourneyInput``. The trigger body is
API-only and is validated here.
"""

from __future__ import annotations

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from customers.api.serializers import PageQuerySerializer, paginated
from customers.enums import Category
from journeys.filters import OPS
from journeys.models import Journey, JourneyStatus, JourneyVersion, ReentryPolicy
from journeys.nodes import NodeKind
from journeys.services import EXPORT_FORMAT, journey_content_problems
from orchestrator.schema import EnumChoiceField

# --- Graph (documentation of docs/journeys.md's format) -------------------------------------


# Choices classes mirroring the journeys vocabularies, so EnumChoiceField documents them as
# named components (NodeKindEnum, FilterOpEnum) that no other API's "kind" or "op" collides with.
NodeKindChoices = models.TextChoices("NodeKind", [(kind.name, kind.value) for kind in NodeKind])
FilterOpChoices = models.TextChoices("FilterOp", [(op.upper(), op) for op in OPS])


class GraphNodeSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=64, help_text="1–64 characters [A-Za-z0-9_-], unique in the graph.")
    kind = EnumChoiceField(NodeKindChoices, help_text="See docs/journeys.md for each kind's config.")
    label = serializers.CharField(required=False, max_length=200)
    config = serializers.DictField(help_text="The kind's settings.")
    position = serializers.DictField(
        child=serializers.FloatField(), required=False, help_text="Canvas position {x, y}; ignored by the engine."
    )


# "from" is a Python keyword, so the edge's fields are given as a dict.
GraphEdgeSerializer = type(
    "GraphEdgeSerializer",
    (serializers.Serializer,),
    {
        "from": serializers.CharField(help_text="Id of the node the edge leaves."),
        "port": serializers.CharField(help_text="The port of that node it leaves from."),
        "to": serializers.CharField(help_text="Id of the node it leads to."),
    },
)


class GraphSerializer(serializers.Serializer):
    nodes = GraphNodeSerializer(many=True)
    edges = GraphEdgeSerializer(many=True)


class PropertyFilterSerializer(serializers.Serializer):
    property = serializers.CharField(help_text="Dotted path into the event's properties.")
    op = EnumChoiceField(FilterOpChoices)
    value = serializers.JSONField(required=False, help_text="Not used with exists / not_exists; a list with in.")


# --- Request bodies -------------------------------------------------------------------------


class JourneyWriteSerializer(serializers.Serializer):
    """A journey's settings and draft graph; on PATCH, only the fields given change."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    category = EnumChoiceField(Category, required=False)
    priority = serializers.IntegerField(
        required=False, min_value=1, max_value=10,
        help_text="1 (lowest) to 10 (highest): who wins the last slot under a frequency cap.",
    )
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=20)
    goal_event = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Event that counts as a conversion."
    )
    goal_filters = PropertyFilterSerializer(many=True, required=False)
    goal_window_seconds = serializers.IntegerField(required=False, min_value=1)
    goal_value_property = serializers.CharField(required=False, allow_blank=True, max_length=100)
    exit_on_conversion = serializers.BooleanField(required=False)
    reentry = EnumChoiceField(ReentryPolicy, required=False)
    reentry_cooldown_seconds = serializers.IntegerField(
        required=False, min_value=0, help_text="Required (> 0) when reentry is cooldown."
    )
    entry_limit = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="Most customers ever entered; null for no limit."
    )
    holdout_percent = serializers.IntegerField(required=False, min_value=0, max_value=90)
    graph = GraphSerializer(
        required=False,
        help_text="The draft graph. Editing a journey whose versions are all published starts a new draft.",
    )


class JourneyDocumentSerializer(JourneyWriteSerializer):
    """An export file: every setting and the graph, importable into any Chorus."""

    chorus_journey = serializers.IntegerField(help_text=f"The export format; always {EXPORT_FORMAT}.")
    graph = GraphSerializer()
    version = serializers.IntegerField(
        required=False, allow_null=True, help_text="The version the graph was exported from; ignored on import."
    )


class TriggerRequestSerializer(serializers.Serializer):
    userId = serializers.CharField(max_length=255, help_text="The customer's external id.")
    properties = serializers.DictField(
        required=False, default=dict, help_text="Seen by templates as `trigger`."
    )
    messageId = serializers.CharField(
        required=False, max_length=200,
        help_text="Idempotency key: a retried request with the same messageId never enters twice.",
    )


class JourneyListQuerySerializer(PageQuerySerializer):
    status = EnumChoiceField(JourneyStatus, required=False, help_text="Only journeys in this status.")


# --- Representations ------------------------------------------------------------------------

_SETTINGS_FIELDS = [
    "name", "description", "category", "priority", "tags",
    "goal_event", "goal_filters", "goal_window_seconds", "goal_value_property",
    "exit_on_conversion", "reentry", "reentry_cooldown_seconds", "entry_limit", "holdout_percent",
]


class JourneySummarySerializer(serializers.ModelSerializer):
    status = EnumChoiceField(JourneyStatus, read_only=True)
    category = EnumChoiceField(Category, read_only=True)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    live_version = serializers.IntegerField(
        source="live_version.number", allow_null=True, read_only=True,
        help_text="Number of the version new entrants enter.",
    )
    draft_version = serializers.IntegerField(
        source="draft_number", allow_null=True, read_only=True, help_text="Number of the unpublished draft, if any."
    )

    class Meta:
        model = Journey
        fields = [
            "id", "name", "description", "status", "category", "priority", "tags",
            "live_version", "draft_version", "entered_count", "created_at", "updated_at",
        ]
        read_only_fields = fields


class ContentProblemSerializer(serializers.Serializer):
    node = serializers.CharField(help_text="The send node's id.")
    field = serializers.CharField(help_text="The channel's field, e.g. sms.body; the channel alone (in_app) for where the node is.")
    severity = serializers.ChoiceField(choices=["error", "warning"], help_text="Errors block publishing; warnings do not.")
    message = serializers.CharField()


class JourneyDetailSerializer(JourneySummarySerializer):
    reentry = EnumChoiceField(ReentryPolicy, read_only=True)
    goal_filters = PropertyFilterSerializer(many=True, read_only=True)
    event_names = serializers.ListField(
        child=serializers.CharField(), read_only=True,
        help_text="Events any published version (or the goal) listens for.",
    )
    graph = serializers.SerializerMethodField(help_text="The draft's graph, or the live one when there is no draft.")
    graph_version = serializers.SerializerMethodField(help_text="The number of the version `graph` is from.")
    content_problems = serializers.SerializerMethodField(
        help_text="The channel content rules' findings on `graph`'s send nodes (docs/journeys.md, Content rules).",
    )

    class Meta:
        model = Journey
        fields = [
            "id", *_SETTINGS_FIELDS, "status", "live_version", "draft_version",
            "graph_version", "graph", "content_problems", "event_names", "entered_count", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def _shown(self, journey: Journey) -> JourneyVersion | None:
        # The view puts the draft (or None) on the journey: no query per field.
        return journey.shown_version

    @extend_schema_field(GraphSerializer)
    def get_graph(self, journey: Journey) -> dict | None:
        version = self._shown(journey)
        return version.graph if version else None

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_graph_version(self, journey: Journey) -> int | None:
        version = self._shown(journey)
        return version.number if version else None

    @extend_schema_field(ContentProblemSerializer(many=True))
    def get_content_problems(self, journey: Journey) -> list[dict]:
        version = self._shown(journey)
        return [p.to_json() for p in journey_content_problems(journey, version.graph if version else None)]


class JourneyVersionSerializer(serializers.ModelSerializer):
    published = serializers.BooleanField(source="is_published", read_only=True)
    published_by = serializers.SerializerMethodField(help_text="Username of who published it.")
    graph = GraphSerializer(read_only=True)

    class Meta:
        model = JourneyVersion
        fields = ["number", "published", "published_at", "published_by", "created_at", "updated_at", "graph"]
        read_only_fields = fields

    def get_published_by(self, version: JourneyVersion) -> str | None:
        return version.published_by.get_username() if version.published_by_id else None


class TriggerResponseSerializer(serializers.Serializer):
    entered = serializers.BooleanField()
    enrollment_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(help_text="Why the customer did or did not enter.")


class GraphProblemSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="Where in the graph, e.g. nodes.sms.config.content.sms.body.")
    reason = serializers.CharField()
    node = serializers.CharField(allow_null=True, help_text="The node's id; null for graph-wide problems.")


class GraphErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="invalid_graph")
    message = serializers.CharField()
    fields = GraphProblemSerializer(many=True)


class GraphErrorResponseSerializer(serializers.Serializer):
    error = GraphErrorDetailSerializer()


PaginatedJourneySummarySerializer = paginated(JourneySummarySerializer, "PaginatedJourneyList")
