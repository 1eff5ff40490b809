"""Studio simulate: the web form runs the simulator and shows the timeline beside the canvas.

The launch story is simulated through the form for Maya described inline: the timeline
shows each step at her local time, the SMS and push with their text, the order and the
$415 conversion, and the response's HX-Trigger names the path the canvas highlights. Bad
input answers 422 with the form re-rendered, each problem at its field, and nothing run.
"""

from __future__ import annotations

import html
import json
import re

import pytest
from django.urls import reverse

from channels_app.models import Message
from customers.models import Customer, Event
from journeys.models import JourneyVersion
from orchestrator.engine.models import Enrollment
from orchestrator.roles import Role
from tests.api_factories import opted_in
from tests.journey_factories import linear_graph, make_live_journey, node
from tests.test_journey_launch_story import TUESDAY_2114, cart_recovery_graph
from tests.test_simulator import ORDER_AT

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
STORY_PATH = ["entry", "wait45", "sms", "until_morning", "push", "after_push"]
SMS_TEXT = (
    "Hi Maya, your Silk wrap dress ($280) is waiting. "
    "It pairs beautifully with the gold hoops and the suede clutch."
)
CART_LINES = 'cart_value: 280\nproduct_name: Silk wrap dress\nprice: 280\naccessories: ["the gold hoops", "the suede clutch"]'


@pytest.fixture
def marketer(client, make_user):
    client.force_login(make_user(Role.MARKETER, username="mara"))
    return client


@pytest.fixture
def cart_recovery(db):
    return make_live_journey(
        cart_recovery_graph(), name="Cart recovery", goal_event="Order Completed",
        goal_window_seconds=7 * 24 * 3600, goal_value_property="revenue", exit_on_conversion=True,
    )


def maya_described(**changes) -> dict:
    form = {
        "who": "described", "first_name": "Maya", "tz": "America/New_York", "phone": "+12125550117", "push": "1",
        "traits": "loyalty_tier: gold", "start": TUESDAY_2114.isoformat(),
        "events-0-name": "Cart Abandoned", "events-0-at": "+0m", "events-0-properties": CART_LINES,
        "events-1-name": "Order Completed", "events-1-at": ORDER_AT.isoformat(), "events-1-properties": "revenue: 415",
    }
    return {**form, **changes}


def simulate_url(journey) -> str:
    return reverse("journeys:studio-simulate", args=[journey.pk])


def text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def timeline(body: str) -> list[str]:
    """Each timeline row as its words: title, outcome badge, port, local time."""
    rows = []
    for item in re.findall(r'<li class="tl-item.*?</li>', body, re.S):
        head = re.search(r'<div class="tl-head-main">(.*?)</div>', item, re.S).group(1)
        rows.append(f"{text(head)} {text(re.search(r'<time[^>]*>(.*?)</time>', item).group(1))}")
    return rows


def field_errors(body: str) -> dict[str, str]:
    return {m[0]: text(m[1]) for m in re.findall(r'<p class="field-error" id="sim-(.+?)-error" role="alert">(.*?)</p>', body, re.S)}


def test_simulating_the_launch_story_through_the_form_shows_her_timeline_and_names_the_path(marketer, cart_recovery):
    response = marketer.post(simulate_url(cart_recovery), maya_described(), **HTMX)

    assert response.status_code == 200
    assert json.loads(response["HX-Trigger"]) == {"chorus:simulated": {"path": STORY_PATH}}
    body = response.content.decode()
    assert timeline(body) == [
        "Event “Cart Abandoned” Tue 21:14",
        "entry Entered Tue 21:14",
        "wait45 Delayed Tue 21:14",
        "sms Sent · sms Tue 21:59",
        "until_morning Waiting Tue 21:59",
        "until_morning Timed out Wed 09:00",
        "push Sent · push Wed 09:00",
        "after_push Waiting Wed 09:00",
        "Event “Order Completed” Wed 19:42",
        "after_push Converted Wed 19:42",
        "after_push Exited Wed 19:42",
    ]
    assert f'<p class="sim-body">{html.escape(SMS_TEXT)}</p>' in body
    summary = text(re.search(r'<div class="sim-summary".*?</div>', body, re.S).group(0))
    assert summary == (
        "Converted · 415.00 (converted) · touches sms → push "
        "Path: entry → wait45 → sms → until_morning → push → after_push Times in America/New_York."
    )
    # The answer is the form plus the timeline swapped out of band, beside the canvas.
    assert body.lstrip().startswith('<form id="sim-form"')
    assert '<div id="sim-result" class="sim-result" aria-live="polite" hx-swap-oob="true">' in body
    assert Customer.objects.count() == 0 and Enrollment.objects.count() == 0 and Message.objects.count() == 0


