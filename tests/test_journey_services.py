"""Authoring journeys: create, edit, publish, status changes, export and import (journeys.services)."""

from __future__ import annotations

import copy
from dataclasses import fields
from datetime import UTC, datetime

import pytest

from customers.models import Segment
from journeys.graph import InvalidGraph
from journeys.models import Journey, JourneyStatus, JourneyVersion
from journeys.services import (
    SETTINGS,
    JourneyAction,
    JourneyInput,
    JourneyInputError,
    JourneyStateError,
    do_create_journey,
    do_import_journey,
    do_publish_journey,
    do_set_journey_status,
    do_update_journey,
    empty_graph,
    export_journey,
)
from orchestrator.roles import Role

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def api_graph(body: str = "Hello {{ customer.first_name }}") -> dict:
    return {
        "nodes": [
            {"id": "entry", "kind": "entry", "config": {"trigger": "api"}, "position": {"x": 0, "y": 0}},
            {"id": "sms", "kind": "send", "config": {"channel": "sms", "content": {"sms": {"body": body}}}},
            {"id": "done", "kind": "exit", "config": {}},
        ],
        "edges": [{"from": "entry", "port": "out", "to": "sms"}, {"from": "sms", "port": "out", "to": "done"}],
    }


def cart_graph() -> dict:
    """The example of docs/journeys.md: listens for Cart Abandoned and Order Completed."""
    return {
        "nodes": [
            {"id": "entry", "kind": "entry", "config": {"trigger": "event", "event": "Cart Abandoned", "filters": []}},
            {"id": "wait45", "kind": "delay", "config": {"mode": "duration", "amount": 45, "unit": "minutes"}},
            {"id": "bought", "kind": "wait_for_event", "config": {
                "mode": "event", "event": "Order Completed", "timeout": {"amount": 2, "unit": "days"}}},
            {"id": "done", "kind": "exit", "config": {}},
        ],
        "edges": [
            {"from": "entry", "port": "out", "to": "wait45"},
            {"from": "wait45", "port": "out", "to": "bought"},
            {"from": "bought", "port": "happened", "to": "done"},
            {"from": "bought", "port": "timed_out", "to": "done"},
        ],
    }


def segment_graph(segment_id: int) -> dict:
    graph = api_graph()
    graph["nodes"][0]["config"] = {"trigger": "segment", "segment_id": segment_id}
    return graph


@pytest.fixture
def marketer(make_user):
    return make_user(Role.MARKETER)


def create(user, name: str = "Welcome", **settings) -> Journey:
    return do_create_journey(JourneyInput(name=name, **settings), user)


def live(user, graph: dict | None = None, **settings) -> Journey:
    journey = create(user, graph=graph or api_graph(), **settings)
    do_publish_journey(journey, user, now=T0)
    return journey


def versions(journey: Journey) -> list[tuple[int, bool, dict]]:
    rows = JourneyVersion.objects.filter(journey=journey).order_by("number")
    return [(v.number, v.is_published, v.graph) for v in rows]


def errors_of(excinfo) -> dict:
    return dict(excinfo.value.fields)


# --- Create ----------------------------------------------------------------------------------


def test_create_makes_a_draft_with_version_1_holding_a_lone_entry_node(marketer):
    journey = create(marketer, description="New sign-ups", priority=7, tags=["lifecycle"])
    journey.refresh_from_db()
    assert (journey.status, journey.live_version, journey.priority, journey.tags) == (JourneyStatus.DRAFT, None, 7, ["lifecycle"])
    assert (journey.owner, journey.created_by, journey.updated_by) == (marketer, marketer, marketer)
    assert versions(journey) == [(1, False, empty_graph())]
    assert [node["kind"] for node in empty_graph()["nodes"]] == ["entry"]


def test_create_with_a_graph_stores_it_as_version_1(marketer):
    journey = create(marketer, graph=api_graph())
    assert versions(journey) == [(1, False, api_graph())]


