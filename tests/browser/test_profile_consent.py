"""The customer profile: one timeline across sources, and consent changed inline by role."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from customers.consent import do_set_consent
from customers.models import Consent, ConsentChange, Customer
from orchestrator.roles import Role
from tests import api_factories as make

pytestmark = pytest.mark.django_db(transaction=True)


def maya_with_history() -> Customer:
    """An event, then a message, then an SMS marketing opt-in, an hour apart."""
    now = timezone.now()
    maya = make.customer(
        "cust-maya",
        traits={"first_name": "Maya", "last_name": "Chen"},
        phone="+14155550101",
        timezone="UTC",
    )
    make.event(maya, "Added to Cart", at=now - timedelta(hours=3), properties={"price": 280})
    make.message(maya, channel="sms", status="delivered", at=now - timedelta(hours=2))
    do_set_consent(
        maya, "sms", "marketing", "opted_in", source="import", at=now - timedelta(hours=1)
    )
    return maya


def test_messaging_user_changes_sms_marketing_consent_inline_and_the_timeline_follows(
    page: Page, make_user, sign_in
):
    maya = maya_with_history()
    mira = make_user(Role.MESSAGING, username="mira")
    sign_in(page.context, mira)
    titles = page.locator("#timeline .tl-item .tl-title")
    cell = page.locator("#consent-sms-marketing")

    page.goto(f"/customers/{maya.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Maya Chen")
    expect(titles).to_have_text(["SMS marketing consent", "SMS message", "Added to Cart"])
    expect(cell.locator(".badge")).to_have_text("Opted in")
    page.evaluate("window.loadedOnce = true")

    cell.get_by_text("Change").click()
    cell.get_by_label("SMS marketing consent").select_option("opted_out")
    cell.get_by_role("button", name="Save").click()

    expect(cell.locator(".badge")).to_have_text("Opted out")
    expect(cell.locator(".consent-saved")).to_have_text("Saved")
    expect(titles).to_have_text(
        ["SMS marketing consent", "SMS marketing consent", "SMS message", "Added to Cart"]
    )
    newest = page.locator("#timeline .tl-item").first
    expect(newest.locator(".badge")).to_have_text(["Opted in", "Opted out"])
    expect(newest.locator(".tl-meta span")).to_have_text(["Source: web: mira", "by mira"])
    assert page.evaluate("window.loadedOnce") is True
    changes = ConsentChange.objects.filter(
        customer=maya, channel="sms", category="marketing"
    ).order_by("id")
    assert [(c.previous_status, c.status, c.actor_id) for c in changes] == [
        ("", "opted_in", None),
        ("opted_in", "opted_out", mira.pk),
    ]
    assert (
        Consent.objects.get(customer=maya, channel="sms", category="marketing").status
        == "opted_out"
    )


def test_marketer_sees_the_consent_grid_read_only(page: Page, make_user, sign_in):
    maya = maya_with_history()
    sign_in(page.context, make_user(Role.MARKETER))

    page.goto(f"/customers/{maya.pk}/")

    expect(page.locator("#consent .card-header")).to_contain_text("Read-only for your role.")
    expect(page.locator("#consent-sms-marketing .badge")).to_have_text("Opted in")
    expect(page.locator("#consent .consent-edit")).to_have_count(0)
    expect(page.locator("#consent select")).to_have_count(0)
    expect(page.locator("#consent").get_by_role("button")).to_have_count(0)
    assert ConsentChange.objects.filter(customer=maya).count() == 1
