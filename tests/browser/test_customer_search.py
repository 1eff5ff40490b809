"""Live search on the customer list: htmx swaps the results in place and pushes ?q=."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from orchestrator.roles import Role
from tests import api_factories as make

pytestmark = pytest.mark.django_db(transaction=True)


def person(first: str, last: str, hours_ago: int):
    """A customer; the list is newest-seen first, so hours_ago fixes the row order."""
    return make.customer(
        traits={"first_name": first, "last_name": last},
        last_seen_at=make.T0 - timedelta(hours=hours_ago),
    )


def test_typing_in_the_search_box_swaps_in_exactly_the_matching_customers(
    page: Page, live_server, make_user, sign_in
):
    person("Ada", "Lovelace", hours_ago=1)
    person("Grace", "Hopper", hours_ago=2)
    person("Augusta", "Lovelace", hours_ago=3)
    person("Alan", "Turing", hours_ago=4)
    sign_in(page.context, make_user(Role.MESSAGING))
    names = page.locator("#results tbody .row-link")

    page.goto("/customers/")
    expect(names).to_have_text(["Ada Lovelace", "Grace Hopper", "Augusta Lovelace", "Alan Turing"])
    # Survives only if the page is never reloaded.
    page.evaluate("window.loadedOnce = true")

    page.get_by_role("searchbox", name="Search").press_sequentially("lovelace")

    expect(page).to_have_url(f"{live_server.url}/customers/?q=lovelace")
    expect(names).to_have_text(["Ada Lovelace", "Augusta Lovelace"])
    expect(page.locator("#results .card-title")).to_have_text("2 customers matching")
    assert page.evaluate("window.loadedOnce") is True
