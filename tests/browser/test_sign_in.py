"""Signing in through the login form lands a Messaging-team user on the Overview."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from orchestrator.roles import Role
from tests import api_factories as make

pytestmark = pytest.mark.django_db(transaction=True)


def test_messaging_user_signs_in_and_sees_the_overview_with_the_customer_count(
    page: Page, live_server, make_user
):
    make_user(Role.MESSAGING, username="mira")
    for _ in range(3):
        make.customer()

    page.goto("/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/")
    page.get_by_label("Username").fill("mira")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(page.locator("#stat-customers .stat-value")).to_have_text("3")
    expect(page.locator(".sidebar-user .who-name")).to_have_text("mira")
    expect(page.locator(".sidebar-user .who-roles")).to_have_text("Messaging team")


def test_wrong_password_keeps_the_user_on_the_login_form_with_an_error(
    page: Page, live_server, make_user
):
    make_user(Role.MESSAGING, username="mira")

    page.goto("/login/")
    page.get_by_label("Username").fill("mira")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_have_text(
        "Please enter a correct username and password. Note that both fields may be case-sensitive."
    )
    expect(page).to_have_url(f"{live_server.url}/login/")
    expect(page.get_by_label("Username")).to_have_value("mira")