def test_an_existing_customer_is_simulated_with_her_own_data_and_nothing_of_hers_changes(marketer, cart_recovery):
    maya = opted_in(Customer.objects.create(
        external_id="maya-17", phone="+12125550117", timezone="Europe/Paris", traits={"first_name": "Maya"},
    ))
    form = maya_described(who="existing", external_id="maya-17", tz="", first_name="")

    body = marketer.post(simulate_url(cart_recovery), form, **HTMX).content.decode()

    assert timeline(body)[3] == "sms Sent · sms Wed 03:59"  # 21:59 in New York is 03:59 in Paris
    assert "Times in Europe/Paris." in body
    assert Event.objects.filter(customer=maya).count() == 0


def test_bad_input_is_answered_at_each_field_with_422_and_nothing_simulated(marketer, cart_recovery):
    form = maya_described(**{
        "tz": "Mars/Olympus", "events-1-at": "soon", "events-0-properties": "cart_value 280",
    })

    response = marketer.post(simulate_url(cart_recovery), form, **HTMX)

    assert response.status_code == 422
    assert "HX-Trigger" not in response
    body = response.content.decode()
    # The form's own reading of the properties box comes first; the simulator is not asked.
    assert field_errors(body) == {"event-0-properties": "line 1: write key: value (e.g. cart_value: 280)"}
    assert 'aria-invalid="true" aria-describedby="sim-event-0-properties-error"' in body

    response = marketer.post(simulate_url(cart_recovery), {**form, "events-0-properties": CART_LINES}, **HTMX)

    assert response.status_code == 422
    body = response.content.decode()
    assert field_errors(body) == {
        "tz": "'Mars/Olympus' is not an IANA time zone name (e.g. America/New_York)",
        "event-1-at": "not an ISO time or offset like +45m",
    }
    assert "Nothing was simulated." in body
    assert '<div id="sim-result" class="sim-result" aria-live="polite" hx-swap-oob="true">' in body  # the old timeline goes
    assert 'value="Mars/Olympus"' in body  # what was typed stays


def test_no_customer_at_all_asks_for_one_at_the_external_id(marketer, cart_recovery):
    response = marketer.post(simulate_url(cart_recovery), maya_described(who="existing", external_id=""), **HTMX)

    assert response.status_code == 422
    assert field_errors(response.content.decode()) == {"external-id": "find a customer below, or describe one"}


def test_an_unknown_customer_is_named_at_the_external_id(marketer, cart_recovery):
    response = marketer.post(simulate_url(cart_recovery), maya_described(who="existing", external_id="ghost"), **HTMX)

    assert response.status_code == 422
    assert field_errors(response.content.decode()) == {"external-id": "no customer has external_id 'ghost'"}


def test_an_error_on_an_event_names_the_row_it_was_typed_in_after_blank_rows(marketer, cart_recovery):
    form = maya_described(**{"events-1-name": "", "events-1-at": "", "events-1-properties": "",
                             "events-2-name": "Order Completed", "events-2-at": "+200d"})

    body = marketer.post(simulate_url(cart_recovery), form, **HTMX).content.decode()

    assert list(field_errors(body)) == ["event-2-at"]


def test_event_rows_are_added_and_removed_and_a_picked_customer_fills_the_external_id(marketer, cart_recovery):
    maya = Customer.objects.create(external_id="maya-17", traits={"first_name": "Maya"})
    url = simulate_url(cart_recovery)

    body = marketer.post(url, maya_described(op="add"), **HTMX).content.decode()
    assert re.findall(r'name="events-(\d+)-name" value="([^"]*)"', body) == [
        ("0", "Cart Abandoned"), ("1", "Order Completed"), ("2", ""),
    ]

    body = marketer.post(url, maya_described(op="remove:0"), **HTMX).content.decode()
    assert re.findall(r'name="events-(\d+)-name" value="([^"]*)"', body) == [("0", "Order Completed")]
    assert 'name="events-0-at" value="2026-11-25T19:42:00-05:00"' in body

    body = marketer.post(url, maya_described(op=f"pick:{maya.pk}"), **HTMX).content.decode()
    assert 'name="external_id" value="maya-17"' in body
    assert 'value="existing" checked' in body

    body = marketer.get(f"{url}?q=maya", **HTMX).content.decode()
    assert re.findall(r'value="pick:(\d+)"', body) == [str(maya.pk)]