def test_create_names_every_invalid_setting_and_writes_nothing(marketer):
    with pytest.raises(JourneyInputError) as excinfo:
        create(
            marketer, priority=11, holdout_percent=95, category="promo", tags=["ok", ""],
            goal_event="Order Completed", goal_filters=[{"property": "revenue", "op": "bigger", "value": 1}],
            exit_on_conversion="yes", entry_limit=0, graph={"nodes": {}},
        )
    assert errors_of(excinfo) == {
        "priority": "must be from 1 to 10",
        "holdout_percent": "must be from 0 to 90",
        "category": "must be one of: marketing, transactional",
        "tags.1": "must be text of 1 to 50 characters",
        "goal_filters.0.op": "must be one of: eq, neq, gt, gte, lt, lte, contains, exists, not_exists, in",
        "exit_on_conversion": "must be true or false",
        "entry_limit": "must be at least 1",
        "graph.nodes": "must be a list",
        "graph.edges": "must be a list",
    }
    assert Journey.objects.count() == 0 and JourneyVersion.objects.count() == 0


def test_create_requires_a_name_no_other_journey_has(marketer):
    create(marketer, name="Welcome")
    with pytest.raises(JourneyInputError) as missing:
        do_create_journey(JourneyInput(priority=3), marketer)
    with pytest.raises(JourneyInputError) as blank:
        create(marketer, name="   ")
    with pytest.raises(JourneyInputError) as taken:
        create(marketer, name=" Welcome ")
    assert errors_of(missing) == {"name": "is required"}
    assert errors_of(blank) == {"name": "is required"}
    assert errors_of(taken) == {"name": "another journey is already called 'Welcome'"}
    assert Journey.objects.count() == 1


def test_cooldown_reentry_needs_a_cooldown_of_more_than_zero(marketer):
    with pytest.raises(JourneyInputError) as excinfo:
        create(marketer, reentry="cooldown")
    assert errors_of(excinfo) == {"reentry_cooldown_seconds": "must be more than 0 when reentry is cooldown"}
    journey = create(marketer, reentry="cooldown", reentry_cooldown_seconds=3600)
    assert (journey.reentry, journey.reentry_cooldown_seconds) == ("cooldown", 3600)


def test_goal_filters_need_a_goal_event(marketer):
    with pytest.raises(JourneyInputError) as excinfo:
        create(marketer, goal_event="", goal_filters=[{"property": "revenue", "op": "gt", "value": 0}])
    assert errors_of(excinfo) == {"goal_filters": "need a goal_event to filter"}


def test_a_draft_may_hold_an_unfinished_graph(marketer):
    unfinished = {"nodes": [{"id": "entry", "kind": "entry", "config": {}}, {"id": "x", "kind": "nonsense"}], "edges": []}
    journey = create(marketer, graph=unfinished)
    assert versions(journey) == [(1, False, unfinished)]


def test_input_from_a_mapping_rejects_unknown_settings():
    with pytest.raises(JourneyInputError) as excinfo:
        JourneyInput.from_mapping({"name": "Welcome", "priorty": 3})
    assert errors_of(excinfo) == {"priorty": "is not a journey setting"}
    with pytest.raises(JourneyInputError) as not_object:
        JourneyInput.from_mapping(["name"])
    assert errors_of(not_object) == {None: "must be a JSON object"}


def test_journey_input_holds_exactly_the_settings_and_the_graph():
    assert [f.name for f in fields(JourneyInput)] == [*SETTINGS, "graph"]


# --- Update ----------------------------------------------------------------------------------


def test_update_changes_only_the_given_settings_and_records_who(marketer, make_user):
    journey = create(marketer, description="Before", priority=4)
    editor = make_user(Role.ADMIN)
    do_update_journey(journey, JourneyInput(priority=9, entry_limit=None), editor)
    journey.refresh_from_db()
    assert (journey.description, journey.priority, journey.entry_limit, journey.updated_by) == ("Before", 9, None, editor)


def test_update_validates_against_the_stored_settings(marketer):
    journey = create(marketer, reentry="cooldown", reentry_cooldown_seconds=60)
    with pytest.raises(JourneyInputError) as excinfo:
        do_update_journey(journey, JourneyInput(reentry_cooldown_seconds=0), marketer)
    assert errors_of(excinfo) == {"reentry_cooldown_seconds": "must be more than 0 when reentry is cooldown"}
    journey.refresh_from_db()
    assert journey.reentry_cooldown_seconds == 60


