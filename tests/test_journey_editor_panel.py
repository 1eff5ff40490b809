"""The node panel: each kind's configuration as a form; invalid input answered at its field
(422, nothing saved); modes re-render the form; content checked live against the channel
rules."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from journeys.models import Journey
from journeys.services import JourneyInput, do_create_journey, empty_graph

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def journey_with(mara, *nodes: dict, category: str = "marketing") -> Journey:
    graph = {"nodes": [*empty_graph()["nodes"], *nodes], "edges": []}
    return do_create_journey(JourneyInput(name="Panel", graph=graph, category=category), mara)


def blank(node_id: str, kind: str) -> dict:
    return {"id": node_id, "kind": kind, "config": {}, "position": {"x": 40, "y": 240}}


def stored(journey: Journey, node_id: str) -> dict:
    return next(n for n in journey.versions.get().graph["nodes"] if n["id"] == node_id)


def save(client, journey: Journey, node_id: str, data: dict):
    journey.refresh_from_db()
    url = reverse("journeys:edit-node", args=[journey.pk, node_id])
    return client.post(url, {"revision": journey.graph_revision, **data}, **HTMX)


def field_error(html: str, input_id: str) -> str:
    found = re.search(rf'<p class="field-error" id="{input_id}-error">([^<]*)</p>', html)
    return found.group(1) if found else ""


def test_the_panel_shows_the_stored_config(marketer, mara):
    journey = journey_with(mara, {**blank("wait", "wait_for_event"), "config": {
        "mode": "event", "event": "Order Completed", "timeout": {"until": {"time": "09:00"}}}})
    html = marketer.get(reverse("journeys:edit-node", args=[journey.pk, "wait"]), **HTMX).content.decode()
    assert 'name="c.event" type="text" value="Order Completed"' in html
    assert '<option value="until" selected>at a time of day</option>' in html
    assert 'name="c.timeout.until.time" type="time" value="09:00"' in html


def test_saving_an_event_entry_stores_the_config_and_answers_the_board_out_of_band(marketer, mara):
    journey = journey_with(mara)
    response = save(marketer, journey, "entry", {
        "label": "Cart", "c.trigger": "event", "c.event": "Added to Cart",
        "c.filters.0.property": "value", "c.filters.0.op": "gte", "c.filters.0.value": "50",
        "c.filters.1.property": "", "c.filters.1.op": "", "c.filters.1.value": "",
    })
    assert response.status_code == 200
    assert stored(journey, "entry")["config"] == {
        "trigger": "event", "event": "Added to Cart", "filters": [{"property": "value", "op": "gte", "value": 50}],
    }
    assert stored(journey, "entry")["label"] == "Cart"
    html = response.content.decode()
    assert "Saved." in html
    assert '<div id="canvas-board"' in html and 'hx-swap-oob="true"' in html


def test_invalid_input_is_answered_at_its_field_and_nothing_is_saved(marketer, mara):
    journey = journey_with(mara, blank("wait", "delay"))
    before = journey.versions.get().graph
    response = save(marketer, journey, "wait", {"c.mode": "duration", "c.amount": "forty", "c.unit": "fortnights"})

    assert response.status_code == 422
    html = response.content.decode()
    assert field_error(html, "f-c-amount") == "must be a whole number"
    assert field_error(html, "f-c-unit") == "must be one of: seconds, minutes, hours, days"
    assert 'value="forty" aria-invalid="true"' in html
    journey.refresh_from_db()
    assert journey.versions.get().graph == before
    assert journey.graph_revision == 0


def test_a_best_time_delay_is_a_mode_of_its_own(marketer, mara):
    journey = journey_with(mara, blank("wait", "delay"))
    assert save(marketer, journey, "wait", {"c.mode": "best_time", "c.within_hours": "24"}).status_code == 200
    assert stored(journey, "wait")["config"] == {"mode": "best_time", "within_hours": 24}


def test_changing_a_mode_re_renders_the_form_without_saving(marketer, mara):
    journey = journey_with(mara, blank("wait", "delay"))
    response = save(marketer, journey, "wait", {"c.mode": "time_of_day", "_refresh": "1"})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="c.time" type="time"' in html
    assert 'name="c.amount"' not in html
    assert "field-error" not in html
    assert stored(journey, "wait")["config"] == {}


def test_a_send_keeps_only_the_content_of_its_channels(marketer, mara):
    journey = journey_with(mara, blank("send", "send"))
    response = save(marketer, journey, "send", {
        "c.channel": "sms", "c.fallback.0": "push", "c.fallback.1": "", "c.on_cap": "skip",
        "c.content.sms.body": "Your cart. Reply STOP to opt out",
        "c.content.push.title": "Cart", "c.content.push.body": "Still there",
        "c.content.email.subject": "left over from an earlier channel",
    })
    assert response.status_code == 200
    assert stored(journey, "send")["config"] == {
        "channel": "sms", "fallback": ["push"], "on_cap": "skip",
        "content": {"sms": {"body": "Your cart. Reply STOP to opt out"}, "push": {"title": "Cart", "body": "Still there"}},
    }


def test_best_channel_needs_two_channels_to_choose_among(marketer, mara):
    journey = journey_with(mara, blank("send", "send"))
    response = save(marketer, journey, "send", {"c.channel": "best", "c.fallback.0": "sms", "c.content.sms.body": "Hi"})
    assert response.status_code == 422
    assert field_error(response.content.decode(), "f-c-fallback-0") == "must list at least two channels to choose among"


def test_a_missing_required_content_field_is_named(marketer, mara):
    journey = journey_with(mara, blank("send", "send"))
    response = save(marketer, journey, "send", {"c.channel": "push", "c.content.push.title": "Hi", "c.content.push.body": " "})
    assert response.status_code == 422
    assert field_error(response.content.decode(), "f-c-content-push-body") == "is required"


def test_a_wait_with_a_clock_timeout(marketer, mara):
    journey = journey_with(mara, blank("wait", "wait_for_event"))
    response = save(marketer, journey, "wait", {
        "c.mode": "event", "c.event": "Order Completed", "timeout_kind": "until",
        "c.timeout.until.time": "09:00", "c.timeout.until.weekdays": ["0", "4"],
    })
    assert response.status_code == 200
    assert stored(journey, "wait")["config"] == {
        "mode": "event", "event": "Order Completed", "timeout": {"until": {"time": "09:00", "weekdays": [0, 4]}},
    }


def test_split_branches_by_segment_or_by_conditions(marketer, mara):
    journey = journey_with(mara, blank("split", "split"))
    vip = {"match": "all", "conditions": [{"type": "trait", "trait": "tier", "operator": "eq", "value": "vip"}]}
    response = save(marketer, journey, "split", {
        "c.branches.0.port": "vip", "c.branches.0.label": "VIP", "c.branches.0.condition": json.dumps(vip),
        "c.branches.1.port": "", "c.branches.1.condition": "",
    })
    assert response.status_code == 200, response.content.decode()
    assert stored(journey, "split")["config"] == {"branches": [{"port": "vip", "label": "VIP", "condition": vip}]}


def test_split_conditions_that_are_not_json_are_named(marketer, mara):
    journey = journey_with(mara, blank("split", "split"))
    response = save(marketer, journey, "split", {"c.branches.0.port": "vip", "c.branches.0.condition": "{tier: vip"})
    assert response.status_code == 422
    assert "is not valid JSON" in field_error(response.content.decode(), "f-c-branches-0-condition")


def test_random_split_weights(marketer, mara):
    journey = journey_with(mara, blank("ab", "random_split"))
    response = save(marketer, journey, "ab", {
        "c.branches.0.port": "a", "c.branches.0.weight": "70", "c.branches.1.port": "b", "c.branches.1.weight": "0",
    })
    assert response.status_code == 422
    assert field_error(response.content.decode(), "f-c-branches-1-weight") == "must be at least 1"
    save(marketer, journey, "ab", {"c.branches.0.port": "a", "c.branches.0.weight": "70",
                                   "c.branches.1.port": "b", "c.branches.1.weight": "30"})
    assert stored(journey, "ab")["config"] == {"branches": [{"port": "a", "weight": 70}, {"port": "b", "weight": 30}]}


def test_update_profile_reads_json_values_and_plain_text(marketer, mara):
    journey = journey_with(mara, blank("set", "update_profile"))
    save(marketer, journey, "set", {"c.trait": "vip", "c.value": "true"})
    assert stored(journey, "set")["config"] == {"trait": "vip", "value": True}
    save(marketer, journey, "set", {"c.trait": "plan", "c.value": "gold"})
    assert stored(journey, "set")["config"] == {"trait": "plan", "value": "gold"}


def test_reconfiguring_drops_edges_from_ports_that_no_longer_exist(marketer, mara):
    journey = journey_with(mara, {**blank("ab", "random_split"), "config": {
        "branches": [{"port": "a", "weight": 1}, {"port": "b", "weight": 1}]}}, blank("bye", "exit"))
    version = journey.versions.get()
    version.graph["edges"] = [{"from": "ab", "port": "a", "to": "bye"}, {"from": "ab", "port": "b", "to": "bye"}]
    version.save()
    save(marketer, journey, "ab", {"c.branches.0.port": "a", "c.branches.0.weight": "1",
                                   "c.branches.1.port": "c", "c.branches.1.weight": "1"})
    assert journey.versions.get().graph["edges"] == [{"from": "ab", "port": "a", "to": "bye"}]


def check(client, journey: Journey, node_id: str, channel: str, fields: dict) -> str:
    url = reverse("journeys:edit-check", args=[journey.pk, node_id])
    data = {"channel": channel, **{f"c.content.{channel}.{k}": v for k, v in fields.items()}}
    return client.post(url, data, **HTMX).content.decode()


def test_live_rules_count_sms_segments_and_encoding(marketer, mara):
    journey = journey_with(mara, blank("send", "send"))
    html = check(marketer, journey, "send", "sms", {"body": "Your cart is waiting ✨ Reply STOP to opt out"})
    assert "1 SMS segment · UCS-2 · 44 characters as sent, 70 per segment" in html
    assert "Meets the marketing content rules." in html


def test_live_rules_flag_a_marketing_sms_without_opt_out(marketer, mara):
    journey = journey_with(mara, blank("send", "send"))
    html = check(marketer, journey, "send", "sms", {"body": "Your cart is waiting"})
    assert "marketing SMS must tell people how to opt out" in html


def test_live_rules_flag_a_transactional_sms_that_reads_as_marketing(marketer, mara):
    journey = journey_with(mara, blank("send", "send"), category="transactional")
    html = check(marketer, journey, "send", "sms", {"body": "Your order shipped. Use promo code SAVE20 for 20% off"})
    assert "labelled transactional but reads as marketing" in html


def test_live_rules_measure_push_against_the_lock_screen(marketer, mara):
    journey = journey_with(mara, blank("send", "send"))
    html = check(marketer, journey, "send", "push", {"title": "Hi", "body": "x" * 130})
    assert "Body 130 / 120 characters (lock screen)" in html
    assert "130 characters; a lock screen shows about 120" in html


def test_live_rules_want_an_unsubscribe_link_in_marketing_email(marketer, mara):
    journey = journey_with(mara, blank("send", "send"))
    html = check(marketer, journey, "send", "email", {"subject": "Hello", "html": "<p>Hi</p>"})
    assert "marketing email needs an unsubscribe link" in html


def test_a_send_offers_one_more_fallback_than_chosen(marketer, mara):
    journey = journey_with(mara, {**blank("send", "send"), "config": {"channel": "sms", "fallback": ["push"]}})
    html = marketer.get(reverse("journeys:edit-node", args=[journey.pk, "send"]), **HTMX).content.decode()
    assert 'name="c.fallback.0"' in html and 'name="c.fallback.1"' in html
    assert 'name="c.fallback.2"' not in html
