"""The web shell: signing in and out, the navigation each role sees, the Overview numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
import time_machine
from django.urls import reverse

from channels_app.models import Message, MessageStatus
from customers.enums import Category, Channel, ConsentStatus
from customers.models import ConsentChange, Customer, Event
from orchestrator.roles import Role

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


class NavItems(HTMLParser):
    """The main navigation's entries: (label, href or None, disabled, current)."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "nav-link" in (attrs.get("class") or "").split():
            self._open = {
                "label": "",
                "href": attrs.get("href"),
                "disabled": attrs.get("aria-disabled") == "true",
                "current": attrs.get("aria-current") == "page",
                "title": attrs.get("title"),
                "tag": tag,
            }

    def handle_data(self, data):
        if self._open is not None:
            self._open["label"] += data

    def handle_endtag(self, tag):
        if self._open is not None and tag == self._open["tag"]:
            self._open["label"] = " ".join(self._open["label"].split())
            self.items.append(self._open)
            self._open = None


def nav_of(response) -> dict[str, dict]:
    parser = NavItems()
    parser.feed(response.content.decode())
    return {item["label"]: item for item in parser.items}


# --- Signing in and out -------------------------------------------------------------------


def test_login_page_is_a_sign_in_form_without_the_app_navigation(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Sign in</h1>" in html
    assert 'name="username"' in html and 'name="password"' in html
    assert 'autocomplete="current-password"' in html
    assert nav_of(response) == {}


def test_signing_in_lands_a_messaging_user_on_the_overview(client, make_user):
    make_user(Role.MESSAGING, username="milo")
    response = client.post(reverse("login"), {"username": "milo", "password": "correct-horse-battery"})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    overview = client.get(reverse("home"))
    assert overview.status_code == 200
    assert "<h1>Overview</h1>" in overview.content.decode()


def test_signing_in_with_a_wrong_password_shows_an_error_and_stays_signed_out(client, make_user):
    make_user(Role.MESSAGING, username="milo")
    response = client.post(reverse("login"), {"username": "milo", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_signing_in_returns_to_the_page_asked_for(client, make_user):
    make_user(Role.MARKETER, username="mara")
    response = client.post(
        reverse("login"), {"username": "mara", "password": "correct-horse-battery", "next": "/customers/?q=ada"}
    )
    assert response["Location"] == "/customers/?q=ada"


def test_logout_is_a_post_that_ends_the_session(client, make_user):
    client.force_login(make_user(Role.MESSAGING))
    assert client.get(reverse("logout")).status_code == 405
    assert "_auth_user_id" in client.session

    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("home"))["Location"] == f"{reverse('login')}?next=/"


def test_every_page_offers_a_logout_form_that_posts(client, make_user):
    client.force_login(make_user(Role.MESSAGING, username="milo"))
    html = client.get(reverse("customers:list")).content.decode()
    assert f'<form method="post" action="{reverse("logout")}" class="logout-form">' in html
    assert '<strong class="who-name">milo</strong>' in html
    assert '<span class="who-roles">Messaging team</span>' in html


# --- Navigation per role ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.MARKETER, ["Journeys", "Customers", "Segments"]),
        (Role.MESSAGING, ["Journeys", "Customers", "Segments", "Dashboards", "Cadence"]),
        (Role.ADMIN, ["Journeys", "Customers", "Segments", "Dashboards", "Cadence", "Admin"]),
    ],
)
def test_navigation_shows_what_the_role_may_open(client, make_user, role, expected):
    client.force_login(make_user(role))
    nav = nav_of(client.get(reverse("customers:list")))
    assert list(nav) == expected
    assert nav["Customers"]["href"] == reverse("customers:list")
    assert nav["Customers"]["current"] is True


@pytest.mark.parametrize("role", list(Role))
def test_journeys_points_at_the_journeys_list_for_every_role(client, make_user, role):
    client.force_login(make_user(role))
    journeys = nav_of(client.get(reverse("customers:list")))["Journeys"]
    assert journeys["tag"] == "a"
    assert journeys["href"] == reverse("journeys:list")
    assert journeys["disabled"] is False


def test_dashboards_points_at_the_overview_and_admin_at_the_admin_site(client, make_user):
    client.force_login(make_user(Role.ADMIN))
    nav = nav_of(client.get(reverse("home")))
    assert nav["Dashboards"]["href"] == reverse("home")
    assert nav["Dashboards"]["current"] is True
    assert nav["Admin"]["href"] == "/admin/"


def test_superuser_without_a_role_sees_everything_and_is_called_superuser(client, make_user):
    client.force_login(make_user(None, username="root", superuser=True))
    response = client.get(reverse("home"))
    assert list(nav_of(response)) == ["Journeys", "Customers", "Segments", "Dashboards", "Cadence", "Admin"]
    assert '<span class="who-roles">Superuser</span>' in response.content.decode()


def test_base_layout_loads_vendored_htmx_and_sends_the_csrf_token(client, make_user):
    client.force_login(make_user(Role.MESSAGING))
    html = client.get(reverse("home")).content.decode()
    assert '<script src="/static/vendor/htmx/htmx.min.js"></script>' in html
    assert '<script src="/static/js/chorus.js"></script>' in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert "https://" not in html.split("<body")[0]  # nothing from a CDN in the head