def test_editing_a_draft_graph_rewrites_the_draft_in_place(marketer):
    journey = create(marketer)
    do_update_journey(journey, JourneyInput(graph=api_graph()), marketer)
    assert versions(journey) == [(1, False, api_graph())]


def test_editing_a_live_graph_makes_draft_v2_and_leaves_v1_unchanged(marketer):
    journey = live(marketer)
    do_update_journey(journey, JourneyInput(graph=api_graph("Changed")), marketer)
    do_update_journey(journey, JourneyInput(graph=api_graph("Changed again")), marketer)
    journey.refresh_from_db()
    assert versions(journey) == [(1, True, api_graph()), (2, False, api_graph("Changed again"))]
    assert (journey.status, journey.live_version.number) == (JourneyStatus.LIVE, 1)


def test_editing_settings_of_a_live_journey_makes_no_draft(marketer):
    journey = live(marketer)
    do_update_journey(journey, JourneyInput(priority=2, graph=api_graph()), marketer)
    assert versions(journey) == [(1, True, api_graph())]


def test_an_archived_journey_cannot_be_edited(marketer):
    journey = create(marketer)
    do_set_journey_status(journey, JourneyAction.ARCHIVE, marketer)
    with pytest.raises(JourneyStateError, match="archived journey cannot be edited"):
        do_update_journey(journey, JourneyInput(priority=2), marketer)
    journey.refresh_from_db()
    assert journey.priority == 5


def test_a_live_segment_journey_cannot_switch_to_always_reentry(marketer):
    segment = Segment.objects.create(name="Everyone", definition={"conditions": [{"type": "reachable"}]})
    journey = live(marketer, graph=segment_graph(segment.pk))
    with pytest.raises(JourneyInputError) as excinfo:
        do_update_journey(journey, JourneyInput(reentry="always"), marketer)
    assert errors_of(excinfo) == {
        "reentry": "the live version's segment entry re-enters once or after a cooldown, never always"
    }


def test_changing_the_goal_of_a_live_journey_updates_the_events_it_listens_for(marketer):
    journey = live(marketer, graph=cart_graph())
    do_update_journey(journey, JourneyInput(goal_event="Subscribed"), marketer)
    journey.refresh_from_db()
    assert journey.event_names == ["Cart Abandoned", "Order Completed", "Subscribed"]


# --- Publish ---------------------------------------------------------------------------------


def test_publish_stamps_the_draft_and_takes_the_journey_live(marketer):
    journey = create(marketer, graph=cart_graph(), goal_event="Order Completed")
    version = do_publish_journey(journey, marketer, now=T0)
    journey.refresh_from_db()
    assert (version.number, version.published_at, version.published_by) == (1, T0, marketer)
    assert (journey.status, journey.live_version, journey.updated_by) == (JourneyStatus.LIVE, version, marketer)
    assert journey.event_names == ["Cart Abandoned", "Order Completed"]


def test_publish_of_a_broken_graph_names_every_problem_and_changes_nothing(marketer):
    graph = api_graph(body="{% if %}")
    graph["nodes"].append({"id": "orphan", "kind": "delay", "config": {"mode": "duration", "amount": 0, "unit": "weeks"}})
    graph["edges"].append({"from": "done", "port": "out", "to": "sms"})
    journey = create(marketer, graph=graph)
    with pytest.raises(InvalidGraph) as excinfo:
        do_publish_journey(journey, marketer, now=T0)
    assert [(problem.node_id, problem.path) for problem in excinfo.value.problems] == [
        ("sms", "nodes.sms.config.content.sms.body"),
        ("orphan", "nodes.orphan.config.amount"),
        ("orphan", "nodes.orphan.config.unit"),
        ("done", "nodes.done.ports.out"),
        ("orphan", "nodes.orphan"),
    ]
    journey.refresh_from_db()
    assert (journey.status, journey.live_version, journey.event_names) == (JourneyStatus.DRAFT, None, [])
    assert versions(journey) == [(1, False, graph)]


def test_publish_refuses_a_segment_that_does_not_exist(marketer):
    journey = create(marketer, graph=segment_graph(987654))
    with pytest.raises(InvalidGraph) as excinfo:
        do_publish_journey(journey, marketer, now=T0)
    assert [(p.path, p.message) for p in excinfo.value.problems] == [
        ("nodes.entry.config.segment_id", "names segment 987654, which does not exist")
    ]


