"""The journey simulator: the real engine under a virtual clock, with nothing left behind.

The launch story's cart recovery journey is simulated for a New York customer described
inline: the timeline shows the SMS rendered at 21:59 her time, the push at 09:00, her
order, the $415 conversion credited to SMS → push, and the exit. Afterwards the database
holds exactly what it held before, and no delivery was ever attempted.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import path

from channels_app import delivery
from channels_app.models import Message, MessageTransition, OutboxMessage
from customers.models import ContactPoint, Customer, Event
from journeys import graph as graphs
from journeys.models import Journey, JourneyStatus, JourneyVersion
from orchestrator import urls as root_urls
from orchestrator.api.simulate import simulate_journey
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, Phase
from orchestrator.engine.simulator import (
    InlineCustomer,
    ScriptedEvent,
    SimulationInput,
    SimulationInputError,
    parse_simulation,
    simulate,
)
from tests.journey_factories import linear_graph, make_live_journey, node
from tests.test_journey_launch_story import NEW_YORK, TUESDAY_2114, cart_recovery_graph

pytestmark = pytest.mark.django_db

# The endpoint, mounted here until the lead adds it to orchestrator/api/journeys_urls.py.
urlpatterns = [
    path("api/v1/journeys/<int:journey_id>/simulate", simulate_journey, name="api-journey-simulate"),
    *root_urls.urlpatterns,
]

CART = {
    "cart_value": 280, "product_name": "Silk wrap dress", "price": 280,
    "accessories": ["the gold hoops", "the suede clutch"],
}
ORDER_AT = dt.datetime(2026, 11, 25, 19, 42, tzinfo=NEW_YORK)
MAYA_INLINE = {
    "timezone": "America/New_York", "phone": "+12125550117", "push": True,
    "traits": {"first_name": "Maya", "loyalty_tier": "gold"},
}
SMS_TEXT = (
    "Hi Maya, your Silk wrap dress ($280) is waiting. "
    "It pairs beautifully with the gold hoops and the suede clutch."
)
PUSH_CONTENT = {"title": "Still thinking it over?", "body": "Your Silk wrap dress is still in your bag."}


@pytest.fixture
def cart_recovery(db):
    return make_live_journey(
        cart_recovery_graph(), name="Cart recovery", goal_event="Order Completed",
        goal_window_seconds=7 * 24 * 3600, goal_value_property="revenue", exit_on_conversion=True,
    )


def story(*, order: bool = True, **extra) -> dict:
    events = [{"at": "+0m", "name": "Cart Abandoned", "properties": CART}]
    if order:
        events.append({"at": ORDER_AT.isoformat(), "name": "Order Completed", "properties": {"revenue": 415, "order_id": "A-1009"}})
    return {"customer": {"inline": MAYA_INLINE}, "start": TUESDAY_2114.isoformat(), "events": events, **extra}


def local(at: dt.datetime) -> str:
    return at.astimezone(NEW_YORK).strftime("%a %H:%M")


def rows(result) -> list[tuple]:
    """(local time, node or event name, outcome, message channel) for each timeline entry."""
    out = []
    for entry in result.timeline:
        if entry["kind"] == "event":
            out.append((local(entry["at"]), "event", entry["name"], None))
        else:
            message = entry["message"]
            out.append((local(entry["at"]), entry["node_id"], entry["outcome"], message and message["channel"]))
    return out


def counts() -> dict[str, int]:
    models = (Customer, ContactPoint, Event, Enrollment, EnrollmentStep, Message, MessageTransition, OutboxMessage)
    return {model.__name__: model.objects.count() for model in models}


# --- The story ---------------------------------------------------------------------------------


def test_cart_recovery_simulation_shows_sms_push_order_conversion_and_exit(cart_recovery):
    result = simulate(cart_recovery, parse_simulation(story()))

    assert rows(result) == [
        ("Tue 21:14", "event", "Cart Abandoned", None),
        ("Tue 21:14", "entry", "entered", None),
        ("Tue 21:14", "wait45", "delayed", None),
        ("Tue 21:59", "sms", "sent", "sms"),
        ("Tue 21:59", "until_morning", "waiting", None),
        ("Wed 09:00", "until_morning", "timed_out", None),
        ("Wed 09:00", "push", "sent", "push"),
        ("Wed 09:00", "after_push", "waiting", None),
        ("Wed 19:42", "event", "Order Completed", None),
        ("Wed 19:42", "after_push", "converted", None),
        ("Wed 19:42", "after_push", "exited", None),
    ]
    sms, push = (e for e in result.timeline if e.get("message"))
    assert sms["message"] == {"channel": "sms", "status": "queued", "content": {"body": SMS_TEXT}}
    assert sms["at"] == dt.datetime(2026, 11, 24, 21, 59, tzinfo=NEW_YORK)
    assert push["message"] == {"channel": "push", "status": "queued", "content": PUSH_CONTENT}
    assert push["at"] == dt.datetime(2026, 11, 25, 9, 0, tzinfo=NEW_YORK)
    waiting = result.timeline[4]
    assert (waiting["kind"], waiting["detail"]) == ("wait_for_event", "for Order Completed until 2026-11-25 14:00 UTC")
    summary = result.summary
    assert {k: summary[k] for k in ("entered", "exited", "exit_reason", "converted", "conversion_value", "touch_sequence", "path")} == {
        "entered": True, "exited": True, "exit_reason": "converted", "converted": True,
        "conversion_value": Decimal("415.00"), "touch_sequence": ["sms", "push"],
        "path": ["entry", "wait45", "sms", "until_morning", "push", "after_push"],
    }
    assert summary["converted_at"] == ORDER_AT
    assert summary["customer"] == {"external_id": None, "timezone": "America/New_York"}
    assert summary["version"] == {"id": cart_recovery.live_version_id, "number": 1, "draft": False}


def test_simulation_result_as_json_has_iso_times_and_money_as_text(cart_recovery):
    body = simulate(cart_recovery, parse_simulation(story())).to_json()

    assert body["timeline"][0] == {"at": "2026-11-24T21:14:00-05:00", "kind": "event", "name": "Cart Abandoned", "properties": CART}
    assert body["timeline"][3]["at"] == "2026-11-25T02:59:00+00:00"
    assert body["summary"]["conversion_value"] == "415.00"
    assert body["summary"]["touch_sequence"] == ["sms", "push"]


def test_without_an_order_the_waits_time_out_and_the_journey_completes(cart_recovery):
    result = simulate(cart_recovery, parse_simulation(story(order=False)))

    assert rows(result)[-3:] == [
        ("Wed 09:00", "after_push", "waiting", None),
        ("Sat 09:00", "after_push", "timed_out", None),
        ("Sat 09:00", "done", "exited", None),
    ]
    assert result.timeline[-2]["port"] == "timed_out"
    summary = result.summary
    assert (summary["exited"], summary["exit_reason"], summary["converted"]) == (True, "completed", False)
    assert summary["touch_sequence"] == ["sms", "push"]  # what was sent, nothing credited
    assert summary["path"][-2:] == ["after_push", "done"]


def test_a_holdout_simulation_walks_the_path_and_sends_nothing(cart_recovery):
    result = simulate(cart_recovery, parse_simulation(story(holdout=True)))

    sends = [e for e in result.timeline if e.get("kind") == "send"]
    assert [(e["node_id"], e["outcome"], e["detail"], e["message"]) for e in sends] == [
        ("sms", "held_out", "sms: control group", None),
        ("push", "held_out", "push: control group", None),
    ]
    assert result.timeline[1]["detail"] == "control group: sent nothing"
    assert result.summary["touch_sequence"] == []
    assert result.summary["converted"] is True  # a control entrant's order still counts


def test_until_before_a_wait_ends_leaves_the_customer_waiting(cart_recovery):
    result = simulate(cart_recovery, parse_simulation(story(order=False, until="+10h")))

    assert rows(result)[-1] == ("Tue 21:59", "until_morning", "waiting", None)
    summary = result.summary
    assert (summary["exited"], summary["state"], summary["current_node"]) == (False, EnrollmentState.WAITING, "until_morning")
    assert summary["next_due_at"] == dt.datetime(2026, 11, 25, 9, 0, tzinfo=NEW_YORK)


def test_no_matching_entry_event_means_no_entry(cart_recovery):
    small_cart = {"customer": {"inline": MAYA_INLINE}, "start": TUESDAY_2114.isoformat(),
                  "events": [{"at": "+0m", "name": "Cart Abandoned", "properties": {"cart_value": 20}}]}

    result = simulate(cart_recovery, parse_simulation(small_cart))

    assert rows(result) == [("Tue 21:14", "event", "Cart Abandoned", None)]
    assert result.summary["entered"] is False
    assert "'Cart Abandoned'" in result.summary["note"]


# --- Nothing persists, nothing is sent --------------------------------------------------------


def test_simulation_leaves_no_rows_and_runs_no_commit_callbacks(cart_recovery, django_capture_on_commit_callbacks, monkeypatch):
    delivered: list[int] = []
    monkeypatch.setattr(delivery, "deliver", lambda message_id, **kw: delivered.append(message_id))
    before = counts()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = simulate(cart_recovery, parse_simulation(story()))

    assert len([e for e in result.timeline if e.get("message")]) == 2
    assert counts() == before
    assert callbacks == []
    assert delivered == []


@pytest.mark.django_db(transaction=True)
def test_outside_any_transaction_the_simulation_still_commits_nothing(monkeypatch):
    journey = make_live_journey(cart_recovery_graph(), name="Cart recovery", goal_event="Order Completed")
    delivered: list[int] = []
    monkeypatch.setattr(delivery, "deliver", lambda message_id, **kw: delivered.append(message_id))
    before = counts()
    assert not connection.in_atomic_block

    result = simulate(journey, parse_simulation(story()))

    assert result.summary["converted"] is True
    assert counts() == before
    assert delivered == []


def test_an_existing_customers_real_data_is_untouched(cart_recovery):
    maya = Customer.objects.create(
        external_id="maya-17", phone="+12125550117", timezone="America/New_York",
        traits={"first_name": "Maya"},
    )
    # Her real enrollment, waiting for an order: the simulated order must not wake it.
    real = Enrollment.objects.create(
        journey=cart_recovery, version=cart_recovery.live_version, customer=maya, state=EnrollmentState.WAITING,
        current_node="after_push", phase=Phase.RESUME, due_at=TUESDAY_2114 + dt.timedelta(days=3),
        waiting_for="Order Completed", context={"wait": {"since": TUESDAY_2114.isoformat()}}, trigger_key="once",
        entered_at=TUESDAY_2114,
    )
    before, maya_before = counts(), Customer.objects.filter(pk=maya.pk).values().get()
    data = story() | {"customer": {"external_id": "maya-17"}}

    result = simulate(cart_recovery, parse_simulation(data))

    assert result.summary["converted"] is True
    assert result.summary["customer"]["external_id"] == "maya-17"
    assert counts() == before
    assert Customer.objects.filter(pk=maya.pk).values().get() == maya_before
    real.refresh_from_db()
    assert (real.state, real.converted_at, real.context) == (EnrollmentState.WAITING, None, {"wait": {"since": TUESDAY_2114.isoformat()}})


def test_profile_updates_show_in_the_timeline_but_are_rolled_back():
    journey = make_live_journey(linear_graph(
        node("entry", "entry", trigger="api"),
        node("tag", "update_profile", trait="vip", value=True),
    ), name="Tagger")
    maya = Customer.objects.create(external_id="maya-17", traits={"first_name": "Maya"})

    result = simulate(journey, parse_simulation({"customer": {"external_id": "maya-17"}}))

    assert [(e["node_id"], e["outcome"], e["detail"]) for e in result.timeline] == [
        ("entry", "entered", ""), ("tag", "updated", "set vip = True"), ("tag", "exited", "end of path after out"),
    ]
    maya.refresh_from_db()
    assert maya.traits == {"first_name": "Maya"}


# --- Which version, which entry --------------------------------------------------------------


def test_the_draft_is_simulated_when_there_is_one(cart_recovery):
    graph = cart_recovery_graph()
    graph["nodes"][2]["config"]["content"]["sms"]["body"] = "New copy for {{ customer.first_name }}"
    draft = JourneyVersion.objects.create(journey=cart_recovery, number=2, graph=graph)

    result = simulate(cart_recovery, parse_simulation(story()))

    sms = next(e for e in result.timeline if e.get("node_id") == "sms")
    assert sms["message"]["content"] == {"body": "New copy for Maya"}
    assert result.summary["version"] == {"id": draft.pk, "number": 2, "draft": True}


def test_a_draft_journey_that_never_went_live_is_simulated_with_its_goal():
    journey = Journey.objects.create(name="Cart recovery draft", goal_event="Order Completed", goal_value_property="revenue")
    JourneyVersion.objects.create(journey=journey, number=1, graph=cart_recovery_graph())
    assert journey.status == JourneyStatus.DRAFT

    result = simulate(journey, parse_simulation(story()))

    summary = result.summary
    assert (summary["converted"], summary["conversion_value"], summary["exit_reason"]) == (True, Decimal("415.00"), "converted")
    assert rows(result)[-2:] == [("Wed 19:42", "after_push", "converted", None), ("Wed 19:42", "after_push", "exited", None)]


def test_an_api_entry_journey_enters_at_start_with_the_trigger_properties():
    journey = make_live_journey(linear_graph(
        node("entry", "entry", trigger="api"),
        node("hello", "send", channel="email", content={"email": {"subject": "Hi {{ trigger.code }}", "html": "<p>x</p>"}}),
    ), name="Welcome", category="transactional")
    data = {"customer": {"inline": {"email": "ada@example.com"}}, "start": "2026-03-02T10:00:00Z", "trigger": {"code": "A1"}}

    result = simulate(journey, parse_simulation(data))

    send = result.timeline[1]
    assert send["at"] == dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    assert send["message"] == {"channel": "email", "status": "queued", "content": {"subject": "Hi A1", "html": "<p>x</p>"}}
    assert result.summary["customer"]["timezone"] == "UTC"  # the default zone for a customer without one


def test_a_channel_without_an_address_is_suppressed_with_the_reason(cart_recovery):
    no_push = story() | {"customer": {"inline": {**MAYA_INLINE, "push": False}}}

    result = simulate(cart_recovery, parse_simulation(no_push))

    push = next(e for e in result.timeline if e.get("node_id") == "push")
    assert (push["outcome"], push["detail"], push["message"]["status"]) == ("suppressed", "push: no enabled push subscription", "suppressed")


# --- Bad input -------------------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("data", "fields"), [
    ([], [("", "must be a JSON object")]),
    ({}, [("customer", "is required: {\"external_id\": ...} or {\"inline\": {...}}")]),
    ({"customer": {"external_id": "a", "inline": {}}}, [("customer", "give exactly one of external_id (an existing customer) or inline")]),
    ({"customer": {"external_id": " "}}, [("customer.external_id", "must be a non-empty text")]),
    ({"customer": {"inline": {"timezone": "Mars/Olympus", "phone": "555", "push": "yes", "colour": "red"}}}, [
        ("customer.inline.colour", "is not a known key here"),
        ("customer.inline.timezone", "'Mars/Olympus' is not an IANA time zone name (e.g. America/New_York)"),
        ("customer.inline.phone", "must be an E.164 phone number: '+', country code, number, 8–15 digits (e.g. +14155550100)"),
        ("customer.inline.push", "must be true or false"),
    ]),
    ({"customer": {"external_id": "a"}, "events": [
        {"at": "+45m", "name": "A"}, {"at": "+2h", "name": "B"}, {"at": "tomorrow", "name": "C"},
        {"at": "+45x", "name": "D"}, {"name": "E"}, {"at": "2026-11-24T13:00:00", "name": "F"},
        {"at": "+1d", "name": "", "properties": []}, "G", {"at": "+40d", "name": "H"},
    ]}, [
        ("events.2.at", "not an ISO time or offset like +45m"),
        ("events.3.at", "not an ISO time or offset like +45m"),
        ("events.4.at", "is required"),
        ("events.5.at", "an ISO time needs a UTC offset, e.g. 2026-11-24T21:14:00-05:00 or …Z"),
        ("events.6.name", "must be a non-empty text of at most 200 characters"),
        ("events.6.properties", "must be an object"),
        ("events.7", "must be an object with at, name and properties"),
        ("events.8.at", "2027-01-03T12:00:00+00:00 is outside the simulation (2026-11-24T12:00:00+00:00 to 2026-12-24T12:00:00+00:00)"),
    ]),
    ({"customer": {"external_id": "a"}, "start": "+1h", "until": "+91d", "holdout": 1, "trigger": [], "speed": 2}, [
        ("speed", "is not a known key here"),
        ("start", "not an ISO time like 2026-11-24T21:14:00-05:00"),
        ("until", "may be at most 90 days after start"),
        ("holdout", "must be true or false"),
        ("trigger", "must be an object of properties"),
    ]),
    ({"customer": {"external_id": "a"}, "until": "2026-11-01T00:00:00Z"}, [("until", "must be after start")]),
])
def test_invalid_input_names_every_field(data, fields):
    with pytest.raises(SimulationInputError) as caught:
        parse_simulation(data, now=NOW)

    assert caught.value.fields == fields


def test_offsets_are_read_from_start_and_events_are_put_in_order():
    sim = parse_simulation({
        "customer": {"inline": {"phone": "+4402079460000"}}, "start": "2026-11-24T12:00:00Z",
        "events": [{"at": "+1d2h30m", "name": "Late"}, {"at": "+45m", "name": "Early", "properties": {"a": 1}}],
        "until": "+7d",
    })

    assert sim == SimulationInput(
        start=NOW, until=NOW + dt.timedelta(days=7),
        events=(ScriptedEvent(NOW + dt.timedelta(minutes=45), "Early", {"a": 1}), ScriptedEvent(NOW + dt.timedelta(days=1, hours=2, minutes=30), "Late")),
        inline=InlineCustomer(phone="+442079460000"),
    )


def test_defaults_start_now_and_run_thirty_days():
    sim = parse_simulation({"customer": {"external_id": "a"}}, now=NOW + dt.timedelta(microseconds=5))

    assert (sim.start, sim.until, sim.events, sim.holdout) == (NOW, NOW + dt.timedelta(days=30), (), False)


def test_an_unknown_customer_is_named_by_its_field(cart_recovery):
    before = counts()

    with pytest.raises(SimulationInputError) as caught:
        simulate(cart_recovery, parse_simulation({"customer": {"external_id": "nobody"}}))

    assert caught.value.fields == [("customer.external_id", "no customer has external_id 'nobody'")]
    assert counts() == before


def test_an_invalid_draft_lists_its_problems_instead_of_simulating(cart_recovery):
    graph = cart_recovery_graph()
    graph["edges"] = [e for e in graph["edges"] if e["to"] != "push"]  # push is now unreachable
    JourneyVersion.objects.create(journey=cart_recovery, number=2, graph=graph)

    with pytest.raises(graphs.InvalidGraph) as caught:
        simulate(cart_recovery, parse_simulation(story()))

    assert [(p.node_id, p.message) for p in caught.value.problems] == [
        ("push", "cannot be reached from the entry node"),
        ("after_push", "cannot be reached from the entry node"),
    ]


# --- The API ---------------------------------------------------------------------------------


@pytest.fixture
def mounted(settings):
    settings.ROOT_URLCONF = __name__


def test_api_answers_the_timeline_as_json(mounted, api_client, cart_recovery):
    before = counts()

    response = api_client.post(f"/api/v1/journeys/{cart_recovery.pk}/simulate", story(), format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    sms = next(e for e in body["timeline"] if e.get("node_id") == "sms")
    assert (sms["at"], sms["message"]["content"]["body"]) == ("2026-11-25T02:59:00+00:00", SMS_TEXT)
    assert body["summary"]["conversion_value"] == "415.00"
    assert body["summary"]["exit_reason"] == "converted"
    assert counts() == before


def test_api_names_invalid_fields(mounted, api_client, cart_recovery):
    data = story() | {"events": [{"at": "soon", "name": "Cart Abandoned"}]}

    response = api_client.post(f"/api/v1/journeys/{cart_recovery.pk}/simulate", data, format="json")

    assert response.status_code == 400
    assert response.json() == {"error": {
        "code": "invalid", "message": "The simulation has invalid fields; nothing was simulated.",
        "fields": [{"field": "events.0.at", "reason": "not an ISO time or offset like +45m"}],
    }}


def test_api_names_an_unknown_customer(mounted, api_client, cart_recovery):
    response = api_client.post(f"/api/v1/journeys/{cart_recovery.pk}/simulate", {"customer": {"external_id": "x"}}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == [{"field": "customer.external_id", "reason": "no customer has external_id 'x'"}]


def test_api_lists_graph_problems(mounted, api_client):
    journey = Journey.objects.create(name="Empty")
    JourneyVersion.objects.create(journey=journey, number=1, graph={"nodes": [], "edges": []})

    response = api_client.post(f"/api/v1/journeys/{journey.pk}/simulate", story(), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_graph"
    assert response.json()["error"]["fields"] == [
        {"field": "graph.nodes", "reason": "needs an entry node: it is how people enter the journey", "node": None},
    ]


def test_api_unknown_journey_is_404(mounted, api_client):
    response = api_client.post("/api/v1/journeys/999999/simulate", story(), format="json")

    assert response.status_code == 404


def test_api_requires_the_manage_scope(mounted, make_api_key, cart_recovery):
    from rest_framework.test import APIClient

    _, clear = make_api_key(("read",))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")

    response = client.post(f"/api/v1/journeys/{cart_recovery.pk}/simulate", story(), format="json")

    assert response.status_code == 403


def test_schema_with_the_endpoint_is_valid_without_warnings(tmp_path):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--urlconf", __name__, "--file", str(tmp_path / "schema.yaml"),
        stdout=StringIO(), stderr=StringIO(),
    )
    assert "/api/v1/journeys/{journey_id}/simulate" in (tmp_path / "schema.yaml").read_text()


def test_every_time_reported_is_a_virtual_one(cart_recovery):
    # The run takes real milliseconds; none of them may leak into the timeline.
    result = simulate(cart_recovery, parse_simulation(story()))

    assert {e["at"] for e in result.timeline} <= {
        TUESDAY_2114, dt.datetime(2026, 11, 24, 21, 59, tzinfo=NEW_YORK),
        dt.datetime(2026, 11, 25, 9, 0, tzinfo=NEW_YORK), ORDER_AT,
    }

