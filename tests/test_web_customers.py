"""The customers list: live search, filters, the htmx fragment, pagination, query count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from channels_app.models import Message
from customers.enums import Category, Channel, ConsentStatus
from customers.models import Consent, ContactPoint, Customer
from orchestrator.governor.loading import load_policy
from orchestrator.roles import Role
from tests.api_factories import opted_in

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
URL = reverse("customers:list")
HTMX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def viewer(client, make_user):
    client.force_login(make_user(Role.MARKETER))
    return client


def listed(response) -> list[str]:
    return [customer.external_id for customer in response.context["page"].object_list]


def make(external_id, hours_ago=0, **fields):
    return Customer.objects.create(external_id=external_id, last_seen_at=NOW - timedelta(hours=hours_ago), **fields)


@pytest.fixture
def people():
    return {
        "ada": make("u-ada", 1, email="ada@example.com", phone="+14155550101", timezone="Europe/London",
                    traits={"first_name": "Ada", "last_name": "Lovelace"}),
        "byron": make("u-byron", 2, email="lord@example.org", timezone="Europe/London",
                      traits={"first_name": "Ada", "last_name": "Byron"}),
        "grace": make("u-grace", 3, email="grace@navy.example", phone="+12025550199", timezone="America/New_York",
                      traits={"name": "Grace Hopper"}),
        "anon": make("device-7f3a", 4),
    }


# --- Search ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("u-grace", ["u-grace"]),  # external id
        ("navy.example", ["u-grace"]),  # email
        ("555-0101".replace("-", ""), ["u-ada"]),  # phone digits
        ("+1202", ["u-grace"]),  # phone prefix
        ("lovelace", ["u-ada"]),  # last_name trait, any case
        ("Ada", ["u-ada", "u-byron"]),  # first_name trait
        ("hopper", ["u-grace"]),  # name trait
        ("ada byron", ["u-byron"]),  # every word must match some field
        ("7F3A", ["device-7f3a"]),
        ("nobody", []),
    ],
)
def test_search_looks_in_external_id_email_phone_and_name_traits(viewer, people, query, expected):
    assert listed(viewer.get(URL, {"q": query})) == expected


def test_search_does_not_look_in_other_traits(viewer):
    make("u-1", traits={"plan": "lovelace-pro"})
    assert listed(viewer.get(URL, {"q": "lovelace"})) == []


def test_search_input_is_an_htmx_live_search(viewer):
    html = viewer.get(URL).content.decode()
    assert 'hx-trigger="input changed delay:300ms, search"' in html
    assert 'hx-push-url="true"' in html
    assert 'hx-target="#results"' in html


# --- Filters -------------------------------------------------------------------------------


def test_time_zone_filter_keeps_one_zone(viewer, people):
    assert listed(viewer.get(URL, {"tz": "Europe/London"})) == ["u-ada", "u-byron"]


def test_time_zone_filter_can_find_customers_without_a_zone(viewer, people):
    assert listed(viewer.get(URL, {"tz": "none"})) == ["device-7f3a"]


def test_time_zone_filter_offers_the_zones_customers_have(viewer, people):
    assert viewer.get(URL).context["timezones"] == [
        ("America/New_York", "America/New_York"),
        ("Europe/London", "Europe/London"),
        ("none", "Not set"),
    ]


def test_time_zone_choices_are_cached_for_five_minutes(viewer, people):
    viewer.get(URL)
    make("u-new", timezone="Asia/Tokyo")

    with time_machine.travel(NOW + timedelta(minutes=4, seconds=59), tick=False):
        with CaptureQueriesContext(connection) as queries:
            zones = viewer.get(URL).context["timezones"]
    assert ("Asia/Tokyo", "Asia/Tokyo") not in zones
    assert not [q for q in queries if "DISTINCT" in q["sql"]]

    with time_machine.travel(NOW + timedelta(minutes=5, seconds=1), tick=False):
        zones = viewer.get(URL).context["timezones"]
    assert zones == [
        ("America/New_York", "America/New_York"),
        ("Asia/Tokyo", "Asia/Tokyo"),
        ("Europe/London", "Europe/London"),
        ("none", "Not set"),
    ]


def test_filters_and_search_combine(viewer, people):
    assert listed(viewer.get(URL, {"q": "ada", "tz": "Europe/London"})) == ["u-ada", "u-byron"]
    assert listed(viewer.get(URL, {"q": "lovelace", "tz": "America/New_York"})) == []


def test_reachable_by_email_means_marketing_email_would_go(viewer):
    """The send-time rule (tests/test_consent_availability.py): an opt-in, no bounce, an address."""
    opted_in(make("has-email", 1, email="a@example.com"), Channel.EMAIL)
    point_only = opted_in(make("email-point-only", 2), Channel.EMAIL)
    ContactPoint.objects.create(customer=point_only, channel=Channel.EMAIL, address="b@example.com")
    unsubscribed = make("unsubscribed", 3, email="c@example.com")
    Consent.objects.create(customer=unsubscribed, channel=Channel.EMAIL, category=Category.MARKETING, status=ConsentStatus.UNSUBSCRIBED, source="t")
    transactional_out = opted_in(make("transactional-out", 4, email="d@example.com"), Channel.EMAIL)
    Consent.objects.create(customer=transactional_out, channel=Channel.EMAIL, category=Category.TRANSACTIONAL, status=ConsentStatus.OPTED_OUT, source="t")
    sms_out = opted_in(make("sms-out", 5, email="e@example.com"), Channel.EMAIL)
    Consent.objects.create(customer=sms_out, channel=Channel.SMS, category=Category.MARKETING, status=ConsentStatus.OPTED_OUT, source="t")
    opted_in(make("no-email", 6, phone="+14155550100"), Channel.EMAIL)
    make("never-opted-in", 7, email="f@example.com")
    bounced = opted_in(make("bounced", 8, email="g@example.com"), Channel.EMAIL)
    Consent.objects.create(customer=bounced, channel=Channel.EMAIL, category=Category.TRANSACTIONAL, status=ConsentStatus.BOUNCED, source="t")

    assert listed(viewer.get(URL, {"reachable": "email"})) == ["has-email", "email-point-only", "transactional-out", "sms-out"]


def test_reachable_by_push_needs_an_enabled_subscription(viewer):
    enabled = opted_in(make("enabled", 1), Channel.PUSH)
    ContactPoint.objects.create(customer=enabled, channel=Channel.PUSH, address="https://push.example/1")
    disabled = opted_in(make("disabled", 2), Channel.PUSH)
    ContactPoint.objects.create(customer=disabled, channel=Channel.PUSH, address="https://push.example/2", enabled=False)
    make("none", 3, email="x@example.com")
    assert listed(viewer.get(URL, {"reachable": "push"})) == ["enabled"]


def test_reachable_in_app_is_everyone_not_opted_out(viewer):
    make("a", 1)
    opted_out = make("b", 2)
    Consent.objects.create(customer=opted_out, channel=Channel.IN_APP, category=Category.MARKETING, status=ConsentStatus.OPTED_OUT, source="t")
    assert listed(viewer.get(URL, {"reachable": "in_app"})) == ["a"]


def test_unknown_filter_values_are_ignored(viewer, people):
    response = viewer.get(URL, {"reachable": "pigeon"})
    assert listed(response) == ["u-ada", "u-byron", "u-grace", "device-7f3a"]
    assert response.context["filters"].reachable == ""


# --- Columns -----------------------------------------------------------------------------------


def test_rows_show_messages_of_the_last_seven_days(viewer, people):
    for n, days in enumerate([0, 1, 6.9, 7.1, 30]):
        Message.objects.create(
            customer=people["ada"], channel=Channel.EMAIL, category=Category.MARKETING,
            queued_at=NOW - timedelta(days=days), idempotency_key=f"m{n}",
        )
    rows = {c.external_id: c.messages_7d for c in viewer.get(URL).context["page"].object_list}
    assert rows == {"u-ada": 3, "u-byron": 0, "u-grace": 0, "device-7f3a": 0}


def test_rows_show_name_contact_zone_and_last_seen(viewer, people):
    html = viewer.get(URL).content.decode()
    assert f'<a class="row-link nowrap" href="{reverse("customers:profile", args=[people["ada"].pk])}">Ada Lovelace</a>' in html
    assert "<div>ada@example.com</div>" in html
    assert '<div class="sub mono">+14155550101</div>' in html
    assert '<td class="hide-md">America/New_York</td>' in html
    assert 'title="2026-06-15 11:00 UTC">1\xa0hour ago</time>' in html


# --- Page and fragment ------------------------------------------------------------------


def test_htmx_requests_get_only_the_results_fragment(viewer, people):
    response = viewer.get(URL, {"q": "ada"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="results"')
    assert "<html" not in html and 'name="q"' not in html
    assert "2 customers" in html
    assert "Vary" in response and "HX-Request" in response["Vary"]


def test_plain_requests_get_the_whole_page_with_the_results(viewer, people):
    response = viewer.get(URL, {"q": "ada"})
    html = response.content.decode()
    assert "<html" in html and '<section id="results"' in html
    assert 'value="ada"' in html  # the search box keeps what was typed
    assert "HX-Request" in response["Vary"]


def test_htmx_history_restore_gets_the_whole_page(viewer, people):
    html = viewer.get(URL, {"q": "ada"}, HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX).content.decode()
    assert "<html" in html


def test_empty_results_say_so(viewer, people):
    assert "No customers match." in viewer.get(URL, {"q": "zzz"}, **HTMX).content.decode()


# --- Pagination ------------------------------------------------------------------------------


@pytest.fixture
def many():
    return [make(f"c-{n:02}", hours_ago=n, timezone="Europe/Paris") for n in range(30)]


def test_pages_hold_twenty_five_customers_most_recently_seen_first(viewer, many):
    first = viewer.get(URL)
    assert listed(first) == [f"c-{n:02}" for n in range(25)]
    second = viewer.get(URL, {"page": 2})
    assert listed(second) == [f"c-{n:02}" for n in range(25, 30)]
    assert "Page 2 of 2" in second.content.decode()


def test_pagination_links_keep_the_filters(viewer, many):
    html = viewer.get(URL, {"q": "c-", "tz": "Europe/Paris"}, **HTMX).content.decode()
    assert 'href="?q=c-&amp;tz=Europe%2FParis&amp;page=2"' in html
    assert 'hx-get="?q=c-&amp;tz=Europe%2FParis&amp;page=2"' in html


def test_out_of_range_page_shows_the_last_page(viewer, many):
    assert listed(viewer.get(URL, {"page": 99})) == [f"c-{n:02}" for n in range(25, 30)]
    assert listed(viewer.get(URL, {"page": "x"}))[0] == "c-00"


def _count_queries(client, **params) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL, params).status_code == 200
    return len(queries)


def test_list_query_count_does_not_grow_with_customers_or_messages(viewer, django_assert_max_num_queries):
    make("first", email="f@example.com")
    _count_queries(viewer)  # the time zone choices are cached from here on
    few = _count_queries(viewer)
    for n in range(40):
        customer = make(f"c-{n}", hours_ago=n, email=f"c{n}@example.com", timezone="Europe/Paris" if n % 2 else "Asia/Tokyo")
        for k in range(3):
            Message.objects.create(customer=customer, channel=Channel.SMS, category=Category.MARKETING, queued_at=NOW, idempotency_key=f"{n}-{k}")
    assert _count_queries(viewer) == few
    load_policy()  # the reachable filter reads the policy's opt-in channels, cached
    # session, user, roles, count, page (time zones come from the cache)
    with django_assert_max_num_queries(5):
        viewer.get(URL, {"q": "c", "reachable": "email", "tz": "Europe/Paris"})