def test_the_page_starts_with_the_entry_event_and_lists_the_steps_for_the_path(marketer, cart_recovery):
    body = marketer.get(simulate_url(cart_recovery)).content.decode()

    assert re.findall(r'name="events-(\d+)-(name|at)" value="([^"]*)"', body) == [("0", "name", "Cart Abandoned"), ("0", "at", "+0m")]
    assert re.findall(r'<li class="canvas-node node-\w+" id="node-(\w+)" data-node-id="\1">', body) == [
        "entry", "wait45", "sms", "until_morning", "push", "after_push", "done",
    ]
    assert 'id="node-stats-sms"' in body  # live numbers land here


def test_a_graph_that_cannot_run_is_listed_not_simulated(marketer, cart_recovery, make_user):
    graph = cart_recovery_graph()
    graph["edges"] = [e for e in graph["edges"] if e["from"] != "wait45"]
    JourneyVersion.objects.create(journey=cart_recovery, number=2, graph=graph)

    response = marketer.post(simulate_url(cart_recovery), maya_described(), **HTMX)

    assert response.status_code == 422
    problems = re.search(r'<ul class="sim-problems">(.*?)</ul>', response.content.decode(), re.S).group(1)
    assert [text(p) for p in re.findall(r"<li>(.*?)</li>", problems)] == [
        f"{n} cannot be reached from the entry node" for n in ("sms", "until_morning", "push", "after_push", "done")
    ]


def test_a_best_channel_send_says_which_channel_and_why(marketer):
    content = {"email": {"subject": "Hi", "html": "<p>Hi</p>"}, "sms": {"body": "Hi"}}
    journey = make_live_journey(linear_graph(
        node("entry", "entry", trigger="api"),
        node("nudge", "send", channel="best", fallback=["sms", "email"], content=content),
        node("done", "exit"),
    ), name="Best")

    body = marketer.post(simulate_url(journey), {"who": "described", "email": "ada@example.com", "tz": "UTC"}, **HTMX).content.decode()

    assert timeline(body)[1].startswith("nudge Sent · email")
    why = text(re.search(r'<p class="tl-text sim-why">(.*?)</p>', body, re.S).group(1))
    assert why.startswith("Why email: Email: the only available channel")


@pytest.mark.governed
def test_governor_verdicts_show_in_the_timeline(marketer, cart_recovery):
    body = marketer.post(simulate_url(cart_recovery), maya_described(), **HTMX).content.decode()

    held = re.search(r'<li class="tl-item sim-governor" data-tone="governor" data-node="sms" data-outcome="deferred">(.*?)</li>', body, re.S)
    assert held is not None
    assert text(held.group(1)) == (
        "sms Deferred by the governor Tue 21:59 sms: quiet hours for sms (21:00–08:00 America/New_York) until 08:00"
    )


def test_simulating_needs_the_edit_role(client, make_user, cart_recovery):
    client.force_login(make_user(Role.MESSAGING))

    assert client.get(simulate_url(cart_recovery)).status_code == 403
    assert client.post(simulate_url(cart_recovery), maya_described(), **HTMX).status_code == 403


def test_a_split_names_the_branch_taken_for_a_described_customer(marketer):
    gold = {"match": "all", "conditions": [{"type": "trait", "trait": "tier", "operator": "eq", "value": "gold"}]}
    journey = make_live_journey({
        "nodes": [
            node("entry", "entry", trigger="api"),
            {**node("tier", "split", branches=[{"port": "gold", "label": "Gold members", "condition": gold}]), "label": "By tier"},
            node("done", "exit"),
        ],
        "edges": [
            {"from": "entry", "port": "out", "to": "tier"},
            {"from": "tier", "port": "gold", "to": "done"}, {"from": "tier", "port": "else", "to": "done"},
        ],
    }, name="Split")

    response = marketer.post(simulate_url(journey), {"who": "described", "tz": "UTC", "traits": "tier: gold"}, **HTMX)

    assert timeline(response.content.decode())[1].startswith("By tier Branch taken Gold members ")
    assert json.loads(response["HX-Trigger"]) == {"chorus:simulated": {"path": ["entry", "tier", "done"]}}
