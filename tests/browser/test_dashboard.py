"""The cadence dashboard in Chromium: its charts draw with the seeded numbers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from channels_app.ledger import (
    QueueRequest,
    claim_many_for_sending,
    do_queue_message,
    record_sent_many,
)
from customers.models import ConsentChange, Customer
from journeys.models import Journey, JourneyStatus, JourneyVersion
from orchestrator.engine.models import Enrollment
from orchestrator.governor.models import GovernorVerdict
from orchestrator.roles import Role

pytestmark = pytest.mark.django_db(transaction=True)

ARTIFACTS = Path(__file__).parent / "artifacts"
GRAPH = {
    "nodes": [{"id": "wait", "kind": "delay", "config": {}}, {"id": "mail", "kind": "send", "config": {"channel": "email"}},
              {"id": "text", "kind": "send", "config": {"channel": "sms"}}],
    "edges": [{"from": "wait", "port": "out", "to": "mail"}, {"from": "mail", "port": "out", "to": "text"}],
}
# Chart.js instances on the page: (datasets, sum of every data point) per canvas.
CHARTS = """() => Array.from(document.querySelectorAll('canvas[data-chart]')).map(canvas => {
    const chart = Chart.getChart(canvas);
    if (!chart) return null;
    const total = chart.data.datasets.reduce((sum, d) => sum + d.data.reduce((a, b) => a + b, 0), 0);
    return {figure: canvas.closest('figure').id, datasets: chart.data.datasets.length, total};
})"""


def seed(now: dt.datetime) -> None:
    journeys = [Journey.objects.create(name=name, status=JourneyStatus.LIVE, tags=[tag])
                for name, tag in (("Welcome", "lifecycle"), ("Win back", "retention"))]
    versions = [JourneyVersion.objects.create(journey=j, number=1, graph=GRAPH, published_at=now) for j in journeys]
    channels = ["email", "push", "sms", "in_app"]
    key = 0
    for c in range(8):
        customer = Customer.objects.create(external_id=f"c{c}", email=f"person{c}@example.com")
        for day in range(6):
            for n in range(1 + (c + day) % 4):
                key += 1
                at = now - dt.timedelta(days=day, hours=n + 1)
                pk = do_queue_message(QueueRequest(customer_id=customer.pk, channel=channels[(c + n) % 4],
                                                   category="marketing", idempotency_key=f"k{key}", at=at,
                                                   journey_id=journeys[(c + n) % 2].pk)).message.pk
                claim_many_for_sending([pk], at=at)
                record_sent_many([(pk, "outbox", f"p{key}")], at=at)
        GovernorVerdict.objects.create(customer=customer, decision="defer", rule="quiet hours sms", reason="quiet",
                                       channel="sms", category="marketing", at=now - dt.timedelta(hours=c + 2),
                                       until=now - dt.timedelta(hours=c), journey_id=journeys[0].pk)
        ConsentChange.objects.create(customer=customer, channel=channels[c % 3], category="marketing",
                                     status="unsubscribed", source="test", changed_at=now - dt.timedelta(hours=c))
        for j, version in zip(journeys, versions, strict=True):
            Enrollment.objects.create(journey=j, version=version, customer=customer, current_node="wait",
                                      due_at=now + dt.timedelta(hours=3 + 7 * c), trigger_key="once")


def test_the_cadence_dashboard_draws_its_charts_with_data(page: Page, make_user, sign_in):
    seed(timezone.now())
    sign_in(page.context, make_user(Role.MESSAGING, username="mira"))
    page.set_viewport_size({"width": 1400, "height": 900})

    page.goto("/dashboards/cadence/")

    expect(page.get_by_role("heading", level=1)).to_have_text("Cadence")
    expect(page.locator("#panel-pressure canvas").first).to_be_visible()
    charts = page.evaluate(CHARTS)
    assert None not in charts
    drawn = {c["figure"]: c for c in charts}
    for figure in ("figure-pressure-per-day", "figure-pressure-heaviest", "figure-mix-per-day", "figure-mix-by-tag",
                   "figure-governor-quiet", "figure-fatigue-signals", "figure-upcoming-by-day", "figure-overlap-pairs"):
        assert drawn[figure]["datasets"] >= 1 and drawn[figure]["total"] > 0, figure
    assert drawn["figure-mix-per-day"]["datasets"] == 4  # one per channel, stacked
    assert drawn["figure-overlap-pairs"]["total"] == 8  # everyone is in both journeys
    expect(page.locator("#panel-pressure")).to_have_attribute("hx-trigger", "every 30s")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # A bar of the collisions chart opens the customers inside both journeys.
    canvas = page.locator("#figure-overlap-pairs canvas")
    canvas.scroll_into_view_if_needed()
    bar = page.evaluate("""() => {
        const bar = Chart.getChart(document.querySelector('#figure-overlap-pairs canvas')).getDatasetMeta(0).data[0];
        return {x: bar.x - 5, y: bar.y};
    }""")
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + bar["x"], box["y"] + bar["y"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Inside Welcome and Win back")
    expect(page.locator("#results .card-title")).to_have_text("8 customers")