def test_publish_refuses_a_segment_entry_that_re_enters_always(marketer):
    segment = Segment.objects.create(name="Everyone", definition={"conditions": [{"type": "reachable"}]})
    journey = create(marketer, graph=segment_graph(segment.pk), reentry="always")
    with pytest.raises(InvalidGraph) as excinfo:
        do_publish_journey(journey, marketer, now=T0)
    assert [(p.path, p.message) for p in excinfo.value.problems] == [(
        "nodes.entry.config.trigger",
        "a segment entry re-enters once or after a cooldown, never always: set the journey's reentry to once or cooldown",
    )]


def test_publishing_v2_moves_new_entrants_and_keeps_listening_for_v1_events(marketer):
    journey = live(marketer, graph=cart_graph())
    do_update_journey(journey, JourneyInput(graph=api_graph()), marketer)
    version = do_publish_journey(journey, marketer, now=T0)
    journey.refresh_from_db()
    assert (journey.live_version, version.number, journey.status) == (version, 2, JourneyStatus.LIVE)
    # People who entered v1 may still be waiting for Order Completed.
    assert journey.event_names == ["Cart Abandoned", "Order Completed"]
    assert versions(journey) == [(1, True, cart_graph()), (2, True, api_graph())]


def test_publishing_a_paused_journey_keeps_it_paused(marketer):
    journey = live(marketer)
    do_set_journey_status(journey, JourneyAction.PAUSE, marketer)
    do_update_journey(journey, JourneyInput(graph=api_graph("New")), marketer)
    do_publish_journey(journey, marketer, now=T0)
    journey.refresh_from_db()
    assert (journey.status, journey.live_version.number) == (JourneyStatus.PAUSED, 2)


def test_publish_without_a_draft_is_refused(marketer):
    journey = live(marketer)
    with pytest.raises(JourneyStateError, match="no draft to publish"):
        do_publish_journey(journey, marketer, now=T0)


@pytest.mark.parametrize("action", [JourneyAction.STOP, JourneyAction.ARCHIVE])
def test_stopped_and_archived_journeys_cannot_publish(marketer, action):
    journey = live(marketer)
    do_update_journey(journey, JourneyInput(graph=api_graph("New")), marketer)
    do_set_journey_status(journey, JourneyAction.STOP, marketer)
    if action == JourneyAction.ARCHIVE:
        do_set_journey_status(journey, JourneyAction.ARCHIVE, marketer)
    with pytest.raises(JourneyStateError, match=f"^An? {journey.status} journey cannot be published"):
        do_publish_journey(journey, marketer, now=T0)
    assert [number for number, published, _ in versions(journey) if published] == [1]


# --- Status ----------------------------------------------------------------------------------


def _journey_in(status: str, user) -> Journey:
    if status == JourneyStatus.DRAFT:
        return create(user)
    journey = live(user)
    steps = {"paused": ["pause"], "stopped": ["stop"], "archived": ["stop", "archive"]}.get(status, [])
    for action in steps:
        do_set_journey_status(journey, action, user)
    return journey


@pytest.mark.parametrize(
    ("start", "action", "end"),
    [
        ("live", "pause", "paused"),
        ("paused", "resume", "live"),
        ("live", "stop", "stopped"),
        ("paused", "stop", "stopped"),
        ("draft", "archive", "archived"),
        ("stopped", "archive", "archived"),
    ],
)
def test_legal_status_changes(marketer, make_user, start, action, end):
    journey = _journey_in(start, marketer)
    admin = make_user(Role.ADMIN)
    do_set_journey_status(journey, action, admin)
    journey.refresh_from_db()
    assert (journey.status, journey.updated_by) == (end, admin)


