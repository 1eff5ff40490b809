"""A split branch's condition in the node panel: rows of conditions in the segment editor's
vocabulary (add, remove, retype through htmx refreshes that save nothing), a saved segment,
or JSON as the advanced fallback; problems answered at the row's input, nothing saved."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from customers.models import Segment
from journeys.models import Journey
from journeys.services import JourneyInput, do_create_journey, empty_graph

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
VIP = {"type": "trait", "trait": "tier", "operator": "eq", "value": "vip"}
BUYER = {"type": "event", "event": "Order Completed", "aggregate": "count", "operator": "gte", "value": 2, "within_days": 30}


def split_journey(mara, config: dict | None = None) -> Journey:
    node = {"id": "split", "kind": "split", "config": config or {}, "position": {"x": 40, "y": 240}}
    graph = {"nodes": [*empty_graph()["nodes"], node], "edges": []}
    return do_create_journey(JourneyInput(name="Split", graph=graph), mara)


def stored(journey: Journey) -> dict:
    return next(n for n in journey.versions.get().graph["nodes"] if n["id"] == "split")["config"]


def post(client, journey: Journey, data: dict):
    journey.refresh_from_db()
    url = reverse("journeys:edit-node", args=[journey.pk, "split"])
    return client.post(url, {"revision": journey.graph_revision, **data}, **HTMX)


def field_error(html: str, input_id: str) -> str:
    found = re.search(rf'<p class="field-error" id="{input_id}-error">([^<]*)</p>', html)
    return found.group(1) if found else ""


ROWS_POST = {
    "c.branches.0.port": "vip", "c.branches.0.label": "VIP buyers", "when.0": "conditions",
    "cb.0.match": "all",
    "cb.0.conditions.0.type": "trait", "cb.0.conditions.0.trait": "tier", "cb.0.conditions.0.operator": "eq",
    "cb.0.conditions.0.value": "vip",
    "cb.0.conditions.1.type": "event", "cb.0.conditions.1.event": "Order Completed", "cb.0.conditions.1.aggregate": "count",
    "cb.0.conditions.1.operator": "gte", "cb.0.conditions.1.value": "2", "cb.0.conditions.1.within_days": "30",
    "c.branches.1.port": "", "c.branches.1.label": "", "when.1": "conditions", "cb.1.match": "all",
}


def test_conditions_written_as_rows_are_stored_as_a_segment_definition(marketer, mara):
    journey = split_journey(mara)
    response = post(marketer, journey, ROWS_POST)
    assert response.status_code == 200
    assert stored(journey) == {"branches": [{"port": "vip", "label": "VIP buyers",
                                             "condition": {"match": "all", "conditions": [VIP, BUYER]}}]}


def test_stored_conditions_come_back_as_rows(marketer, mara):
    journey = split_journey(mara, {"branches": [{"port": "vip", "condition": {"match": "any", "conditions": [VIP, BUYER]}}]})
    html = marketer.get(reverse("journeys:edit-node", args=[journey.pk, "split"]), **HTMX).content.decode()
    assert '<option value="conditions" selected>people matching conditions</option>' in html
    assert '<option value="any" selected>any</option>' in html
    assert 'name="cb.0.conditions.0.trait" value="tier"' in html
    assert 'name="cb.0.conditions.0.value" value="vip"' in html
    assert 'name="cb.0.conditions.1.event" value="Order Completed"' in html
    assert 'name="cb.0.conditions.1.within_days" value="30"' in html
    assert 'name="c.branches.0.condition"' not in html  # the JSON is the fallback, not shown alongside


def test_adding_a_row_rerenders_the_panel_and_saves_nothing(marketer, mara):
    journey = split_journey(mara, {"branches": [{"port": "vip", "condition": {"match": "all", "conditions": [VIP]}}]})
    before = journey.graph_revision
    data = {k: v for k, v in ROWS_POST.items() if not k.startswith(("cb.1", "when.1", "c.branches.1")) and "conditions.1" not in k}
    response = post(marketer, journey, {**data, "_refresh": "1", "op": "0:add:conditions:event"})
    html = response.content.decode()
    assert response.status_code == 200
    assert '<option value="event" selected>Event</option>' in html
    assert 'name="cb.0.conditions.1.aggregate"' in html
    journey.refresh_from_db()
    assert journey.graph_revision == before
    assert stored(journey) == {"branches": [{"port": "vip", "condition": {"match": "all", "conditions": [VIP]}}]}


def test_removing_a_row_and_adding_one_to_the_blank_branch(marketer, mara):
    journey = split_journey(mara)
    removed = post(marketer, journey, {**ROWS_POST, "_refresh": "1", "op": "0:remove:conditions.0"}).content.decode()
    assert 'name="cb.0.conditions.0.event" value="Order Completed"' in removed
    assert 'name="cb.0.conditions.1.type"' not in removed
    added = post(marketer, journey, {**ROWS_POST, "_refresh": "1", "op": "1:add:conditions:reachable"}).content.decode()
    assert 'name="cb.1.conditions.0.channel"' in added  # the "add a branch" row became branch 2
    assert "Add a branch" in added and 'name="when.2"' in added


def test_a_row_problem_is_answered_at_its_input_and_nothing_is_saved(marketer, mara):
    journey = split_journey(mara, {"branches": [{"port": "old", "condition": {"match": "all", "conditions": [VIP]}}]})
    before = journey.graph_revision
    response = post(marketer, journey, {**ROWS_POST, "cb.0.conditions.1.value": "lots"})
    html = response.content.decode()
    assert response.status_code == 422
    assert field_error(html, "cb0-conditions1value")
    assert 'id="cb0-conditions1value" name="cb.0.conditions.1.value" value="lots"' in html
    assert "Nothing was saved" in html
    journey.refresh_from_db()
    assert journey.graph_revision == before
    assert stored(journey) == {"branches": [{"port": "old", "condition": {"match": "all", "conditions": [VIP]}}]}


def test_a_branch_without_conditions_asks_for_one(marketer, mara):
    journey = split_journey(mara)
    response = post(marketer, journey, {"c.branches.0.port": "vip", "when.0": "conditions", "cb.0.match": "all"})
    assert response.status_code == 422
    assert '<p class="field-error" role="alert">Add at least one condition.</p>' in response.content.decode()
    assert stored(journey) == {}


def test_a_saved_segment_is_stored_by_reference(marketer, mara):
    segment = Segment.objects.create(name="VIPs", definition={"match": "all", "conditions": [VIP]})
    journey = split_journey(mara)
    response = post(marketer, journey, {"c.branches.0.port": "vip", "when.0": "segment", "c.branches.0.segment": str(segment.pk)})
    assert response.status_code == 200
    assert stored(journey) == {"branches": [{"port": "vip", "condition": {"segment_id": segment.pk}}]}


def test_switching_a_segment_to_rows_copies_its_conditions_to_refine(marketer, mara):
    segment = Segment.objects.create(name="VIPs", definition={"match": "all", "conditions": [VIP]})
    journey = split_journey(mara)
    html = post(marketer, journey, {"c.branches.0.port": "vip", "when.0": "conditions",
                                    "c.branches.0.segment": str(segment.pk), "_refresh": "1"}).content.decode()
    assert 'name="cb.0.conditions.0.trait" value="tier"' in html


def test_switching_rows_to_json_carries_the_definition_and_json_saves(marketer, mara):
    journey = split_journey(mara)
    html = post(marketer, journey, {**ROWS_POST, "when.0": "json", "_refresh": "1"}).content.decode()
    shown = re.search(r'name="c.branches.0.condition" type="text" value="([^"]*)"', html.replace("&quot;", "'"))
    assert json.loads(shown.group(1).replace("'", '"')) == {"match": "all", "conditions": [VIP, BUYER]}
    response = post(marketer, journey, {"c.branches.0.port": "vip", "when.0": "json",
                                        "c.branches.0.condition": json.dumps({"match": "any", "conditions": [VIP]})})
    assert response.status_code == 200
    assert stored(journey) == {"branches": [{"port": "vip", "condition": {"match": "any", "conditions": [VIP]}}]}
    assert '<option value="json" selected>' in response.content.decode()  # the chosen way stays after saving
