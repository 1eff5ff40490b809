"""Authoring state changes: create, edit, publish, pause/resume/stop/archive, export/import.

Each ``do_…`` function is one transaction that locks the journey row first, so two editors
(or an edit and a publish) are serialised and a version number is never handed out twice.
A published version is never written: editing the graph of a journey whose versions are
all published starts a new draft from the live graph (docs/journeys.md).

Input arrives as parsed JSON (API bodies, export files) and is validated here, every
problem named by field, before anything is written. Drafts may hold an invalid graph (work
in progress) as long as it has the right shape; publishing checks the whole graph, and
the channel content rules of every send node (journeys.content): their errors block it.

journeys does not import orchestrator: what the engine does when a journey goes live or
stops is composed in ``orchestrator.engine.lifecycle``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from channels_app.content_rules_loading import load_rules
from customers.enums import Category
from journeys import content
from journeys import editor_history as history
from journeys import graph as graphs
from journeys.filters import validate_filters
from journeys.models import Journey, JourneyStatus, JourneyVersion, ReentryPolicy

EXPORT_FORMAT = 1  # the "chorus_journey" key of an export document
MAX_TAGS = 20
MAX_TAG_LENGTH = 50
SEGMENT_REENTRY = "segment entry re-enters once or after a cooldown, never always"


class _Unset(Enum):
    UNSET = "unset"


# Marks a JourneyInput field that was not given: None is a real value (entry_limit).
UNSET = _Unset.UNSET

FieldErrors = list[tuple[str | None, str]]


class JourneyInputError(ValueError):
    """Invalid input; ``fields`` names each problem: ``[(field, reason), …]``."""

    def __init__(self, fields: FieldErrors):
        self.fields = list(fields)
        super().__init__("; ".join(f"{field or 'body'}: {reason}" for field, reason in self.fields))


class JourneyStateError(ValueError):
    """The journey's status does not allow the change (pausing a draft, editing an archive)."""

    def __init__(self, message: str, status: str):
        self.status = status
        super().__init__(message)


class JourneyAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    ARCHIVE = "archive"


# Journey settings an author may set, in export order. The graph lives on versions.
SETTINGS = (
    "name", "description", "category", "priority", "tags",
    "goal_event", "goal_filters", "goal_window_seconds", "goal_value_property",
    "exit_on_conversion", "reentry", "reentry_cooldown_seconds", "entry_limit",
    "holdout_percent",
)


@dataclass(frozen=True)
class JourneyInput:
    """Settings and/or a draft graph to apply; a field left UNSET is not changed.

    Values are untrusted parsed JSON: the services validate them, so any mapping (an API
    body, an export file) can become one with ``from_mapping``.
    """

    name: Any = UNSET
    description: Any = UNSET
    category: Any = UNSET
    priority: Any = UNSET
    tags: Any = UNSET
    goal_event: Any = UNSET
    goal_filters: Any = UNSET
    goal_window_seconds: Any = UNSET
    goal_value_property: Any = UNSET
    exit_on_conversion: Any = UNSET
    reentry: Any = UNSET
    reentry_cooldown_seconds: Any = UNSET
    entry_limit: Any = UNSET
    holdout_percent: Any = UNSET
    graph: Any = UNSET

    @classmethod
    def from_mapping(cls, data: Any, *, ignore: frozenset[str] = frozenset()) -> JourneyInput:
        """From a JSON object; unknown keys are errors, so a misspelt setting is not lost."""
        if not isinstance(data, Mapping):
            raise JourneyInputError([(None, "must be a JSON object")])
        known = {f.name for f in fields(cls)}
        unknown = [key for key in data if key not in known and key not in ignore]
        if unknown:
            raise JourneyInputError([(str(key), "is not a journey setting") for key in unknown])
        return cls(**{key: value for key, value in data.items() if key in known})

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not UNSET}


def empty_graph() -> dict:
    """A new journey's graph: one entry node, not yet configured."""
    return {"nodes": [{"id": "entry", "kind": "entry", "config": {}, "position": {"x": 40, "y": 40}}], "edges": []}


# --- Field validation ---------------------------------------------------------------------

Check = Callable[[str, Any], FieldErrors]


def _text(max_length: int, *, required: bool = False) -> Check:
    def check(field: str, value: Any) -> FieldErrors:
        if not isinstance(value, str):
            return [(field, "must be text")]
        if required and not value.strip():
            return [(field, "is required")]
        if len(value) > max_length:
            return [(field, f"must be at most {max_length} characters")]
        return []

    return check


