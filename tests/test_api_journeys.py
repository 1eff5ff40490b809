"""The journeys API: authoring, publishing, status changes, export/import, access and the trigger."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ
from rest_framework.test import APIClient

from customers.models import Segment
from journeys.models import Journey, JourneyStatus, JourneyVersion
from orchestrator.engine.models import Enrollment, EnrollmentState, ExitReason
from orchestrator.roles import Role
from tests import api_factories as f

pytestmark = pytest.mark.django_db

URL = "/api/v1/journeys"


def waiting_graph(trigger: dict | None = None) -> dict:
    """Entry, then a day's delay: whoever enters is still inside afterwards."""
    return {
        "nodes": [
            {"id": "entry", "kind": "entry", "config": trigger or {"trigger": "api"}, "position": {"x": 40, "y": 40}},
            {"id": "day", "kind": "delay", "config": {"mode": "duration", "amount": 1, "unit": "days"}},
            {"id": "done", "kind": "exit", "config": {}},
        ],
        "edges": [{"from": "entry", "port": "out", "to": "day"}, {"from": "day", "port": "out", "to": "done"}],
    }


def broken_graph() -> dict:
    graph = waiting_graph()
    graph["nodes"][1]["config"] = {"mode": "duration", "amount": -1, "unit": "days"}
    graph["nodes"].append({"id": "sms", "kind": "send", "config": {"channel": "sms", "content": {}}})
    return graph


