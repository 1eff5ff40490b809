"""The customers read API: list with search, filters and ordering; detail; events; messages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests import api_factories as f
from tests.api_factories import T0

pytestmark = pytest.mark.django_db

LIST = "/api/v1/customers"


def ids(response) -> list[str]:
    return [row["external_id"] for row in response.json()["results"]]


def assert_bad_param(response, param: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"]["code"] == "invalid"
    assert [entry["field"] for entry in body["error"]["fields"]] == [param]


# --- List: search -----------------------------------------------------------------------------


@pytest.fixture
def people(db):
    ada = f.customer("ada-1", email="ada@lovelace.org", phone="+14155550100",
                     traits={"first_name": "Ada", "last_name": "Lovelace"}, timezone="Europe/London",
                     last_seen_at=T0)
    grace = f.customer("grace-2", email="grace@navy.mil", phone="+14155550199",
                       traits={"name": "Grace Hopper"}, timezone="America/New_York",
                       last_seen_at=T0 - timedelta(days=2))
    alan = f.customer("ALAN-3", email="alan@bletchley.uk", traits={"first_name": "Alan"},
                      timezone="Europe/London", last_seen_at=T0 - timedelta(days=5))
    return ada, grace, alan


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("ADA-", ["ada-1"]),  # external id, case-insensitive
        ("navy.MIL", ["grace-2"]),  # email
        ("5550199", ["grace-2"]),  # phone
        ("lovel", ["ada-1"]),  # last name trait
        ("ada lovelace", ["ada-1"]),  # full name across first and last
        ("hopper", ["grace-2"]),  # name trait
        ("alan", ["ALAN-3"]),  # first name trait and external id
        ("nobody", []),
    ],
)
def test_search_matches_ids_emails_phones_and_names_case_insensitively(api_client, people, q, expected):
    response = api_client.get(LIST, {"q": q})
    assert response.status_code == 200
    assert ids(response) == expected


def test_list_is_newest_activity_first_with_a_page_envelope(api_client, people):
    response = api_client.get(LIST)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert body["next"] is None and body["previous"] is None
    assert ids(response) == ["ada-1", "grace-2", "ALAN-3"]
    assert body["results"][0] == {
        "external_id": "ada-1",
        "display_name": "Ada Lovelace",
        "email": "ada@lovelace.org",
        "phone": "+14155550100",
        "timezone": "Europe/London",
        "locale": "",
        "traits": {"first_name": "Ada", "last_name": "Lovelace"},
        "channels": [],
        "first_seen_at": "2026-10-02T12:00:00Z",
        "last_seen_at": "2026-11-01T12:00:00Z",
    }


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("last_seen_at", ["ALAN-3", "grace-2", "ada-1"]),
        ("-last_seen_at", ["ada-1", "grace-2", "ALAN-3"]),
        ("external_id", ["ALAN-3", "ada-1", "grace-2"]),
        ("-external_id", ["grace-2", "ada-1", "ALAN-3"]),
    ],
)
def test_ordering(api_client, people, ordering, expected):
    assert ids(api_client.get(LIST, {"ordering": ordering})) == expected


def test_limit_offset_pagination_links(api_client, people):
    first = api_client.get(LIST, {"limit": 2})
    assert ids(first) == ["ada-1", "grace-2"]
    assert first.json()["count"] == 3
    assert first.json()["next"] == "http://testserver/api/v1/customers?limit=2&offset=2"
    assert first.json()["previous"] is None

    second = api_client.get(first.json()["next"])
    assert ids(second) == ["ALAN-3"]
    assert second.json()["next"] is None
    assert second.json()["previous"] == "http://testserver/api/v1/customers?limit=2"


def test_offset_past_the_end_is_an_empty_page(api_client, people):
    response = api_client.get(LIST, {"offset": 10})
    assert response.status_code == 200
    assert response.json()["count"] == 3
    assert response.json()["results"] == []


# --- List: filters ----------------------------------------------------------------------------


def test_filter_by_timezone(api_client, people):
    assert ids(api_client.get(LIST, {"timezone": "Europe/London"})) == ["ada-1", "ALAN-3"]


def test_filter_by_last_seen_window(api_client, people):
    response = api_client.get(
        LIST, {"seen_since": (T0 - timedelta(days=3)).isoformat(), "seen_before": T0.isoformat()}
    )
    assert ids(response) == ["grace-2"]


def test_seen_since_accepts_a_date_and_an_unencoded_plus_offset(api_client, people):
    assert ids(api_client.get(LIST, {"seen_since": "2026-10-30"})) == ["ada-1", "grace-2"]
    # "+01:00" typed straight into a URL arrives as " 01:00".
    assert ids(api_client.get(LIST + "?seen_since=2026-11-01T12:30:00+01:00")) == ["ada-1"]


def test_filter_by_enabled_contact_point_channel(api_client, people):
    ada, grace, alan = people
    f.contact_point(ada, "sms", "+14155550100")
    f.contact_point(grace, "sms", "+14155550199", enabled=False)
    f.contact_point(alan, "push", "https://fcm.googleapis.com/fcm/send/abc", platform="web")
    assert ids(api_client.get(LIST, {"has_channel": "sms"})) == ["ada-1"]
    assert ids(api_client.get(LIST, {"has_channel": "push"})) == ["ALAN-3"]
    assert ids(api_client.get(LIST, {"has_channel": "email"})) == []
    assert api_client.get(LIST).json()["results"][0]["channels"] == ["sms"]


def test_filter_by_consent(api_client, people):
    ada, grace, _ = people
    f.consent(ada, "sms", "marketing", "opted_out")
    f.consent(grace, "sms", "marketing", "opted_in")
    f.consent(grace, "email", "marketing", "opted_out")
    assert ids(api_client.get(LIST, {"consent": "sms:marketing:opted_out"})) == ["ada-1"]
    assert ids(api_client.get(LIST, {"consent": "email:marketing:opted_out"})) == ["grace-2"]
    assert ids(api_client.get(LIST, {"consent": "push:transactional:opted_in"})) == []


def test_filters_combine(api_client, people):
    ada, _, alan = people
    f.contact_point(ada, "email", "ada@lovelace.org")
    f.contact_point(alan, "email", "alan@bletchley.uk")
    response = api_client.get(LIST, {"timezone": "Europe/London", "has_channel": "email", "q": "alan"})
    assert ids(response) == ["ALAN-3"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"seen_since": "yesterday"}, "seen_since"),
        ({"seen_before": "2026-13-45"}, "seen_before"),
        ({"seen_since": "2026-11-02", "seen_before": "2026-11-01"}, "seen_before"),
        ({"has_channel": "fax"}, "has_channel"),
        ({"consent": "sms:marketing"}, "consent"),
        ({"consent": "fax:marketing:opted_in"}, "consent"),
        ({"consent": "sms:promo:opted_in"}, "consent"),
        ({"consent": "sms:marketing:maybe"}, "consent"),
        ({"ordering": "email"}, "ordering"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ],
)
def test_invalid_query_parameter_is_a_400_naming_it(api_client, people, params, param):
    assert_bad_param(api_client.get(LIST, params), param)


def test_invalid_consent_filter_lists_the_choices(api_client, people):
    body = api_client.get(LIST, {"consent": "sms:marketing:maybe"}).json()
    assert body["error"]["fields"][0]["reason"] == (
        "unknown status 'maybe'; choose from opted_in, opted_out, unsubscribed, bounced, complained, stopped"
    )


# --- Detail -----------------------------------------------------------------------------------


WEB_PUSH_ENDPOINT = "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bHunvN0Tq8PpLQ2Y6bX7Tz1secretTAIL"
P256DH = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"


@pytest.fixture
def ada(db):
    ada = f.customer("ada-1", email="ada@lovelace.org", phone="+14155550100",
                     traits={"first_name": "Ada", "plan": "pro"}, timezone="Europe/London", locale="en-GB")
    f.contact_point(ada, "email", "ada@lovelace.org")
    f.contact_point(ada, "push", WEB_PUSH_ENDPOINT, platform="web", label="Chrome on macOS",
                    keys={"p256dh": P256DH, "auth": "tBHItJI5svbpez7KI4CCXg"})
    f.contact_point(ada, "push", "short-token-1234", platform="android")
    f.consent(ada, "sms", "marketing", "opted_out", source="STOP reply")
    f.event(ada, "Signed Up")
    f.event(ada, "Viewed Product")
    f.message(ada, "email")
    return ada


def test_detail_shows_profile_contact_points_consent_and_counts(api_client, ada):
    response = api_client.get("/api/v1/customers/ada-1")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("external_id", "display_name", "email", "phone", "timezone", "locale", "traits")} == {
        "external_id": "ada-1",
        "display_name": "Ada",
        "email": "ada@lovelace.org",
        "phone": "+14155550100",
        "timezone": "Europe/London",
        "locale": "en-GB",
        "traits": {"first_name": "Ada", "plan": "pro"},
    }
    assert body["counts"] == {"events": 2, "messages": 1, "profile_updates": 0}
    assert [(p["channel"], p["address"], p["platform"]) for p in body["contact_points"]] == [
        ("email", "ada@lovelace.org", None),
        ("push", "shor…1234", "android"),
        ("push", "https://fcm.googleapis.com/fcm…cretTAIL", "web"),
    ]


def test_detail_lists_all_eight_consent_pairs_with_null_for_unrecorded(api_client, ada):
    consent = api_client.get("/api/v1/customers/ada-1").json()["consent"]
    assert [(c["channel"], c["category"], c["status"]) for c in consent] == [
        ("email", "marketing", None),
        ("email", "transactional", None),
        ("sms", "marketing", "opted_out"),
        ("sms", "transactional", None),
        ("push", "marketing", None),
        ("push", "transactional", None),
        ("in_app", "marketing", None),
        ("in_app", "transactional", None),
    ]
    assert consent[2]["source"] == "STOP reply"
    assert consent[0] == {"channel": "email", "category": "marketing", "status": None, "source": None, "changed_at": None}


def test_push_keys_and_full_endpoints_never_appear_in_any_response(api_client, ada):
    for url in ("/api/v1/customers/ada-1", "/api/v1/customers", "/api/v1/customers/ada-1/consent"):
        content = api_client.get(url).content.decode()
        assert P256DH not in content
        assert "tBHItJI5svbpez7KI4CCXg" not in content
        assert WEB_PUSH_ENDPOINT not in content
        assert "short-token-1234" not in content
        assert "keys" not in content


def test_unknown_external_id_is_a_404_in_the_error_shape(api_client, db):
    for suffix in ("", "/events", "/messages", "/consent"):
        response = api_client.get(f"/api/v1/customers/nobody{suffix}")
        assert response.status_code == 404
        assert response.json() == {
            "error": {"code": "not_found", "message": "No customer with external id 'nobody'."}
        }



def test_an_external_id_with_a_nul_character_is_a_404_not_a_database_error(api_client, db):
    # PostgreSQL text cannot hold NUL, so no customer can have this id.
    for suffix in ("", "/events", "/messages", "/consent"):
        response = api_client.get(f"/api/v1/customers/a%00b{suffix}")
        assert response.status_code == 404
        assert response.json() == {
            "error": {"code": "not_found", "message": "No customer with external id 'a\\x00b'."}
        }


# --- Events -----------------------------------------------------------------------------------


def test_events_are_newest_first_and_filterable(api_client, db):
    owner = f.customer("ev-1")
    other = f.customer("ev-2")
    for hours, name in [(1, "Viewed Product"), (2, "Added to Cart"), (3, "Viewed Product"), (4, "Order Completed")]:
        f.event(owner, name, T0 + timedelta(hours=hours), properties={"n": hours}, source_message_id=f"m{hours}")
    f.event(other, "Viewed Product", T0)
    url = "/api/v1/customers/ev-1/events"

    body = api_client.get(url).json()
    assert body["count"] == 4
    assert [e["properties"]["n"] for e in body["results"]] == [4, 3, 2, 1]
    first = body["results"][0]
    assert set(first) == {"id", "name", "properties", "occurred_at", "received_at", "source", "message_id"}
    assert (first["name"], first["message_id"], first["source"]) == ("Order Completed", "m4", "test")

    named = api_client.get(url, {"name": "Viewed Product"}).json()["results"]
    assert [e["properties"]["n"] for e in named] == [3, 1]
    window = {"since": (T0 + timedelta(hours=2)).isoformat(), "until": (T0 + timedelta(hours=4)).isoformat()}
    assert [e["properties"]["n"] for e in api_client.get(url, window).json()["results"]] == [3, 2]
    paged = api_client.get(url, {"limit": 1, "offset": 1}).json()
    assert [e["properties"]["n"] for e in paged["results"]] == [3]


@pytest.mark.parametrize(("params", "param"), [({"since": "soon"}, "since"), ({"until": "x"}, "until"), ({"limit": "-5"}, "limit")])
def test_events_reject_bad_parameters(api_client, db, params, param):
    f.customer("ev-1")
    assert_bad_param(api_client.get("/api/v1/customers/ev-1/events", params), param)


# --- Messages ---------------------------------------------------------------------------------


def test_messages_across_channels_newest_first_with_transitions(api_client, db):
    owner = f.customer("msg-1")
    f.message(owner, "email", "delivered", T0, template_name="welcome")
    f.message(owner, "sms", "failed", T0 + timedelta(hours=1), content={"body": "Your code"}, error="carrier said no")
    f.message(owner, "push", "sent", T0 + timedelta(hours=2), content={"title": "Sale"})
    f.message(f.customer("msg-2"), "email", "sent", T0)
    url = "/api/v1/customers/msg-1/messages"

    body = api_client.get(url).json()
    assert body["count"] == 3
    assert [(m["channel"], m["status"], m["summary"]) for m in body["results"]] == [
        ("push", "sent", "Sale"), ("sms", "failed", "Your code"), ("email", "delivered", "Hello"),
    ]
    sms = body["results"][1]
    assert sms["error"] == "carrier said no"
    assert [(t["from_status"], t["to_status"], t["detail"]) for t in sms["transitions"]] == [
        (None, "queued", ""), ("queued", "failed", "test"),
    ]

    assert [m["channel"] for m in api_client.get(url, {"channel": "sms"}).json()["results"]] == ["sms"]
    assert [m["status"] for m in api_client.get(url, {"status": "delivered"}).json()["results"]] == ["delivered"]
    window = {"since": (T0 + timedelta(minutes=30)).isoformat(), "until": (T0 + timedelta(hours=2)).isoformat()}
    assert [m["channel"] for m in api_client.get(url, window).json()["results"]] == ["sms"]


@pytest.mark.parametrize(("params", "param"), [({"channel": "fax"}, "channel"), ({"status": "lost"}, "status"), ({"since": "2026-02-30"}, "since")])
def test_messages_reject_bad_parameters(api_client, db, params, param):
    f.customer("msg-1")
    assert_bad_param(api_client.get("/api/v1/customers/msg-1/messages", params), param)


# --- Query counts -----------------------------------------------------------------------------


def _queries(client, url) -> int:
    client.get(url)  # warm: finds and caches the key, writes its last_used_at (once a minute)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _populate(n: int) -> None:
    for _ in range(n):
        person = f.customer()
        f.contact_point(person, "email", person.email)
        f.contact_point(person, "sms", f"+1415555{next(f._seq) % 10000:04d}")
        f.consent(person, "email", "marketing", "opted_in")
        f.event(person)
        f.message(person)


def test_list_query_count_is_pinned_and_independent_of_page_size(api_client, db):
    _populate(3)
    # count, page, enabled contact points (the key was found by an earlier request)
    assert _queries(api_client, LIST) == 3
    _populate(12)
    assert _queries(api_client, LIST) == 3


def test_detail_query_count_is_pinned(api_client, ada):
    # customer with its counts (subqueries), contact points, consents
    assert _queries(api_client, "/api/v1/customers/ada-1") == 3
    f.contact_point(ada, "sms", "+14155550100")
    f.consent(ada, "email", "marketing", "opted_in")
    assert _queries(api_client, "/api/v1/customers/ada-1") == 3


def test_messages_query_count_is_pinned(api_client, db):
    owner = f.customer("msg-1")
    f.message(owner)
    # customer, count, page, transitions
    assert _queries(api_client, "/api/v1/customers/msg-1/messages") == 4
    for _ in range(5):
        f.message(owner)
    assert _queries(api_client, "/api/v1/customers/msg-1/messages") == 4


def test_events_query_count_is_pinned(api_client, db):
    owner = f.customer("ev-1")
    for _ in range(3):
        f.event(owner)
    # customer, count, page
    assert _queries(api_client, "/api/v1/customers/ev-1/events") == 3


def test_consent_query_count_is_pinned(api_client, ada):
    # customer, consents, history with actors
    assert _queries(api_client, "/api/v1/customers/ada-1/consent") == 3


def test_long_email_addresses_are_shown_in_full(api_client, db):
    long_address = "a.very.long.local.part.for.testing.truncation@subdomain.example.com"
    owner = f.customer("long-1", email=long_address)
    f.contact_point(owner, "email", long_address)
    points = api_client.get("/api/v1/customers/long-1").json()["contact_points"]
    assert [p["address"] for p in points] == [long_address]