def test_marketers_start_at_customers_because_they_have_no_dashboards(client, make_user):
    client.force_login(make_user(Role.MARKETER))
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:list")


# --- Overview numbers ------------------------------------------------------------------------


def _message(customer, channel, status, at, n=[0]):  # noqa: B006 - a counter for unique keys
    n[0] += 1
    return Message.objects.create(
        customer=customer, channel=channel, category=Category.MARKETING, status=status, queued_at=at, idempotency_key=f"k{n[0]}"
    )


@pytest.fixture
def activity():
    recent = Customer.objects.create(external_id="recent", last_seen_at=NOW - timedelta(days=6, hours=23))
    old = Customer.objects.create(external_id="old", last_seen_at=NOW - timedelta(days=7, seconds=1))
    Customer.objects.create(external_id="just-now", last_seen_at=NOW)
    for at in (NOW - timedelta(hours=1), NOW - timedelta(hours=23, minutes=59), NOW - timedelta(hours=24, seconds=1)):
        Event.objects.create(customer=recent, name="Viewed", occurred_at=at, source="test")
    _message(recent, Channel.EMAIL, MessageStatus.DELIVERED, NOW - timedelta(days=1))
    _message(recent, Channel.EMAIL, MessageStatus.OPENED, NOW - timedelta(days=2))
    _message(old, Channel.EMAIL, MessageStatus.DELIVERED, NOW - timedelta(days=6))
    _message(recent, Channel.SMS, MessageStatus.FAILED, NOW - timedelta(hours=3))
    _message(recent, Channel.PUSH, MessageStatus.DELIVERED, NOW - timedelta(days=3))
    _message(recent, Channel.SMS, MessageStatus.DELIVERED, NOW - timedelta(days=8))  # too old
    changes = [
        (Channel.EMAIL, ConsentStatus.UNSUBSCRIBED, NOW - timedelta(days=2)),
        (Channel.SMS, ConsentStatus.OPTED_OUT, NOW - timedelta(days=29)),
        (Channel.EMAIL, ConsentStatus.COMPLAINED, NOW - timedelta(days=10)),
        (Channel.EMAIL, ConsentStatus.BOUNCED, NOW - timedelta(days=1)),  # not the customer's choice
        (Channel.SMS, ConsentStatus.OPTED_IN, NOW - timedelta(days=1)),  # not an opt-out
        (Channel.PUSH, ConsentStatus.OPTED_OUT, NOW - timedelta(days=31)),  # too old
    ]
    for channel, status, at in changes:
        ConsentChange.objects.create(
            customer=recent, channel=channel, category=Category.MARKETING, status=status, source="test", changed_at=at
        )


def _bars(bars):
    return [(bar.key, bar.count) for bar in bars]


def test_overview_numbers_are_exact(client, make_user, activity):
    client.force_login(make_user(Role.MESSAGING))
    context = client.get(reverse("home")).context
    assert context["customers_total"] == 3
    assert context["customers_seen_7d"] == 2
    assert context["events_24h"] == 2
    assert context["messages_7d"] == 5
    assert _bars(context["messages_by_channel"]) == [("email", 3), ("sms", 1), ("push", 1), ("in_app", 0)]
    assert _bars(context["messages_by_status"]) == [("delivered", 3), ("opened", 1), ("failed", 1)]
    assert context["opt_outs_30d"] == 3
    assert _bars(context["opt_outs_by_channel"]) == [("email", 2), ("sms", 1), ("push", 0), ("in_app", 0)]
    assert [(c.channel, c.status) for c in context["recent_opt_outs"]] == [
        ("email", "unsubscribed"),
        ("email", "complained"),
        ("sms", "opted_out"),
    ]


def test_overview_renders_the_numbers(client, make_user, activity):
    client.force_login(make_user(Role.MESSAGING))
    html = client.get(reverse("home")).content.decode()
    assert '<span class="stat-value">3</span>\n    <span class="stat-foot">2 seen in the last 7 days</span>' in html
    assert '<div class="stat card" id="stat-events">\n    <span class="stat-label">Events</span>\n    <span class="stat-value">2</span>' in html
    assert 'style="width: 100%"' in html  # the largest bar fills its track
    assert 'style="width: 33%"' in html  # SMS: 1 of email's 3


def test_overview_of_an_empty_workspace_shows_zeros(client, make_user):
    client.force_login(make_user(Role.ADMIN))
    context = client.get(reverse("home")).context
    assert (context["customers_total"], context["events_24h"], context["messages_7d"], context["opt_outs_30d"]) == (0, 0, 0, 0)
    assert context["messages_by_status"] == []
    assert "No messages in the last 7 days." in client.get(reverse("home")).content.decode()


def test_overview_query_count_does_not_grow_with_data(client, make_user, activity, django_assert_max_num_queries):
    client.force_login(make_user(Role.MESSAGING))
    with django_assert_max_num_queries(9):
        client.get(reverse("home"))
    customer = Customer.objects.get(external_id="recent")
    for n in range(20):
        _message(customer, list(Channel)[n % 4], MessageStatus.SENT, NOW - timedelta(hours=n))
        ConsentChange.objects.create(
            customer=customer, channel=Channel.EMAIL, category=Category.MARKETING, status=ConsentStatus.UNSUBSCRIBED,
            source="test", changed_at=NOW - timedelta(hours=n),
        )
    with django_assert_max_num_queries(9):
        client.get(reverse("home"))

