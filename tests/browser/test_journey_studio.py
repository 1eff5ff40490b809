"""The studio beside the canvas, in a real browser: simulate the launch story for Maya.

The published cart recovery journey opens on the canvas; the toolbar's Simulate loads the
form into the side panel; Maya is found by name, her cart and her order are scripted, and
the run shows her timeline (SMS at 21:59, push at 09:00, the $415 conversion) while the
canvas highlights the six steps she walked, numbered in order. Live statistics fill each
node from the polling element. Then the toolbar's Preview shows the node selected on the
canvas, rendered for her. A screenshot is kept in tests/browser/artifacts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from customers.enums import Channel, PushPlatform
from customers.models import ContactPoint, Customer
from orchestrator.roles import Role
from tests.api_factories import event, opted_in
from tests.journey_factories import make_live_journey
from tests.test_journey_launch_story import TUESDAY_2114, cart_recovery_graph
from tests.test_simulator import ORDER_AT

pytestmark = pytest.mark.django_db(transaction=True)

ARTIFACTS = Path(__file__).parent / "artifacts"
STORY_PATH = ["entry", "wait45", "sms", "until_morning", "push", "after_push"]
CART_LINES = 'cart_value: 280\nproduct_name: Silk wrap dress\nprice: 280\naccessories: ["the gold hoops", "the suede clutch"]'


# Top down, as the canvas lays journeys out: an order goes left to the exit, a timeout right to the push.
LAYOUT = {
    "entry": ("Cart abandoned", 200, 20), "wait45": ("Wait 45 minutes", 200, 200), "sms": ("Cart SMS", 200, 380),
    "until_morning": ("Ordered by 09:00?", 200, 560), "push": ("Morning push", 400, 740),
    "after_push": ("Ordered within 3 days?", 400, 920), "done": ("Exit", 40, 1100),
}


def story_journey():
    graph = cart_recovery_graph()
    for item in graph["nodes"]:
        label, x, y = LAYOUT[item["id"]]
        item["label"], item["position"] = label, {"x": x, "y": y}
    return make_live_journey(
        graph, name="Cart recovery", goal_event="Order Completed", goal_window_seconds=7 * 24 * 3600,
        goal_value_property="revenue", exit_on_conversion=True,
    )


def maya() -> Customer:
    customer = Customer.objects.create(
        external_id="maya-17", email="maya@example.com", phone="+12125550117", timezone="America/New_York",
        traits={"first_name": "Maya", "last_name": "Okafor", "loyalty_tier": "gold"},
    )
    ContactPoint.objects.create(customer=customer, channel=Channel.SMS, address="+12125550117")
    ContactPoint.objects.create(customer=customer, channel=Channel.PUSH, platform=PushPlatform.IOS, address="fcm-maya")
    # Her real cart, which the preview reads event variables from.
    event(customer, "Cart Abandoned", properties={"cart_value": 280, "product_name": "Silk wrap dress", "price": 280})
    return opted_in(customer)


def test_simulating_the_story_customer_shows_her_timeline_and_highlights_her_path(page: Page, make_user, sign_in):
    journey = story_journey()
    maya()
    Customer.objects.create(external_id="bob-2", traits={"first_name": "Bob"})
    sign_in(page.context, make_user(Role.MARKETER, username="mara"))
    page.set_viewport_size({"width": 1280, "height": 1300})  # tall enough for the whole story in the screenshot

    page.goto(f"/journeys/{journey.pk}/edit/")
    page.get_by_role("button", name="Zoom out").click()
    # Live statistics arrive from the polling element: a live journey no one entered yet.
    expect(page.locator("#node-stats-sms [data-stat=sent] b")).to_have_text("0")

    page.locator("#studio-simulate-button").click()
    panel = page.locator("#side-panel #studio-simulate")
    expect(panel.get_by_label("Event", exact=True).first).to_have_value("Cart Abandoned")

    panel.get_by_label("Find a customer").press_sequentially("maya")
    panel.locator(".studio-match", has_text="Maya Okafor").click()
    expect(panel.get_by_label("External id")).to_have_value("maya-17")

    panel.get_by_label("Properties").first.fill(CART_LINES)
    panel.get_by_role("button", name="+ Event").click()
    panel.locator("[name=events-1-name]").fill("Order Completed")
    panel.locator("[name=events-1-at]").fill(ORDER_AT.isoformat())
    panel.locator("[name=events-1-properties]").fill("revenue: 415")
    panel.get_by_text("Start, end and control group").click()
    panel.get_by_label("Start").fill(TUESDAY_2114.isoformat())
    panel.get_by_role("button", name="Run simulation").click()

    rows = panel.locator(".sim-timeline .tl-item")
    expect(rows).to_have_count(11)
    expect(rows.nth(3)).to_contain_text("Sent · sms")
    expect(rows.nth(3).locator("time")).to_have_text("Tue 21:59")
    expect(rows.nth(3)).to_contain_text("Hi Maya, your Silk wrap dress ($280) is waiting.")
    expect(rows.nth(6).locator("time")).to_have_text("Wed 09:00")
    expect(panel.locator(".sim-summary")).to_contain_text("Converted · 415.00")

    on_path = page.locator(".canvas-node.is-on-path")
    expect(on_path).to_have_count(len(STORY_PATH))
    assert on_path.evaluate_all("nodes => nodes.map(n => [n.dataset.nodeId, n.dataset.pathStep])") == [
        [node_id, str(step)] for step, node_id in enumerate(STORY_PATH, start=1)
    ]
    expect(page.locator("#node-done")).not_to_have_class("is-on-path")
    # The panel scrolled to the timeline once it arrived.
    assert panel.locator(".sim-summary").evaluate(
        "el => { const box = el.getBoundingClientRect(), side = document.getElementById('side-panel').getBoundingClientRect();"
        " return box.top >= side.top - 1 && box.top < side.top + 40; }"
    )

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "journey_studio.png"), full_page=True)

    # Preview follows the node selected on the canvas.
    page.locator("#node-push .node-label").click()
    page.locator("#studio-preview-button").click()
    preview = page.locator("#side-panel #studio-preview")
    expect(preview.locator(".card-title")).to_have_text("Preview · Morning push")
    preview.get_by_label("Customer").press_sequentially("okafor")
    preview.locator(".studio-match", has_text="Maya Okafor").click()
    expect(preview.locator(".push-title")).to_have_text("Still thinking it over?")
    expect(preview.locator(".push-body")).to_have_text("Your Silk wrap dress is still in your bag.")