def _whole(low: int, high: int | None = None, *, nullable: bool = False) -> Check:
    def check(field: str, value: Any) -> FieldErrors:
        if value is None and nullable:
            return []
        if not isinstance(value, int) or isinstance(value, bool):  # JSON true is not 1
            return [(field, "must be a whole number")]
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            return [(field, f"must be {bounds}")]
        return []

    return check


def _choice(choices: type[models.TextChoices]) -> Check:
    def check(field: str, value: Any) -> FieldErrors:
        if value not in choices.values:
            return [(field, f"must be one of: {', '.join(choices.values)}")]
        return []

    return check


def _boolean(field: str, value: Any) -> FieldErrors:
    return [] if isinstance(value, bool) else [(field, "must be true or false")]


def _tags(field: str, value: Any) -> FieldErrors:
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        return [(field, f"must be a list of at most {MAX_TAGS} labels")]
    return [
        (f"{field}.{index}", f"must be text of 1 to {MAX_TAG_LENGTH} characters")
        for index, tag in enumerate(value)
        if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG_LENGTH
    ]


def _goal_filters(field: str, value: Any) -> FieldErrors:
    return list(validate_filters(value, field))


def _graph_shape(field: str, value: Any) -> FieldErrors:
    """Only the shape: a draft may be unfinished, publishing checks the rest."""
    if not isinstance(value, dict):
        return [(field, "must be an object with lists nodes and edges")]
    return [
        (f"{field}.{key}", "must be a list") for key in ("nodes", "edges") if not isinstance(value.get(key), list)
    ]


_CHECKS: dict[str, Check] = {
    "name": _text(200, required=True),
    "description": _text(10_000),
    "category": _choice(Category),
    "priority": _whole(1, 10),
    "tags": _tags,
    "goal_event": _text(200),
    "goal_filters": _goal_filters,
    "goal_window_seconds": _whole(1),
    "goal_value_property": _text(100),
    "exit_on_conversion": _boolean,
    "reentry": _choice(ReentryPolicy),
    "reentry_cooldown_seconds": _whole(0),
    "entry_limit": _whole(1, nullable=True),
    "holdout_percent": _whole(0, 90),
    "graph": _graph_shape,
}


def _field_errors(given: dict[str, Any]) -> FieldErrors:
    errors: FieldErrors = []
    for field, value in given.items():
        errors += _CHECKS[field](field, value)
    return errors


def _rule_errors(settings: dict[str, Any], live_graph: dict | None) -> FieldErrors:
    """Rules across fields, on the settings as they would be after the change."""
    errors: FieldErrors = []
    if settings["reentry"] == ReentryPolicy.COOLDOWN and not settings["reentry_cooldown_seconds"]:
        errors.append(("reentry_cooldown_seconds", "must be more than 0 when reentry is cooldown"))
    if settings["goal_filters"] and not settings["goal_event"]:
        errors.append(("goal_filters", "need a goal_event to filter"))
    # Settings apply to the live version at once, so its entry rule holds now, not at publish.
    if settings["reentry"] == ReentryPolicy.ALWAYS and live_graph is not None and is_segment_entry(live_graph):
        errors.append(("reentry", f"the live version's {SEGMENT_REENTRY}"))
    return errors


def _name_errors(name: str, journey_id: int | None) -> FieldErrors:
    if Journey.objects.filter(name=name).exclude(pk=journey_id).exists():
        return [("name", f"another journey is already called {name!r}")]
    return []


def _validated(given: dict[str, Any], journey: Journey | None) -> dict[str, Any]:
    """The given fields, normalised; raises JourneyInputError naming every problem."""
    errors = _field_errors(given)
    if not errors:
        if "name" in given:
            given = given | {"name": given["name"].strip()}
            errors += _name_errors(given["name"], journey.pk if journey else None)
        live_graph = journey.live_version.graph if journey and journey.live_version_id else None
        errors += _rule_errors(_current_settings(journey) | given, live_graph)
    if errors:
        raise JourneyInputError(errors)
    return given


def _current_settings(journey: Journey | None) -> dict[str, Any]:
    if journey is None:
        return {name: Journey._meta.get_field(name).get_default() for name in SETTINGS}
    return {name: getattr(journey, name) for name in SETTINGS}


# --- Graph helpers ------------------------------------------------------------------------


def is_segment_entry(graph: dict) -> bool:
    entry = graphs.entry_node(graph)
    config = (entry or {}).get("config")
    return isinstance(config, dict) and config.get("trigger") == "segment"


def _draft(journey: Journey) -> JourneyVersion | None:
    return journey.versions.filter(published_at__isnull=True).first()


def _latest(journey: Journey) -> JourneyVersion | None:
    return journey.versions.order_by("-number").first()