def create(client: APIClient, name: str = "Welcome", **body) -> dict:
    response = client.post(URL, {"name": name, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def publish(client: APIClient, journey_id: int) -> dict:
    response = client.post(f"{URL}/{journey_id}/publish")
    assert response.status_code == 200, response.content
    return response.json()


def live(client: APIClient, name: str = "Welcome", graph: dict | None = None, **body) -> dict:
    return publish(client, create(client, name, graph=graph or waiting_graph(), **body)["id"])


def fields_of(response) -> dict:
    return {entry["field"]: entry["reason"] for entry in response.json()["error"]["fields"]}


# --- Authoring -------------------------------------------------------------------------------


def test_create_update_publish_takes_a_journey_live(api_client):
    created = create(api_client, description="New sign-ups", tags=["lifecycle"])
    assert (created["status"], created["draft_version"], created["live_version"]) == ("draft", 1, None)
    assert [node["kind"] for node in created["graph"]["nodes"]] == ["entry"]

    patched = api_client.patch(f"{URL}/{created['id']}", {"graph": waiting_graph(), "priority": 8}, format="json")
    assert patched.status_code == 200, patched.content
    assert (patched.json()["graph"], patched.json()["priority"], patched.json()["graph_version"]) == (waiting_graph(), 8, 1)

    published = publish(api_client, created["id"])
    assert (published["status"], published["live_version"], published["draft_version"]) == ("live", 1, None)
    assert published["graph"] == waiting_graph()
    detail = api_client.get(f"{URL}/{created['id']}").json()
    assert detail == published
    assert set(detail) == {
        "id", "name", "description", "category", "priority", "tags", "goal_event", "goal_filters",
        "goal_window_seconds", "goal_value_property", "exit_on_conversion", "reentry",
        "reentry_cooldown_seconds", "entry_limit", "holdout_percent", "status", "live_version",
        "draft_version", "graph_version", "graph", "content_problems", "event_names", "entered_count",
        "created_at", "updated_at",
    }


def test_bad_settings_are_400_naming_each_field_and_nothing_is_written(api_client):
    response = api_client.post(
        URL, {"name": "", "priority": "high", "holdout_percent": 91, "reentry": "cooldown", "graph": []}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert fields_of(response) == {
        "name": "is required",
        "priority": "must be a whole number",
        "holdout_percent": "must be from 0 to 90",
        "graph": "must be an object with lists nodes and edges",
    }
    unknown = api_client.post(URL, {"name": "Welcome", "colour": "red"}, format="json")
    assert fields_of(unknown) == {"colour": "is not a journey setting"}
    assert Journey.objects.count() == 0


def test_list_filters_by_status_and_pages_by_name(api_client):
    live(api_client, "B live")
    create(api_client, "A draft")
    create(api_client, "C draft")
    page = api_client.get(URL, {"status": "draft", "limit": 1}).json()
    assert (page["count"], [j["name"] for j in page["results"]], page["previous"]) == (2, ["A draft"], None)
    assert page["next"] == "http://testserver/api/v1/journeys?limit=1&offset=1&status=draft"
    everything = api_client.get(URL).json()
    assert [(j["name"], j["status"], j["live_version"], j["draft_version"]) for j in everything["results"]] == [
        ("A draft", "draft", None, 1), ("B live", "live", 1, None), ("C draft", "draft", None, 1),
    ]
    bad = api_client.get(URL, {"status": "running"})
    assert (bad.status_code, list(fields_of(bad))) == (400, ["status"])


def test_listing_costs_the_same_queries_for_one_journey_or_many(api_client):
    def queries_to_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api_client.get(URL).status_code == 200
        return len(captured)

    live(api_client, "One")
    one = queries_to_list()
    live(api_client, "Two")
    create(api_client, "Three")
    assert queries_to_list() == one


def test_publish_of_a_broken_graph_answers_every_problem_by_node_and_stores_nothing(api_client):
    journey = create(api_client, graph=broken_graph())
    response = api_client.post(f"{URL}/{journey['id']}/publish")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_graph"
    assert [(e["node"], e["field"]) for e in error["fields"]] == [
        ("day", "nodes.day.config.amount"),
        ("sms", "nodes.sms.config.content.sms"),
        ("sms", "nodes.sms"),
    ]
    assert all(entry["reason"] for entry in error["fields"])
    assert Journey.objects.get().status == JourneyStatus.DRAFT
    assert list(JourneyVersion.objects.values_list("number", "published_at", "graph")) == [(1, None, broken_graph())]


def test_editing_a_live_journey_makes_draft_v2_while_v1_stays_unchanged(api_client):
    journey = live(api_client)
    changed = waiting_graph({"trigger": "event", "event": "Signed Up", "filters": []})
    patched = api_client.patch(f"{URL}/{journey['id']}", {"graph": changed}, format="json").json()
    assert (patched["status"], patched["live_version"], patched["draft_version"], patched["graph_version"]) == ("live", 1, 2, 2)
    versions = api_client.get(f"{URL}/{journey['id']}/versions").json()
    assert [(v["number"], v["published"], v["graph"]) for v in versions] == [
        (2, False, changed), (1, True, waiting_graph()),
    ]
    assert versions[1]["published_at"] is not None and versions[1]["published_by"] is None  # an API key published it


def test_unknown_journey_is_404(api_client):
    response = api_client.get(f"{URL}/999999")
    assert (response.status_code, response.json()["error"]["message"]) == (404, "No journey with id 999999.")


# --- Status ----------------------------------------------------------------------------------


def test_pause_resume_stop_archive(api_client):
    journey_id = live(api_client)["id"]
    statuses = [
        api_client.post(f"{URL}/{journey_id}/{action}").json()["status"]
        for action in ("pause", "resume", "pause", "stop", "archive")
    ]
    assert statuses == ["paused", "live", "paused", "stopped", "archived"]


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("pause", "Cannot pause a draft journey: only a live journey can be paused."),
        ("resume", "Cannot resume a draft journey: only a paused journey can be resumed."),
        ("stop", "Cannot stop a draft journey: only a live or paused journey can be stopped."),
    ],
)
def test_illegal_status_changes_are_409_naming_the_status(api_client, action, message):
    journey_id = create(api_client)["id"]
    response = api_client.post(f"{URL}/{journey_id}/{action}")
    assert (response.status_code, response.json()) == (409, {"error": {"code": "conflict", "message": message}})
    assert Journey.objects.get().status == JourneyStatus.DRAFT


def test_archiving_a_live_journey_says_to_stop_it_first(api_client):
    journey_id = live(api_client)["id"]
    response = api_client.post(f"{URL}/{journey_id}/archive")
    assert (response.status_code, response.json()["error"]["message"]) == (409, "Cannot archive a live journey: stop it first.")
    api_client.post(f"{URL}/{journey_id}/stop")
    assert api_client.post(f"{URL}/{journey_id}/archive").json()["status"] == "archived"
    frozen = api_client.patch(f"{URL}/{journey_id}", {"priority": 1}, format="json")
    assert (frozen.status_code, frozen.json()["error"]["message"]) == (409, "An archived journey cannot be edited.")


# --- Export and import -----------------------------------------------------------------------


def test_export_then_import_makes_a_new_journey_equal_in_graph_and_settings(api_client):
    original = live(
        api_client, "Cart", graph=waiting_graph({"trigger": "event", "event": "Cart Abandoned", "filters": []}),
        goal_event="Order Completed", goal_filters=[{"property": "revenue", "op": "gte", "value": 10}],
        priority=9, tags=["cart"], reentry="cooldown", reentry_cooldown_seconds=3600, holdout_percent=15,
        entry_limit=1000, category="transactional", exit_on_conversion=False,
    )
    document = api_client.get(f"{URL}/{original['id']}/export").json()
    assert (document["chorus_journey"], document["version"]) == (1, 1)

    response = api_client.post(f"{URL}/import", document | {"name": "Cart (copy)"}, format="json")
    assert response.status_code == 201, response.content
    copied = response.json()
    assert copied["id"] != original["id"]
    volatile = {"id", "name", "status", "live_version", "draft_version", "event_names", "created_at", "updated_at"}
    assert {k: v for k, v in copied.items() if k not in volatile} == {k: v for k, v in original.items() if k not in volatile}
    assert (copied["status"], copied["draft_version"]) == ("draft", 1)


def test_import_of_an_existing_name_replaces_its_draft(api_client):
    journey = live(api_client)
    document = api_client.get(f"{URL}/{journey['id']}/export").json() | {"priority": 1}
    response = api_client.post(f"{URL}/import", document, format="json")
    assert response.status_code == 200, response.content
    # The graph equals the live one, so no draft is made; the settings change at once.
    assert (response.json()["id"], response.json()["priority"], response.json()["draft_version"]) == (journey["id"], 1, None)


def test_import_of_a_bad_document_is_400_with_fields_and_writes_nothing(api_client):
    create(api_client, "Existing")
    bad = {"chorus_journey": 1, "name": "Fresh", "graph": {"nodes": "many"}, "priority": 0, "extra": True}
    unknown = api_client.post(f"{URL}/import", bad, format="json")
    assert fields_of(unknown) == {"extra": "is not a journey setting"}
    del bad["extra"]
    response = api_client.post(f"{URL}/import", bad, format="json")
    assert response.status_code == 400
    assert fields_of(response) == {
        "priority": "must be from 1 to 10", "graph.nodes": "must be a list", "graph.edges": "must be a list",
    }
    not_export = api_client.post(f"{URL}/import", {"name": "Fresh"}, format="json")
    assert fields_of(not_export) == {"chorus_journey": "must be 1: this is not a Chorus journey export"}
    assert list(Journey.objects.values_list("name", flat=True)) == ["Existing"]
    assert JourneyVersion.objects.count() == 1


# --- Access ----------------------------------------------------------------------------------

ENDPOINTS = [
    ("get", ""), ("post", ""), ("get", "/{id}"), ("patch", "/{id}"), ("post", "/{id}/publish"),
    ("post", "/{id}/pause"), ("post", "/{id}/resume"), ("post", "/{id}/stop"), ("post", "/{id}/archive"),
    ("get", "/{id}/export"), ("post", "/import"), ("get", "/{id}/versions"), ("post", "/{id}/trigger"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_keys_without_the_manage_scope_are_refused(make_api_key, method, path):
    journey = Journey.objects.create(name="Welcome")
    _, clear = make_api_key(("ingest", "read"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    response = client.generic(method.upper(), URL + path.format(id=journey.pk), "{}", content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This API key lacks the 'manage' scope this endpoint needs."
    assert Journey.objects.get().updated_at == journey.updated_at


def test_signed_in_people_need_journeys_view_to_read_and_journeys_edit_to_change(make_user):
    messaging, marketer = APIClient(), APIClient()
    messaging.force_login(make_user(Role.MESSAGING))
    marketer.force_login(make_user(Role.MARKETER))
    assert messaging.get(URL).status_code == 200
    refused = messaging.post(URL, {"name": "Welcome"}, format="json")
    assert (refused.status_code, refused.json()["error"]["message"]) == (403, "Your role does not allow journeys.edit.")
    created = marketer.post(URL, {"name": "Welcome"}, format="json")
    assert created.status_code == 201
    assert Journey.objects.get().created_by.username == "marketer-user"


# --- Engine: segment entry on going live, exits on stop, the trigger -------------------------


def _queued_tasks() -> list[tuple[str, tuple]]:
    return [(row.task["func"], row.task["args"]) for row in OrmQ.objects.all()]


def test_a_segment_journey_going_live_queues_the_entry_of_its_members(api_client):
    segment = Segment.objects.create(name="Everyone", definition={"conditions": [{"type": "reachable"}]})
    graph = waiting_graph({"trigger": "segment", "segment_id": segment.pk})
    journey = live(api_client, graph=graph)
    assert _queued_tasks() == [("orchestrator.engine.tasks.enrol_segment_task", (journey["id"],))]
    # A new version of a journey already live queues nothing: the minute check enters newcomers.
    graph["nodes"][1]["config"]["amount"] = 2
    api_client.patch(f"{URL}/{journey['id']}", {"graph": graph}, format="json")
    assert publish(api_client, journey["id"])["live_version"] == 2
    assert len(_queued_tasks()) == 1


def test_an_event_journey_going_live_queues_nothing(api_client):
    live(api_client, graph=waiting_graph({"trigger": "event", "event": "Signed Up", "filters": []}))
    assert _queued_tasks() == []


def test_trigger_enters_a_customer_once_per_message_id(api_client):
    journey = live(api_client, reentry="always")
    customer = f.customer("ada-1")
    url = f"{URL}/{journey['id']}/trigger"
    body = {"userId": "ada-1", "properties": {"plan": "pro"}, "messageId": "req-1"}
    first = api_client.post(url, body, format="json")
    assert first.status_code == 200, first.content
    enrollment = Enrollment.objects.get()
    assert first.json() == {"entered": True, "enrollment_id": enrollment.pk, "reason": "entered"}
    assert (enrollment.customer, enrollment.context["trigger"]) == (customer, {"plan": "pro"})
    again = api_client.post(url, body, format="json").json()
    assert again == {"entered": False, "enrollment_id": None, "reason": "trigger already handled"}
    assert Enrollment.objects.count() == 1


def test_stopping_a_journey_exits_everyone_inside(api_client):
    journey = live(api_client)
    f.customer("ada-1")
    api_client.post(f"{URL}/{journey['id']}/trigger", {"userId": "ada-1"}, format="json")
    assert Enrollment.objects.get().state != EnrollmentState.EXITED
    assert api_client.post(f"{URL}/{journey['id']}/stop").json()["status"] == "stopped"
    assert list(Enrollment.objects.values_list("state", "exit_reason")) == [(EnrollmentState.EXITED, ExitReason.STOPPED)]


def test_trigger_refusals(api_client):
    journey = live(api_client)
    event_journey = live(api_client, "Events", graph=waiting_graph({"trigger": "event", "event": "Signed Up", "filters": []}))
    f.customer("ada-1")
    url = f"{URL}/{journey['id']}/trigger"

    missing = api_client.post(url, {"userId": "nobody"}, format="json")
    assert (missing.status_code, missing.json()["error"]["message"]) == (404, "No customer with userId 'nobody'.")
    bad = api_client.post(url, {"properties": []}, format="json")
    assert (bad.status_code, set(fields_of(bad))) == (400, {"userId", "properties"})
    not_api = api_client.post(f"{URL}/{event_journey['id']}/trigger", {"userId": "ada-1"}, format="json")
    assert (not_api.status_code, not_api.json()["error"]["code"]) == (409, "conflict")
    assert "not an API trigger" in not_api.json()["error"]["message"]
    api_client.post(f"{URL}/{journey['id']}/pause")
    paused = api_client.post(url, {"userId": "ada-1"}, format="json")
    assert (paused.status_code, paused.json()["error"]["message"]) == (
        409, "The journey is paused: only a live journey can be triggered.",
    )
    assert Enrollment.objects.count() == 0
