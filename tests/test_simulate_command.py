"""`manage.py simulate_journey`: the simulator's timeline, printed in the customer's local time."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from customers.models import Customer, Event
from orchestrator.engine.models import Enrollment
from tests.api_factories import opted_in
from tests.journey_factories import make_live_journey
from tests.test_journey_launch_story import cart_recovery_graph

pytestmark = pytest.mark.django_db

INLINE = json.dumps({
    "timezone": "America/New_York", "phone": "+12125550117", "push": True, "traits": {"first_name": "Maya"},
})
EVENTS = [
    {"at": "+0m", "name": "Cart Abandoned", "properties": {
        "cart_value": 280, "product_name": "Silk wrap dress", "price": 280, "accessories": ["the gold hoops", "the suede clutch"]}},
    {"at": "2026-11-25T19:42:00-05:00", "name": "Order Completed", "properties": {"revenue": 415}},
]
START = "2026-11-24T21:14:00-05:00"


@pytest.fixture
def cart_recovery(db):
    return make_live_journey(
        cart_recovery_graph(), name="Cart recovery", goal_event="Order Completed", goal_value_property="revenue",
    )


def run(*args) -> str:
    out = StringIO()
    call_command("simulate_journey", *args, stdout=out)
    return out.getvalue()


def test_prints_one_line_per_entry_in_the_customers_time_then_the_outcome(cart_recovery):
    output = run("Cart recovery", "--inline", INLINE, "--events", json.dumps(EVENTS), "--start", START)

    assert output.splitlines() == [
        "Cart recovery v1 (published) for an inline customer, times in America/New_York:",
        '  Tue 2026-11-24 21:14  event            Cart Abandoned {"cart_value": 280, "product_name": "Silk wrap dress", '
        '"price": 280, "accessories": ["the gold hoops", "the suede clutch"]}',
        "  Tue 2026-11-24 21:14  entry            entered",
        "  Tue 2026-11-24 21:14  wait45           delayed    for 45 minutes",
        "  Tue 2026-11-24 21:59  sms              sent       → sms queued: 'Hi Maya, your Silk wrap dress ($280) is waiting. "
        "It pairs beautifully…'",
        "  Tue 2026-11-24 21:59  until_morning    waiting    for Order Completed until 2026-11-25 14:00 UTC",
        "  Wed 2026-11-25 09:00  until_morning    timed_out",
        "  Wed 2026-11-25 09:00  push             sent       → push queued: 'Still thinking it over? / Your Silk wrap dress is "
        "still in your bag.'",
        "  Wed 2026-11-25 09:00  after_push       waiting    for Order Completed until 2026-11-28 14:00 UTC",
        '  Wed 2026-11-25 19:42  event            Order Completed {"revenue": 415}',
        "  Wed 2026-11-25 19:42  after_push       converted  Order Completed worth 415.00 after sms → push",
        "  Wed 2026-11-25 19:42  after_push       exited     goal reached",
        "Outcome: exited (converted)",
        "Converted: 415.00 after sms → push",
        "Path: entry → wait45 → sms → until_morning → push → after_push",
    ]


def test_json_output_and_events_from_a_file_for_an_existing_customer(cart_recovery, tmp_path):
    opted_in(Customer.objects.create(external_id="maya-17", phone="+12125550117", timezone="Europe/Paris", traits={"first_name": "Maya"}))
    script = tmp_path / "events.json"
    script.write_text(json.dumps(EVENTS))

    body = json.loads(run(str(cart_recovery.pk), "--customer", "maya-17", "--events", f"@{script}", "--start", START, "--json"))

    assert body["summary"]["customer"] == {"external_id": "maya-17", "timezone": "Europe/Paris"}
    assert body["summary"]["touch_sequence"] == ["sms"]  # no push device: the push was suppressed
    assert body["summary"]["conversion_value"] == "415.00"
    assert (Event.objects.count(), Enrollment.objects.count()) == (0, 0)


def test_invalid_input_is_an_error_naming_each_field(cart_recovery):
    with pytest.raises(CommandError) as caught:
        run("Cart recovery", "--customer", "maya-17", "--events", '[{"at": "soon", "name": "X"}]', "--until", "+100d")

    assert str(caught.value) == (
        "Invalid simulation:\n"
        "  until: may be at most 90 days after start\n"
        "  events.0.at: not an ISO time or offset like +45m"
    )


@pytest.mark.parametrize(("args", "message"), [
    (("Nope", "--customer", "x"), "No journey has the id or name 'Nope'."),
    (("Cart recovery", "--inline", "{nope"), "--inline: not valid JSON"),
    (("Cart recovery", "--customer", "x", "--events", "@/no/such/file.json"), "--events: cannot read '/no/such/file.json'"),
    (("Cart recovery", "--customer", "nobody"), "customer.external_id: no customer has external_id 'nobody'"),
])
def test_other_mistakes_are_clear_errors(cart_recovery, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args)
