"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

Every test here runs in a transactional database (the live server's threads must see the
test's data), and Chromium is the system one at /usr/bin/chromium: Playwright's own browser
downloads are never used. Without it these tests skip, or fail when CHORUS_REQUIRE_BROWSER=1
(CI), so a missing browser can never pass CI silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from playwright.sync_api import BrowserContext, expect

from orchestrator.roles import Role

HERE = Path(__file__).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]

# Headroom for a loaded CI machine running the rest of the suite in parallel.
expect.set_options(timeout=10_000)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last, after pytest-django's ordering (and on each xdist worker,
    which runs its share in collection order).

    Playwright's sync API leaves its asyncio loop set as this thread's running loop until
    the session ends, which breaks what comes later in the same process: the test client
    (async_to_sync refuses to run beside a loop), ORM calls, asyncio.run().
    """
    items.sort(key=lambda item: HERE in item.path.parents)  # stable: otherwise unchanged


@pytest.fixture(scope="session", autouse=True)
def _allow_orm_beside_playwright() -> Iterator[None]:
    # With Playwright's loop set as running, Django refuses ORM calls from this thread
    # (test data, assertions, pytest-django's flush) unless told they are safe: they are,
    # nothing here runs inside that loop.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


def _create_role_groups() -> None:
    for role in Role:
        Group.objects.get_or_create(name=role.value)


@pytest.fixture(scope="session", autouse=True)
def _require_chromium() -> None:
    """Runs before Playwright starts (autouse, session scope), so a missing browser reports
    itself plainly rather than as a launch error."""
    if os.path.exists(CHROMIUM):
        return
    message = f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CHORUS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message}; CHORUS_REQUIRE_BROWSER=1 forbids skipping them", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="package", autouse=True)
def _role_groups_outlive_the_flush(django_db_setup, django_db_blocker):
    """Transactional tests end by flushing every table, the role groups from the data
    migration included: put them back for the tests that run after this package."""
    yield
    with django_db_blocker.unblock():
        _create_role_groups()
        # While Playwright runs, this thread's `connections` are context-local (asgiref sees
        # its event loop), not the ones Django closes before dropping the test database.
        connection.close()


@pytest.fixture(autouse=True)
def _role_groups(transactional_db) -> None:
    # An earlier transactional test on this worker may have flushed them.
    _create_role_groups()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    headless = browser_type_launch_args.get("headless", True)  # --headed turns it off
    args = ["--headless", *CHROMIUM_ARGS] if headless else CHROMIUM_ARGS
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": args}


@pytest.fixture(scope="session")
def base_url(live_server) -> str:
    """page.goto("/customers/") goes to this worker's live server."""
    return live_server.url


@pytest.fixture
def sign_in(live_server) -> Callable[[BrowserContext, User], None]:
    """sign_in(context, user): a session cookie for the user, without the login form."""

    def sign_in(context: BrowserContext, user: User) -> None:
        client = Client()
        client.force_login(user)
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
        )

    return sign_in