def write_draft_graph(journey: Journey, graph: dict, user, label: str = "Edited the graph") -> bool:
    """Put ``graph`` in the draft, starting a new draft when every version is published.

    Every write bumps the journey's graph revision and is recorded for undo (the caller
    holds the row lock and saves the journey). False when nothing changed."""
    draft = _draft(journey)
    if draft is None:
        latest = _latest(journey)
        source = journey.live_version or latest
        if source is not None and source.graph == graph:
            return False  # nothing changed: no empty draft to publish by mistake
        before = copy.deepcopy(source.graph) if source is not None else empty_graph()
        draft = JourneyVersion(journey=journey, number=(latest.number if latest else 0) + 1, created_by=user)
    elif draft.graph == graph:
        return False
    else:
        before = copy.deepcopy(draft.graph)
    draft.graph = copy.deepcopy(graph)
    draft.save()
    history.record_graph_write(journey, draft, before, user, label)
    return True


def _listened_event_names(journey: Journey) -> list[str]:
    """Every event a published version (people may still be inside any) or the goal waits on."""
    names: set[str] = set()
    for graph in journey.versions.filter(published_at__isnull=False).values_list("graph", flat=True):
        names |= graphs.event_names(graph)
    if journey.goal_event:
        names.add(journey.goal_event)
    return sorted(names)


def _lock(journey: Journey) -> None:
    """Lock the row and reload it in place, so checks see the state no one else can change."""
    journey.refresh_from_db(from_queryset=Journey.objects.select_for_update())


# --- Create and edit ----------------------------------------------------------------------


def do_create_journey(data: JourneyInput, user) -> Journey:
    """A new draft journey with version 1: the given graph, or a lone entry node."""
    given = data.given()
    if "name" not in given:
        raise JourneyInputError([("name", "is required")])
    try:
        with transaction.atomic():
            given = _validated(given, None)
            graph = given.pop("graph", None) or empty_graph()
            journey = Journey.objects.create(**given, owner=user, created_by=user, updated_by=user)
            JourneyVersion.objects.create(journey=journey, number=1, graph=copy.deepcopy(graph), created_by=user)
    except IntegrityError:
        # Another request took the name between the check and the insert.
        if Journey.objects.filter(name=given["name"]).exists():
            raise JourneyInputError(_name_errors(given["name"], None)) from None
        raise
    return journey


def do_update_journey(journey: Journey, data: JourneyInput, user, *, label: str = "Edited the graph") -> Journey:
    """Change settings and/or the draft graph; a published version is never modified.

    A graph write bumps the revision and is recorded for undo under ``label``."""
    with transaction.atomic():
        _lock(journey)
        if journey.status == JourneyStatus.ARCHIVED:
            raise JourneyStateError("An archived journey cannot be edited.", journey.status)
        given = _validated(data.given(), journey)
        graph = given.pop("graph", UNSET)
        if graph is not UNSET:
            write_draft_graph(journey, graph, user, label)
        for field, value in given.items():
            setattr(journey, field, value)
        if "goal_event" in given and journey.live_version_id:
            journey.event_names = _listened_event_names(journey)
        journey.updated_by = user
        journey.save()
    return journey


# --- Publish ------------------------------------------------------------------------------


def _publish_problems(journey: Journey, graph: dict) -> list[graphs.Problem]:
    problems = list(graphs.validate_graph(graph, segment_ids=graphs.existing_segment_ids(graph)))
    if journey.reentry == ReentryPolicy.ALWAYS and is_segment_entry(graph):
        entry = graphs.entry_node(graph) or {}
        reason = f"a {SEGMENT_REENTRY}: set the journey's reentry to once or cooldown"
        problems.append(graphs.Problem(node_id=entry.get("id"), field="config.trigger", message=reason))
    # Content errors block publishing; warnings are only reported (journey_content_problems).
    return problems + content.publish_problems(graph, journey.category, load_rules())


def journey_content_problems(journey: Journey, graph: dict | None) -> list[content.NodeContentProblem]:
    """The content rules on a version's send nodes, as the journey's category makes them.

    What saving a draft reports (saving is never refused for them: a draft may be unfinished)."""
    return content.content_problems(graph, journey.category, load_rules()) if graph else []


def _publishable_draft(journey: Journey) -> JourneyVersion:
    if journey.status in (JourneyStatus.STOPPED, JourneyStatus.ARCHIVED):
        raise JourneyStateError(f"{_a(journey.status).capitalize()} journey cannot be published.", journey.status)
    draft = _draft(journey)
    if draft is None:
        raise JourneyStateError("There is no draft to publish: every version is already published.", journey.status)
    problems = _publish_problems(journey, draft.graph)
    if problems:
        raise graphs.InvalidGraph(problems)
    return draft


