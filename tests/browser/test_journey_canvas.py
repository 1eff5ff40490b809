"""The journey canvas in a real browser: a marketer builds the launch story by dragging kinds
from the palette and connecting ports with the mouse, configures every node in its panel,
is refused publishing for a marketing SMS without an opt-out (the problem shows on the
node), fixes it, publishes, and finds the canvas exactly as left after a reload.

The screenshot of the finished canvas lands in tests/browser/artifacts/journey_canvas.png.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from journeys.models import Journey, JourneyStatus
from journeys.services import JourneyInput, do_create_journey, do_update_journey
from orchestrator.roles import Role

ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = pytest.mark.content_rules  # publishing is refused for the SMS's missing opt-out


def drag(page: Page, start: dict, end: tuple[float, float]) -> None:
    """A real mouse drag: press, move in steps (pointer events fire), release."""
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def centre(box: dict) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drop_kind(page: Page, kind: str, node_id: str, world: tuple[int, int]) -> None:
    """Drag a kind from the palette to a point of the canvas (world coordinates at 100%)."""
    viewport = page.locator("#canvas-viewport").bounding_box()
    x, y = viewport["x"] + world[0] + 108, viewport["y"] + world[1] + 20  # the node's top centre
    drag(page, page.locator(f'[data-palette-kind="{kind}"]').bounding_box(), (x, y))
    expect(page.locator(f"#node-{node_id}")).to_be_visible()


def connect(page: Page, source: str, port: str, target: str) -> None:
    port_box = page.locator(f'#node-{source} .node-port[data-port="{port}"]').bounding_box()
    drag(page, port_box, centre(page.locator(f"#node-{target}").bounding_box()))
    expect(page.locator(f'.canvas-edge[data-from="{source}"][data-port="{port}"][data-to="{target}"]')).to_have_count(1)


def settled(page: Page) -> None:
    """htmx wires swapped-in content once it settles (20 ms later); a person is never faster."""
    expect(page.locator("#side-panel.htmx-settling, #side-panel .htmx-added")).to_have_count(0)


def open_panel(page: Page, node_id: str) -> None:
    page.locator(f"#node-{node_id} .node-label").click()
    expect(page.locator(f'#side-panel [data-panel-node="{node_id}"]')).to_be_visible()
    settled(page)


def choose(page: Page, name: str, value: str, then_shows: str) -> None:
    """Pick a mode; the panel re-renders with that mode's fields."""
    page.select_option(f'#side-panel [name="{name}"]', value)
    expect(page.locator(f'#side-panel [name="{then_shows}"]')).to_be_visible()
    settled(page)


def save(page: Page) -> None:
    page.locator("#node-form button[type=submit]").click()
    expect(page.locator("#side-panel .form-saved")).to_have_text("Saved.")
    settled(page)


def canvas_state(page: Page) -> tuple[dict, list]:
    nodes = page.eval_on_selector_all(
        ".canvas-board .canvas-node", "els => els.map(e => [e.dataset.nodeId, e.dataset.kind, e.style.left, e.style.top])"
    )
    edges = page.eval_on_selector_all(
        ".canvas-board .canvas-edge", "els => els.map(e => [e.dataset.from, e.dataset.port, e.dataset.to]).sort()"
    )
    return {n[0]: n[1:] for n in nodes}, edges