@pytest.mark.parametrize(
    ("start", "action", "message"),
    [
        ("draft", "pause", "Cannot pause a draft journey: only a live journey can be paused."),
        ("paused", "pause", "Cannot pause a paused journey: only a live journey can be paused."),
        ("live", "resume", "Cannot resume a live journey: only a paused journey can be resumed."),
        ("draft", "stop", "Cannot stop a draft journey: only a live or paused journey can be stopped."),
        ("stopped", "resume", "Cannot resume a stopped journey: only a paused journey can be resumed."),
        ("live", "archive", "Cannot archive a live journey: stop it first."),
        ("paused", "archive", "Cannot archive a paused journey: stop it first."),
        ("archived", "archive", "Cannot archive an archived journey: only a draft or stopped journey can be archived."),
    ],
)
def test_illegal_status_changes_name_the_current_status_and_change_nothing(marketer, start, action, message):
    journey = _journey_in(start, marketer)
    with pytest.raises(JourneyStateError) as excinfo:
        do_set_journey_status(journey, action, marketer)
    assert (str(excinfo.value), excinfo.value.status) == (message, start)
    journey.refresh_from_db()
    assert journey.status == start


def test_an_unknown_status_action_is_an_input_error(marketer):
    journey = create(marketer)
    with pytest.raises(JourneyInputError) as excinfo:
        do_set_journey_status(journey, "delete", marketer)
    assert errors_of(excinfo) == {"action": "must be one of: pause, resume, stop, archive"}


# --- Export and import -----------------------------------------------------------------------


def test_export_holds_every_setting_and_the_draft_graph(marketer):
    journey = live(marketer, goal_event="Order Completed", tags=["lifecycle"], holdout_percent=10)
    do_update_journey(journey, JourneyInput(graph=api_graph("Draft")), marketer)
    document = export_journey(journey)
    assert set(document) == {"chorus_journey", *SETTINGS, "graph", "version"}
    assert (document["chorus_journey"], document["version"], document["graph"]) == (1, 2, api_graph("Draft"))
    assert (document["goal_event"], document["tags"], document["holdout_percent"]) == ("Order Completed", ["lifecycle"], 10)


def test_export_then_import_under_a_new_name_makes_an_equal_draft_journey(marketer, make_user):
    original = live(
        marketer, graph=cart_graph(), goal_event="Order Completed", priority=8, tags=["cart"],
        reentry="cooldown", reentry_cooldown_seconds=86400, entry_limit=500, holdout_percent=20,
        goal_filters=[{"property": "revenue", "op": "gt", "value": 0}], exit_on_conversion=False,
    )
    document = export_journey(original) | {"name": "Cart (copy)"}
    importer = make_user(Role.ADMIN)
    copied = do_import_journey(document, importer)
    copied.refresh_from_db()
    assert copied.pk != original.pk
    assert {name: getattr(copied, name) for name in SETTINGS} == {
        name: getattr(original, name) for name in SETTINGS
    } | {"name": "Cart (copy)"}
    assert (copied.status, copied.created_by) == (JourneyStatus.DRAFT, importer)
    assert versions(copied) == [(1, False, cart_graph())]


def test_import_of_an_existing_name_edits_that_journeys_draft(marketer):
    journey = live(marketer)
    document = export_journey(journey) | {"graph": api_graph("Imported"), "priority": 2}
    assert do_import_journey(document, marketer).pk == journey.pk
    journey.refresh_from_db()
    assert journey.priority == 2
    assert versions(journey) == [(1, True, api_graph()), (2, False, api_graph("Imported"))]
    assert Journey.objects.count() == 1


def test_import_of_a_bad_document_names_the_fields_and_writes_nothing(marketer):
    journey = create(marketer, name="Existing")
    document = export_journey(journey) | {"name": "Fresh", "priority": 0, "reentry": "sometimes"}
    cases = [
        ([], {None: "must be a JSON object (a Chorus journey export)"}),
        ({"name": "Fresh", "graph": api_graph()}, {"chorus_journey": "must be 1: this is not a Chorus journey export"}),
        ({"chorus_journey": 1}, {"name": "is required", "graph": "is required"}),
        ({"chorus_journey": 1, "name": "Fresh", "graph": api_graph(), "colour": "red"}, {"colour": "is not a journey setting"}),
        (document, {"priority": "must be from 1 to 10", "reentry": "must be one of: once, cooldown, always"}),
    ]
    for bad, expected in cases:
        with pytest.raises(JourneyInputError) as excinfo:
            do_import_journey(copy.deepcopy(bad), marketer)
        assert errors_of(excinfo) == expected
    assert list(Journey.objects.values_list("name", flat=True)) == ["Existing"]
    assert JourneyVersion.objects.count() == 1