def do_publish_journey(journey: Journey, user, *, now: datetime | None = None) -> JourneyVersion:
    """Publish the draft: it becomes the version new entrants enter.

    Raises InvalidGraph with every problem, or JourneyStateError when the journey is
    stopped or archived, or has no draft. A draft journey goes live; a paused one stays
    paused (resuming is a separate decision).
    """
    with transaction.atomic():
        _lock(journey)
        draft = _publishable_draft(journey)
        draft.published_at, draft.published_by = now or timezone.now(), user
        draft.save(update_fields=["published_at", "published_by", "updated_at"])
        journey.live_version = draft
        if journey.status == JourneyStatus.DRAFT:
            journey.status = JourneyStatus.LIVE
        journey.event_names = _listened_event_names(journey)
        journey.updated_by = user
        journey.save()
    draft.journey = journey
    return draft


# --- Status -------------------------------------------------------------------------------

_TRANSITIONS: dict[JourneyAction, tuple[frozenset[str], str]] = {
    JourneyAction.PAUSE: (frozenset({JourneyStatus.LIVE}), JourneyStatus.PAUSED),
    JourneyAction.RESUME: (frozenset({JourneyStatus.PAUSED}), JourneyStatus.LIVE),
    JourneyAction.STOP: (frozenset({JourneyStatus.LIVE, JourneyStatus.PAUSED}), JourneyStatus.STOPPED),
    JourneyAction.ARCHIVE: (frozenset({JourneyStatus.DRAFT, JourneyStatus.STOPPED}), JourneyStatus.ARCHIVED),
}

_PAST = {
    JourneyAction.PAUSE: "paused", JourneyAction.RESUME: "resumed",
    JourneyAction.STOP: "stopped", JourneyAction.ARCHIVE: "archived",
}


def _a(status: str) -> str:
    return f"an {status}" if status[0] in "aeiou" else f"a {status}"


def _illegal(action: JourneyAction, status: str) -> str:
    if action == JourneyAction.ARCHIVE and status in (JourneyStatus.LIVE, JourneyStatus.PAUSED):
        return f"Cannot archive {_a(status)} journey: stop it first."
    allowed, _ = _TRANSITIONS[action]
    states = " or ".join(sorted(allowed))
    return f"Cannot {action} {_a(status)} journey: only {_a(states)} journey can be {_PAST[action]}."


def do_set_journey_status(journey: Journey, action: JourneyAction | str, user) -> Journey:
    """Pause, resume, stop or archive; raises JourneyStateError naming the current status."""
    try:
        action = JourneyAction(action)
    except ValueError:
        raise JourneyInputError([("action", f"must be one of: {', '.join(JourneyAction)}")]) from None
    with transaction.atomic():
        _lock(journey)
        allowed, target = _TRANSITIONS[action]
        if journey.status not in allowed:
            raise JourneyStateError(_illegal(action, journey.status), journey.status)
        journey.status = target
        journey.updated_by = user
        journey.save(update_fields=["status", "updated_by", "updated_at"])
    return journey


# --- Export and import --------------------------------------------------------------------


def export_journey(journey: Journey) -> dict:
    """One JSON document with the settings and the draft graph (else the live one)."""
    version = _draft(journey) or journey.live_version or _latest(journey)
    return {
        "chorus_journey": EXPORT_FORMAT,
        **{name: copy.deepcopy(getattr(journey, name)) for name in SETTINGS},
        "graph": copy.deepcopy(version.graph) if version else empty_graph(),
        "version": version.number if version else None,
    }


def _document_input(document: Any) -> JourneyInput:
    if not isinstance(document, Mapping):
        raise JourneyInputError([(None, "must be a JSON object (a Chorus journey export)")])
    if document.get("chorus_journey") != EXPORT_FORMAT:
        raise JourneyInputError([("chorus_journey", f"must be {EXPORT_FORMAT}: this is not a Chorus journey export")])
    data = JourneyInput.from_mapping(document, ignore=frozenset({"chorus_journey", "version"}))
    missing = [(field, "is required") for field in ("name", "graph") if getattr(data, field) is UNSET]
    if missing:
        raise JourneyInputError(missing)
    return data


def do_import_journey(document: Any, user) -> Journey:
    """A new journey from an export, or, when one has that name, an edit of its draft."""
    data = _document_input(document)
    with transaction.atomic():
        name = data.name.strip() if isinstance(data.name, str) else data.name
        existing = Journey.objects.filter(name=name).first() if isinstance(name, str) else None
        if existing is None:
            return do_create_journey(data, user)
        return do_update_journey(existing, data, user)