def test_marketer_builds_checks_fixes_and_publishes_the_launch_story(page: Page, context, sign_in, make_user):
    sign_in(context, make_user(Role.MARKETER, username="mara"))
    page.set_viewport_size({"width": 1280, "height": 800})

    # Create: a name, then the canvas with its entry node.
    page.goto("/journeys/")
    page.fill("#new-journey-name", "Launch story")
    page.click("#create-form button[type=submit]")
    expect(page.locator("#node-entry")).to_be_visible()
    page.click('[data-zoom="out"]')  # 83%: two columns of three nodes fit

    # Drag every kind from the palette (positions are world coordinates at 100%, then zoomed).
    scale = 1 / 1.2
    for kind, node_id, (x, y) in [
        ("delay", "delay-1", (40, 240)), ("send", "send-1", (40, 440)),
        ("wait_for_event", "wait-for-event-1", (330, 40)), ("send", "send-2", (330, 240)), ("exit", "exit-1", (330, 440)),
    ]:
        drop_kind(page, kind, node_id, (round(x * scale), round(y * scale)))

    # Connect ports to nodes: each exit of the wait is its own port.
    for source, port, target in [
        ("entry", "out", "delay-1"), ("delay-1", "out", "send-1"), ("send-1", "out", "wait-for-event-1"),
        ("wait-for-event-1", "happened", "exit-1"), ("wait-for-event-1", "timed_out", "send-2"), ("send-2", "out", "exit-1"),
    ]:
        connect(page, source, port, target)

    # Configure each node through its panel.
    open_panel(page, "entry")
    choose(page, "c.trigger", "event", "c.event")
    page.fill('[name="c.event"]', "Added to Cart")
    save(page)
    expect(page.locator("#node-entry .node-summary")).to_have_text("When Added to Cart happens")

    open_panel(page, "delay-1")
    choose(page, "c.mode", "duration", "c.amount")
    page.fill('[name="c.amount"]', "forty-five")
    page.select_option('[name="c.unit"]', "minutes")
    page.locator("#node-form button[type=submit]").click()
    expect(page.locator("#f-c-amount-error")).to_have_text("must be a whole number")  # inline, nothing saved
    settled(page)
    assert Journey.objects.get(name="Launch story").versions.get().graph["nodes"][1]["config"] == {}
    page.fill('[name="c.amount"]', "45")
    save(page)
    expect(page.locator("#node-delay-1 .node-summary")).to_have_text("Wait 45 minutes")

    open_panel(page, "send-1")
    choose(page, "c.channel", "sms", "c.content.sms.body")
    page.fill('[name="c.content.sms.body"]', "Hi {{ customer.first_name }}, your cart is waiting for you.")
    expect(page.locator("#rules-sms")).to_contain_text("1 SMS segment · GSM-7")
    expect(page.locator("#rules-sms")).to_contain_text("marketing SMS must tell people how to opt out")
    page.fill('[name="label"]', "SMS reminder")
    save(page)  # a draft may break the content rules: publishing is what refuses them

    open_panel(page, "wait-for-event-1")
    choose(page, "c.mode", "event", "c.event")
    page.fill('[name="c.event"]', "Order Completed")
    choose(page, "timeout_kind", "until", "c.timeout.until.time")
    page.fill('[name="c.timeout.until.time"]', "09:00")
    save(page)

    open_panel(page, "send-2")
    choose(page, "c.channel", "push", "c.content.push.title")
    page.fill('[name="c.content.push.title"]', "Still thinking it over?")
    page.fill('[name="c.content.push.body"]', "Your cart is saved. Finish your order in two taps.")
    expect(page.locator("#rules-push")).to_contain_text("Body 50 / 120 characters")
    save(page)
    page.keyboard.press("Escape")
    expect(page.locator("#side-panel .panel-intro")).to_be_visible()

    # Publishing is refused, and the problem is pinned on the SMS node.
    page.click("#publish-button")
    expect(page.locator("#side-panel")).to_contain_text("Cannot publish yet")
    expect(page.locator("#node-send-1 .node-problems")).to_contain_text("marketing SMS must tell people how to opt out")
    expect(page.locator("#node-send-1 .node-badge")).to_have_text("1")
    assert Journey.objects.get(name="Launch story").status == JourneyStatus.DRAFT

    # Fix it in the panel, then publish.
    open_panel(page, "send-1")
    page.fill('[name="c.content.sms.body"]', "Hi {{ customer.first_name }}, your cart is waiting. Reply STOP to opt out")
    expect(page.locator("#rules-sms")).to_contain_text("Meets the marketing content rules.")
    save(page)
    expect(page.locator("#node-send-1 .node-problems")).to_have_count(0)

    page.click("[data-zoom=\"fit\"]")
    page.click("text=Tidy layout")
    expect(page.locator("#undo-button")).to_be_enabled()
    page.click("#publish-button")
    expect(page.locator(".title-row .badge")).to_have_text("Live")
    expect(page.locator(".flash")).to_contain_text("Version 1 is published and live")

    page.click('[data-zoom="fit"]')
    before = canvas_state(page)
    page.reload()
    expect(page.locator("#node-exit-1")).to_be_visible()
    assert canvas_state(page) == before
    nodes, edges = before
    assert {node_id: kind for node_id, (kind, *_) in nodes.items()} == {
        "entry": "entry", "delay-1": "delay", "send-1": "send", "wait-for-event-1": "wait_for_event",
        "send-2": "send", "exit-1": "exit",
    }
    assert len(edges) == 6

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".editor").screenshot(path=str(ARTIFACTS / "journey_canvas.png"))


