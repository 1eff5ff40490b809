"""On a phone-sized screen the sidebar navigation collapses behind a menu button."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from orchestrator.roles import Role

pytestmark = pytest.mark.django_db(transaction=True)


def test_at_390px_the_navigation_collapses_into_a_menu_button_that_opens_it(
    page: Page, live_server, make_user, sign_in
):
    sign_in(page.context, make_user(Role.MESSAGING))
    menu = page.get_by_role("button", name="Menu")
    dashboards = page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboards")

    page.goto("/customers/")
    expect(dashboards).to_be_visible()  # wide screens: the sidebar is always there
    expect(menu).to_be_hidden()

    page.set_viewport_size({"width": 390, "height": 844})
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(dashboards).to_be_hidden()

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(dashboards).to_be_visible()

    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(dashboards).to_be_hidden()

    menu.click()
    dashboards.click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(dashboards).to_be_hidden()  # a new page starts with the menu closed
