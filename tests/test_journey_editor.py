"""The canvas editor's edits: each a POST the server checks and stores, answered with the
board; undo and redo; a stale revision refused; read-only roles refused; every writer of a
draft graph (the API's service too) bumping the revision and feeding the history."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from journeys.editor_layout import NODE_HEIGHT, NODE_WIDTH
from journeys.models import GraphEdit, Journey, JourneyVersion
from journeys.services import JourneyInput, do_create_journey, do_update_journey, empty_graph
from orchestrator.roles import Role
from tests.journey_factories import make_live_journey, node

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 15, 14, 2, tzinfo=UTC)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def journey(mara) -> Journey:
    return do_create_journey(JourneyInput(name="Cart recovery"), mara)


def graph_of(journey: Journey) -> dict:
    return journey.versions.get(published_at__isnull=True).graph


def edit(client, journey: Journey, name: str, *args, **data):
    journey.refresh_from_db()
    data.setdefault("revision", journey.graph_revision)
    return client.post(reverse(f"journeys:{name}", args=[journey.pk, *args]), data, **HTMX)


def board_nodes(response) -> list[str]:
    return re.findall(r'id="node-([\w-]+)" data-node-id', response.content.decode())


def test_adding_a_node_stores_it_unconfigured_at_the_snapped_drop_point(marketer, journey):
    response = edit(marketer, journey, "edit-add-node", kind="delay", x="301.6", y="205")

    assert response.status_code == 200
    assert graph_of(journey)["nodes"][1] == {"id": "delay-1", "kind": "delay", "config": {}, "position": {"x": 296, "y": 200}}
    assert board_nodes(response) == ["entry", "delay-1"]
    assert 'style="left: 296px; top: 200px"' in response.content.decode()
    journey.refresh_from_db()
    assert (journey.graph_revision, journey.updated_by.username) == (1, "mara")


def test_each_node_carries_the_studio_slots_with_stable_ids(marketer, journey):
    html = edit(marketer, journey, "edit-add-node", kind="send", x=40, y=240).content.decode()
    assert '<div class="canvas-node kind-send" id="node-send-1" data-node-id="send-1" data-kind="send"' in html
    assert '<div class="node-stats" id="node-stats-send-1"></div>' in html


def test_moving_a_node_saves_its_position_and_redraws_its_edges(marketer, journey):
    edit(marketer, journey, "edit-add-node", kind="exit", x=40, y=400)
    edit(marketer, journey, "edit-connect", **{"from": "entry", "port": "out", "to": "exit-1"})

    response = edit(marketer, journey, "edit-move-node", "exit-1", x=320, y=480)

    assert graph_of(journey)["nodes"][1]["position"] == {"x": 320, "y": 480}
    start_x, start_y, end_x = 40 + NODE_WIDTH / 2, 40 + NODE_HEIGHT, 320 + NODE_WIDTH / 2
    bend = (480 - start_y) / 2
    path = f'd="M {start_x:g} {start_y:g} C {start_x:g} {start_y + bend:g}, {end_x:g} {480 - bend:g}, {end_x:g} 480"'
    assert path in response.content.decode()


def test_connecting_a_port_replaces_the_edge_it_had(marketer, journey):
    for x in (40, 320):
        edit(marketer, journey, "edit-add-node", kind="exit", x=x, y=300)
    edit(marketer, journey, "edit-connect", **{"from": "entry", "port": "out", "to": "exit-1"})
    edit(marketer, journey, "edit-connect", **{"from": "entry", "port": "out", "to": "exit-2"})
    assert graph_of(journey)["edges"] == [{"from": "entry", "port": "out", "to": "exit-2"}]


def test_each_exit_of_a_wait_is_its_own_port(marketer, journey):
    edit(marketer, journey, "edit-add-node", kind="wait_for_event", x=40, y=240)
    for x in (40, 320):
        edit(marketer, journey, "edit-add-node", kind="exit", x=x, y=480)
    edit(marketer, journey, "edit-connect", **{"from": "wait-for-event-1", "port": "happened", "to": "exit-1"})
    response = edit(marketer, journey, "edit-connect", **{"from": "wait-for-event-1", "port": "timed_out", "to": "exit-2"})

    assert graph_of(journey)["edges"] == [
        {"from": "wait-for-event-1", "port": "happened", "to": "exit-1"},
        {"from": "wait-for-event-1", "port": "timed_out", "to": "exit-2"},
    ]
    html = response.content.decode()
    assert '<span class="node-port is-connected" data-port="happened" style="left: 72px"' in html
    assert '<span class="node-port is-connected" data-port="timed_out" style="left: 144px"' in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"from": "entry", "port": "happened", "to": "exit-1"}, "&#x27;happened&#x27; is not a port of entry (its ports: out)"),
        ({"from": "exit-1", "port": "out", "to": "entry"}, "&#x27;out&#x27; is not a port of exit-1 (its ports: none)"),
        ({"from": "entry", "port": "out", "to": "entry"}, "a node cannot lead into itself"),
        ({"from": "entry", "port": "out", "to": "ghost"}, "there is no node &#x27;ghost&#x27; in this journey"),
    ],
)
def test_a_meaningless_connection_is_refused_and_changes_nothing(marketer, journey, data, message):
    edit(marketer, journey, "edit-add-node", kind="exit", x=40, y=300)
    before = graph_of(journey)
    response = edit(marketer, journey, "edit-connect", **data)
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#editor-alert"
    assert message in response.content.decode()
    assert graph_of(journey) == before


def test_deleting_a_node_removes_its_edges_too(marketer, journey):
    edit(marketer, journey, "edit-add-node", kind="delay", x=40, y=240)
    edit(marketer, journey, "edit-add-node", kind="exit", x=40, y=480)
    edit(marketer, journey, "edit-connect", **{"from": "entry", "port": "out", "to": "delay-1"})
    edit(marketer, journey, "edit-connect", **{"from": "delay-1", "port": "out", "to": "exit-1"})

    response = edit(marketer, journey, "edit-delete-node", "delay-1")

    assert [n["id"] for n in graph_of(journey)["nodes"]] == ["entry", "exit-1"]
    assert graph_of(journey)["edges"] == []
    assert board_nodes(response) == ["entry", "exit-1"]


def test_the_entry_node_cannot_be_deleted(marketer, journey):
    response = edit(marketer, journey, "edit-delete-node", "entry")
    assert response.status_code == 422
    assert "the entry node cannot be deleted" in response.content.decode()
    assert graph_of(journey) == empty_graph()


def test_deleting_an_edge_keeps_both_nodes(marketer, journey):
    edit(marketer, journey, "edit-add-node", kind="exit", x=40, y=300)
    edit(marketer, journey, "edit-connect", **{"from": "entry", "port": "out", "to": "exit-1"})
    edit(marketer, journey, "edit-delete-edge", **{"from": "entry", "port": "out"})
    assert graph_of(journey)["edges"] == []
    assert len(graph_of(journey)["nodes"]) == 2


UNPLACED = {
    "nodes": [{"id": "entry", "kind": "entry", "config": {"trigger": "api"}},
              {"id": "wait", "kind": "delay", "config": {"mode": "duration", "amount": 1, "unit": "hours"}},
              {"id": "done", "kind": "exit", "config": {}}],
    "edges": [{"from": "entry", "port": "out", "to": "wait"}, {"from": "wait", "port": "out", "to": "done"}],
}
TIDY = {"entry": {"x": 40, "y": 40}, "wait": {"x": 40, "y": 40 + NODE_HEIGHT + 64}, "done": {"x": 40, "y": 40 + 2 * (NODE_HEIGHT + 64)}}


def test_a_draft_that_arrived_without_positions_is_laid_out_and_stored_when_first_opened(marketer, mara):
    journey = do_create_journey(JourneyInput(name="From the API", graph=UNPLACED), mara)
    marketer.get(reverse("journeys:edit", args=[journey.pk]))

    assert {n["id"]: n["position"] for n in graph_of(journey)["nodes"]} == TIDY
    assert list(GraphEdit.objects.filter(journey=journey).values_list("label", flat=True)) == ["Laid out the new graph"]
    journey.refresh_from_db()
    revision = journey.graph_revision
    marketer.get(reverse("journeys:edit", args=[journey.pk]))
    journey.refresh_from_db()
    assert journey.graph_revision == revision  # laid out once


def test_the_messaging_team_sees_an_unplaced_graph_laid_out_without_storing_it(client, make_user, mara):
    journey = do_create_journey(JourneyInput(name="From the API", graph=UNPLACED), mara)
    client.force_login(make_user(Role.MESSAGING, username="mo"))
    html = client.get(reverse("journeys:edit", args=[journey.pk])).content.decode()

    assert re.search(r'id="node-done"[^>]*style="left: 40px; top: 448px', html)
    assert graph_of(journey) == UNPLACED
    assert not GraphEdit.objects.filter(journey=journey).exists()


def test_auto_layout_lays_the_journey_out_as_a_tree(marketer, journey):
    edit(marketer, journey, "edit-add-node", kind="wait_for_event", x=900, y=10)
    edit(marketer, journey, "edit-add-node", kind="exit", x=0, y=900)
    edit(marketer, journey, "edit-add-node", kind="send", x=500, y=500)
    for source, port, target in [("entry", "out", "wait-for-event-1"), ("wait-for-event-1", "happened", "exit-1"),
                                 ("wait-for-event-1", "timed_out", "send-1"), ("send-1", "out", "exit-1")]:
        edit(marketer, journey, "edit-connect", **{"from": source, "port": port, "to": target})

    edit(marketer, journey, "edit-layout")

    positions = {n["id"]: n["position"] for n in graph_of(journey)["nodes"]}
    row = NODE_HEIGHT + 64
    # The exit sits below both ways into it; the wait is centred over its two branches.
    assert positions == {
        "entry": {"x": 168, "y": 40}, "wait-for-event-1": {"x": 168, "y": 40 + row},
        "exit-1": {"x": 40, "y": 40 + 3 * row}, "send-1": {"x": 296, "y": 40 + 2 * row},
    }


def test_undo_and_redo_walk_the_history(marketer, journey):
    edit(marketer, journey, "edit-add-node", kind="delay", x=40, y=240)
    edit(marketer, journey, "edit-move-node", "delay-1", x=80, y=320)

    edit(marketer, journey, "edit-undo")
    assert graph_of(journey)["nodes"][1]["position"] == {"x": 40, "y": 240}
    response = edit(marketer, journey, "edit-undo")
    assert graph_of(journey) == empty_graph()
    assert 'data-can-undo="false" data-can-redo="true"' in response.content.decode()

    edit(marketer, journey, "edit-redo")
    edit(marketer, journey, "edit-redo")
    assert graph_of(journey)["nodes"][1]["position"] == {"x": 80, "y": 320}
    journey.refresh_from_db()
    assert journey.graph_revision == 6  # every write moves the revision on, undo and redo too


def test_a_new_edit_after_undo_ends_the_redo_chain(marketer, journey):
    edit(marketer, journey, "edit-add-node", kind="delay", x=40, y=240)
    edit(marketer, journey, "edit-undo")
    edit(marketer, journey, "edit-add-node", kind="exit", x=40, y=240)

    response = edit(marketer, journey, "edit-redo")

    assert response.status_code == 422
    assert "Nothing to redo." in response.content.decode()
    assert [n["id"] for n in graph_of(journey)["nodes"]] == ["entry", "exit-1"]


def test_history_keeps_the_last_edits_only(marketer, journey, monkeypatch):
    monkeypatch.setattr(GraphEdit, "HISTORY_LENGTH", 3)
    for y in range(5):
        edit(marketer, journey, "edit-move-node", "entry", x=40, y=96 + y * 8)
    assert GraphEdit.objects.filter(journey=journey).count() == 3
    for _ in range(3):
        assert edit(marketer, journey, "edit-undo").status_code == 200
    assert graph_of(journey)["nodes"][0]["position"] == {"x": 40, "y": 104}
    assert edit(marketer, journey, "edit-undo").status_code == 422


def test_a_stale_revision_is_refused_naming_who_changed_it_and_when(marketer, journey, make_user, client):
    eve = make_user(Role.MARKETER, username="eve")
    eve.first_name, eve.last_name = "Eve", "Ng"
    eve.save()
    seen = journey.graph_revision
    do_update_journey(journey, JourneyInput(graph={**empty_graph(), "nodes": [*empty_graph()["nodes"], node("x", "exit")]}), eve)
    before = graph_of(journey)

    response = edit(marketer, journey, "edit-add-node", kind="delay", x=40, y=240, revision=seen)

    assert response.status_code == 409
    assert "Eve Ng changed this journey at 14:02; reload to see their changes." in response.content.decode()
    assert graph_of(journey) == before


def test_an_edit_without_a_revision_is_refused(marketer, journey):
    response = marketer.post(reverse("journeys:edit-add-node", args=[journey.pk]), {"kind": "delay", "x": 0, "y": 0}, **HTMX)
    assert response.status_code == 422
    assert "revision is required" in response.content.decode()
    assert graph_of(journey) == empty_graph()


def test_the_json_api_path_bumps_the_revision_and_can_be_undone(marketer, journey, mara):
    changed = {**empty_graph(), "nodes": [*empty_graph()["nodes"], node("bye", "exit")]}
    do_update_journey(journey, JourneyInput(graph=changed), mara)
    journey.refresh_from_db()
    assert journey.graph_revision == 1
    assert GraphEdit.objects.get(journey=journey).label == "Edited the graph"

    edit(marketer, journey, "edit-undo")
    assert graph_of(journey) == empty_graph()


def test_editing_a_live_journey_starts_a_new_draft_from_the_live_graph(marketer, mara):
    graph = {"nodes": [node("entry", "entry", trigger="api"), node("bye", "exit")],
             "edges": [{"from": "entry", "port": "out", "to": "bye"}]}
    live = make_live_journey(graph, name="Live one")

    edit(marketer, live, "edit-move-node", "bye", x=40, y=400)

    draft = live.versions.get(published_at__isnull=True)
    assert draft.number == 2
    assert draft.graph["nodes"][1]["position"] == {"x": 40, "y": 400}
    assert live.versions.get(number=1).graph == graph  # people inside finish on it, unchanged
    edit(marketer, live, "edit-undo")
    assert live.versions.get(number=2).graph == graph


def test_messaging_sees_the_canvas_read_only_and_cannot_edit(client, make_user, journey):
    client.force_login(make_user(Role.MESSAGING, username="mo"))
    html = client.get(reverse("journeys:edit", args=[journey.pk])).content.decode()
    assert "You are viewing this journey read-only." in html
    assert "data-palette-kind" not in html
    assert 'id="publish-button"' not in html
    for name, args, data in [
        ("edit-add-node", [], {"kind": "delay", "x": 0, "y": 0}), ("edit-move-node", ["entry"], {"x": 0, "y": 0}),
        ("edit-connect", [], {"from": "entry", "port": "out", "to": "entry"}), ("edit-delete-node", ["entry"], {}),
        ("edit-delete-edge", [], {"from": "entry", "port": "out"}), ("edit-undo", [], {}), ("edit-redo", [], {}),
        ("edit-layout", [], {}), ("edit-publish", [], {}), ("set-status", [], {"action": "archive"}),
        ("edit-node", ["entry"], {"c.trigger": "api"}),
    ]:
        assert edit(client, journey, name, *args, **data).status_code == 403, name
    assert graph_of(journey) == empty_graph()
    assert Journey.objects.get(pk=journey.pk).status == "draft"


def test_an_older_version_is_shown_read_only(marketer, mara):
    graph = {"nodes": [node("entry", "entry", trigger="api")], "edges": []}
    live = make_live_journey(graph, name="Versioned")
    edit(marketer, live, "edit-add-node", kind="exit", x=40, y=300)

    html = marketer.get(reverse("journeys:edit", args=[live.pk]), {"version": 1}).content.decode()

    assert "v1, published and live" in html
    assert "You are viewing this journey read-only." in html
    assert board_nodes_html(html) == ["entry"]
    assert 'data-palette-kind' not in html
    draft_html = marketer.get(reverse("journeys:edit", args=[live.pk])).content.decode()
    assert board_nodes_html(draft_html) == ["entry", "exit-1"]
    assert "draft v2" in draft_html


def board_nodes_html(html: str) -> list[str]:
    return re.findall(r'id="node-([\w-]+)" data-node-id', html)


def test_the_board_alone_answers_an_htmx_request_for_it(marketer, journey):
    response = marketer.get(reverse("journeys:edit", args=[journey.pk]), HTTP_HX_TARGET="canvas-board", **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="canvas-board"')
    assert "<html" not in html


def test_the_canvas_page_includes_the_studio_slots(marketer, journey):
    html = marketer.get(reverse("journeys:edit", args=[journey.pk])).content.decode()
    assert '<aside id="side-panel"' in html
    assert html.index('id="canvas-board"') < html.index("</main>")
    JourneyVersion.objects.get(journey=journey)  # one draft, the page wrote nothing