def test_keyboard_edits_undo_redo_and_a_concurrent_change_is_refused(page: Page, context, sign_in, make_user):
    mara = make_user(Role.MARKETER, username="mara")
    graph = {
        "nodes": [
            {"id": "entry", "kind": "entry", "config": {"trigger": "api"}, "position": {"x": 40, "y": 40}},
            {"id": "wait", "kind": "delay", "config": {"mode": "duration", "amount": 1, "unit": "hours"},
             "position": {"x": 40, "y": 240}},
            {"id": "bye", "kind": "exit", "config": {}, "position": {"x": 40, "y": 440}},
        ],
        "edges": [{"from": "entry", "port": "out", "to": "wait"}, {"from": "wait", "port": "out", "to": "bye"}],
    }
    journey = do_create_journey(JourneyInput(name="Keys", graph=graph), mara)
    sign_in(context, mara)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"/journeys/{journey.pk}/edit/")

    # Escape closes the panel; Delete removes the selected node and its edges.
    page.locator("#node-wait .node-label").click()
    expect(page.locator('#side-panel [data-panel-node="wait"]')).to_be_visible()
    expect(page.locator("#node-wait")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#side-panel .panel-intro")).to_be_visible()
    page.locator("#node-wait .node-label").click()
    page.keyboard.press("Escape")
    page.locator("#node-wait").focus()
    page.keyboard.press("Enter")
    expect(page.locator('#side-panel [data-panel-node="wait"]')).to_be_visible()
    page.locator("#node-wait").focus()
    page.keyboard.press("Delete")
    expect(page.locator("#node-wait")).to_have_count(0)
    expect(page.locator(".canvas-edge")).to_have_count(0)

    page.keyboard.press("Control+z")
    expect(page.locator("#node-wait")).to_be_visible()
    expect(page.locator(".canvas-edge")).to_have_count(2)
    page.keyboard.press("Control+Shift+z")
    expect(page.locator("#node-wait")).to_have_count(0)
    page.keyboard.press("Control+z")
    expect(page.locator("#node-wait")).to_be_visible()

    # An edge is selected by clicking it, and Delete removes it.
    page.locator('.canvas-edge[data-from="wait"] .edge-hit').click(force=True)
    expect(page.locator('.canvas-edge[data-from="wait"]')).to_have_class(re.compile("is-selected"))
    page.keyboard.press("Delete")
    expect(page.locator(".canvas-edge")).to_have_count(1)
    assert journey.versions.get().graph["edges"] == [{"from": "entry", "port": "out", "to": "wait"}]

    # The studio's simulated path lights the nodes and the edges between them.
    page.evaluate("htmx.trigger(document.body, 'chorus:simulated', {path: ['entry', 'wait']})")
    expect(page.locator(".canvas-node.is-on-path")).to_have_count(2)
    expect(page.locator(".canvas-edge.is-on-path")).to_have_count(1)
    page.evaluate("htmx.trigger(document.body, 'chorus:clear-path', {})")
    expect(page.locator(".is-on-path")).to_have_count(0)

    # Someone else changes the journey; this page's next edit is refused, saying who and when.
    eve = make_user(Role.MARKETER, username="eve")
    do_update_journey(journey, JourneyInput(graph={**graph, "edges": []}), eve)
    before = journey.versions.get().graph
    drag(page, page.locator("#node-bye .node-label").bounding_box(), (700, 600))
    expect(page.locator("#editor-alert")).to_contain_text("eve changed this journey at")
    expect(page.locator("#editor-alert")).to_contain_text("reload to see their changes")
    assert journey.versions.get().graph == before
    page.locator("#editor-alert a").click()
    expect(page.locator(".canvas-edge")).to_have_count(0)


def tall_story() -> dict:
    """Seven steps in a line, as the tidy layout stacks them: taller than any screen at 100%."""
    kinds = ["entry", *["delay"] * 5, "exit"]
    nodes = [{"id": f"n{i}", "kind": kind, "config": {"trigger": "api"} if kind == "entry" else
              {} if kind == "exit" else {"mode": "duration", "amount": i, "unit": "hours"},
              "position": {"x": 40, "y": 40 + i * 204}} for i, kind in enumerate(kinds)]
    edges = [{"from": f"n{i}", "port": "out", "to": f"n{i + 1}"} for i in range(len(kinds) - 1)]
    return {"nodes": nodes, "edges": edges}


def test_on_a_tablet_the_panel_is_a_drawer_beside_the_node_and_a_tall_journey_opens_fitted(page: Page, context, sign_in, make_user):
    mara = make_user(Role.MARKETER, username="mara")
    journey = do_create_journey(JourneyInput(name="Tall", graph=tall_story()), mara)
    sign_in(context, mara)
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto(f"/journeys/{journey.pk}/edit/")

    # Zoomed out to fit, no further than readable, and the entry in view.
    expect(page.locator(".zoom-level")).to_have_text("60%")
    expect(page.locator("#side-panel")).to_be_hidden()  # no drawer until there is something to show
    viewport = page.locator("#canvas-viewport").bounding_box()
    entry = page.locator("#node-n0").bounding_box()
    assert viewport["y"] <= entry["y"] and entry["y"] + entry["height"] <= viewport["y"] + viewport["height"]

    open_panel(page, "n1")
    panel = page.locator("#side-panel").bounding_box()
    node = page.locator("#node-n1").bounding_box()
    # The drawer lies over the canvas, and the node being configured stays clear of it.
    assert viewport["x"] < panel["x"] and panel["x"] + panel["width"] <= viewport["x"] + viewport["width"]
    assert node["x"] + node["width"] <= panel["x"]
    page.keyboard.press("Escape")
    expect(page.locator("#side-panel")).to_be_hidden()


def test_a_split_condition_is_built_from_rows_in_the_panel(page: Page, context, sign_in, make_user):
    mara = make_user(Role.MARKETER, username="mara")
    graph = {"nodes": [{"id": "entry", "kind": "entry", "config": {"trigger": "api"}, "position": {"x": 40, "y": 40}},
                       {"id": "vip", "kind": "split", "config": {}, "position": {"x": 40, "y": 244}}], "edges": []}
    journey = do_create_journey(JourneyInput(name="Split", graph=graph), mara)
    sign_in(context, mara)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"/journeys/{journey.pk}/edit/")

    open_panel(page, "vip")
    page.fill('[name="c.branches.0.port"]', "vip")
    page.locator("#cond-0 .cond-add button", has_text="+ Trait").click()
    expect(page.locator('[name="cb.0.conditions.0.trait"]')).to_be_visible()
    settled(page)
    page.fill('[name="cb.0.conditions.0.trait"]', "tier")
    expect(page.locator('[name="cb.0.conditions.0.operator"]')).to_have_value("eq")  # a new trait row starts at "is"
    page.locator("#node-form button[type=submit]").click()
    expect(page.locator("#cb0-conditions0value-error")).to_be_visible()  # a value is needed; nothing saved
    settled(page)
    assert Journey.objects.get(pk=journey.pk).versions.get().graph["nodes"][1]["config"] == {}
    page.fill('[name="cb.0.conditions.0.value"]', "vip")
    save(page)
    assert Journey.objects.get(pk=journey.pk).versions.get().graph["nodes"][1]["config"] == {"branches": [
        {"port": "vip", "condition": {"match": "all", "conditions": [{"type": "trait", "trait": "tier", "operator": "eq", "value": "vip"}]}}]}


def test_save_pressed_while_a_changed_select_re_renders_the_panel_is_not_lost(page: Page, context, sign_in, make_user):
    """The select's refresh is in flight when Save is pressed (both in one tick): Save
    waits for it, and still posts the form with the new choice."""
    mara = make_user(Role.MARKETER, username="mara")
    graph = {"nodes": [{"id": "entry", "kind": "entry", "config": {"trigger": "event", "event": "Signed Up"},
                        "position": {"x": 40, "y": 40}}], "edges": []}
    journey = do_create_journey(JourneyInput(name="Quick hands", graph=graph), mara)
    sign_in(context, mara)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"/journeys/{journey.pk}/edit/")
    open_panel(page, "entry")

    page.evaluate("""() => {
        const trigger = document.querySelector('#side-panel [name="c.trigger"]');
        trigger.value = "api";
        trigger.dispatchEvent(new Event("change", {bubbles: true}));
        document.querySelector("#node-form button[type=submit]").click();
    }""")

    expect(page.locator("#side-panel .form-saved")).to_have_text("Saved.")
    assert Journey.objects.get(pk=journey.pk).versions.get().graph["nodes"][0]["config"]["trigger"] == "api"
