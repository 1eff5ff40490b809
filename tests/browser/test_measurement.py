"""A marketer opens a journey's measurement in Chromium: the vendored Chart.js draws the
conversion rates and the attribution with the page's numbers, and changing the lookback
re-measures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from orchestrator.roles import Role
from tests import measurement_factories as f

pytestmark = pytest.mark.django_db(transaction=True)

C = datetime(2026, 5, 8, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def chart_data(page: Page, canvas_id: str):
    return page.evaluate(
        "id => { const chart = Chart.getChart(document.getElementById(id));"
        " return {labels: chart.data.labels, data: chart.data.datasets.map(d => [d.label, d.data])}; }",
        canvas_id,
    )


def test_marketer_sees_the_charts_drawn_with_the_measured_numbers(page: Page, make_user, sign_in):
    cart = f.journey("Cart recovery", holdout_percent=10)
    ann, bo, cy = f.customer("Ann"), f.customer("Bo"), f.customer("Cy")
    ann_in = f.converted(cart, ann, C, "120.00", entered_at=C - 3 * DAY)
    f.message(ann, "push", C - 2 * DAY, of=ann_in)  # two days before: outside a 1-day lookback
    f.message(ann, "email", C - timedelta(hours=2), of=ann_in)
    f.enrollment(cart, bo, entered_at=C - 3 * DAY)
    f.enrollment(cart, cy, entered_at=C - 3 * DAY, holdout=True)
    sign_in(page.context, make_user(Role.MARKETER))

    page.goto(f"/journeys/{cart.pk}/measurement/")

    expect(page.locator("#attribution-chart")).to_have_attribute("data-drawn", "true")
    expect(page.locator("#kpi-chart")).to_have_attribute("data-drawn", "true")
    # Sent to: 1 of 2 converted (50%); holdout: 0 of 1.
    assert chart_data(page, "kpi-chart") == {"labels": ["Sent to", "Holdout"], "data": [["Conversion rate (%)", [50, 0]]]}
    # Push then email: first touch to the push, last to the email, the rest split.
    assert chart_data(page, "attribution-chart") == {
        "labels": ["Email", "Push"],
        "data": [
            ["First touch", [0, 1]], ["Last touch", [1, 0]], ["Linear", [0.5, 0.5]],
            # 2^(-2/168) = 0.991782 and 2^(-48/168) = 0.820335: 0.991782 / 1.812117 = 0.5473
            ["Time decay", [0.5473, 0.4527]], ["Position based", [0.5, 0.5]],
        ],
    }
    expect(page.locator("#lift-sentence")).to_have_text(
        # Wilson(1, 2) = (0.0945, 0.9055), Wilson(0, 1) = (0, 0.7935):
        # low = 0.5 - sqrt(0.40547² + 0.79346²) = -0.3911, high = 0.5 + sqrt(0.40547² + 0²) = 0.90547
        "Converted 50.0% vs 0.0% in the holdout: +50.0 points (95% CI -39.1 to +90.5)"
    )

    page.get_by_label("Lookback (days)").select_option("1")
    page.get_by_role("button", name="Apply").click()

    expect(page).to_have_url(f"{page.url.split('?')[0]}?since=&until=&lookback=1&half_life=7")
    expect(page.locator("#attribution-chart")).to_have_attribute("data-drawn", "true")
    assert chart_data(page, "attribution-chart")["labels"] == ["Email"]
