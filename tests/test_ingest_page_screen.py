"""Segment page and screen calls (stored as events) and group and alias calls (acknowledged,
not stored), on their own endpoints and in batches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from customers.models import Customer, Event, ProfileUpdate

pytestmark = pytest.mark.django_db

TYPES = "identify, track, page, screen, group, alias"


def post(client, url, payload):
    return client.post(url, payload, format="json")


def batch(client, *items):
    return post(client, "/api/v1/batch", {"batch": list(items)})


def counts():
    return Customer.objects.count(), Event.objects.count(), ProfileUpdate.objects.count()


def result(received, stored=0, duplicates=0, ignored=0):
    return {
        "success": True,
        "received": received,
        "stored": stored,
        "duplicates": duplicates,
        "ignored": ignored,
    }


def test_page_is_stored_as_page_viewed_with_name_and_category_in_its_properties(ingest_client):
    response = post(
        ingest_client,
        "/api/v1/page",
        {
            "userId": "u_1",
            "name": "Pricing",
            "category": "Marketing",
            "messageId": "m-1",
            "timestamp": "2026-11-23T20:14:00Z",
            "properties": {"url": "https://example.com/pricing", "title": "Pricing"},
        },
    )

    assert response.status_code == 200
    assert response.json() == {"success": True}
    event = Event.objects.get()
    assert event.customer.external_id == "u_1"
    assert event.name == "Page Viewed"
    assert event.properties == {
        "name": "Pricing",
        "category": "Marketing",
        "url": "https://example.com/pricing",
        "title": "Pricing",
    }
    assert event.occurred_at == datetime(2026, 11, 23, 20, 14, tzinfo=UTC)
    assert (event.source, event.source_message_id) == ("crm", "m-1")


def test_screen_is_stored_as_screen_viewed_and_explicit_properties_win(ingest_client):
    response = post(
        ingest_client,
        "/api/v1/screen",
        {
            "userId": "u_1",
            "name": "Checkout",
            "category": "Shop",
            "properties": {"name": "Checkout (step 2)", "step": 2},
        },
    )

    assert response.status_code == 200
    event = Event.objects.get()
    assert event.name == "Screen Viewed"
    assert event.properties == {"name": "Checkout (step 2)", "category": "Shop", "step": 2}


def test_a_page_without_name_category_or_properties_has_empty_properties(ingest_client):
    post(ingest_client, "/api/v1/page", {"userId": "u_1", "name": None})

    assert Event.objects.values_list("name", "properties").get() == ("Page Viewed", {})


def test_a_single_endpoint_refuses_another_type(ingest_client):
    response = post(ingest_client, "/api/v1/screen", {"type": "page", "userId": "u_1"})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == [
        {"field": "type", "reason": "must be 'screen' on this endpoint (or left out)"}
    ]
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"name": 42}, [("name", "must be a string, not a number")]),
        ({"category": ["a"]}, [("category", "must be a string, not an array")]),
        ({"name": "x" * 8193}, [("name", "value is 8,193 characters long; the limit is 8,192")]),
        (
            {"name": "a\x00b"},
            [("name", r"value contains a NUL character (\u0000), which cannot be stored")],
        ),
    ],
)
def test_bad_name_or_category_is_refused_naming_the_field(ingest_client, fields, errors):
    single = post(ingest_client, "/api/v1/page", {"userId": "u_1", **fields})
    batched = batch(ingest_client, {"type": "screen", "userId": "u_1", **fields})

    assert [(f["field"], f["reason"]) for f in single.json()["error"]["fields"]] == errors
    assert [(f["field"], f["reason"]) for f in batched.json()["error"]["fields"]] == [
        (f"batch.0.{field}", reason) for field, reason in errors
    ]
    assert counts() == (0, 0, 0)


def test_a_batch_mixing_every_type_stores_the_right_rows_and_counts_them(ingest_client):
    response = batch(
        ingest_client,
        {"type": "identify", "userId": "u_1", "traits": {"plan": "pro"}, "messageId": "m-1"},
        {"type": "track", "userId": "u_1", "event": "Order Completed", "messageId": "m-2"},
        {"type": "page", "userId": "u_1", "name": "Home", "messageId": "m-3"},
        {"type": "screen", "userId": "u_2", "name": "Cart", "messageId": "m-4"},
        {"type": "group", "userId": "u_1", "groupId": "g_1", "traits": {"name": "Acme"}},
        {"type": "alias", "userId": "u_1", "previousId": "anon-1"},
        {"type": "page", "userId": "u_1", "name": "Home", "messageId": "m-3"},  # repeat
    )

    assert response.status_code == 200
    assert response.json() == result(7, stored=4, duplicates=1, ignored=2)
    assert sorted(Event.objects.values_list("customer__external_id", "name", "properties")) == [
        ("u_1", "Order Completed", {}),
        ("u_1", "Page Viewed", {"name": "Home"}),
        ("u_2", "Screen Viewed", {"name": "Cart"}),
    ]
    assert ProfileUpdate.objects.get().changes == {"plan": "pro"}
    assert sorted(Customer.objects.values_list("external_id", flat=True)) == ["u_1", "u_2"]


def test_a_batch_of_only_group_and_alias_calls_stores_nothing(ingest_client):
    response = batch(
        ingest_client,
        {"type": "group", "userId": "u_1", "groupId": "g_1"},
        {"type": "group", "anonymousId": "anon-1", "groupId": "g_1"},
        {"type": "alias", "userId": "u_1", "previousId": "anon-1"},
    )

    assert response.status_code == 200
    assert response.json() == result(3, ignored=3)
    assert counts() == (0, 0, 0)


def test_group_and_alias_garbage_is_still_refused(ingest_client):
    response = batch(
        ingest_client,
        {"type": "group", "userId": "u_1", "groupId": "g_1"},
        ["alias"],
        {"groupId": "g_1"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == [
        {"field": "batch.1", "reason": "must be an object"},
        {"field": "batch.2.type", "reason": f"is required: one of {TYPES}"},
    ]


def test_a_repeated_page_message_id_is_a_duplicate(ingest_client):
    page = {"type": "page", "userId": "u_1", "name": "Home", "messageId": "m-1"}

    first = batch(ingest_client, page, {**page, "name": "Again"})
    again = post(ingest_client, "/api/v1/page", {**page, "name": "Later"})
    in_batch = batch(ingest_client, page)

    assert first.json() == result(2, stored=1, duplicates=1)
    assert again.status_code == 200
    assert in_batch.json() == result(1, duplicates=1)
    assert Event.objects.values_list("name", "properties").get() == (
        "Page Viewed",
        {"name": "Home"},
    )


def test_a_bad_page_item_makes_the_whole_batch_fail(ingest_client):
    response = batch(
        ingest_client,
        {"type": "identify", "userId": "u_1", "traits": {"plan": "pro"}},
        {"type": "track", "userId": "u_1", "event": "Good"},
        {"type": "page", "userId": "u_1", "name": "Home", "properties": ["not", "an object"]},
        {"type": "group", "userId": "u_1", "groupId": "g_1"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == [
        {"field": "batch.2.properties", "reason": "must be an object, not an array"}
    ]
    assert counts() == (0, 0, 0)


def test_an_unknown_type_is_refused_listing_the_accepted_types(ingest_client):
    response = batch(
        ingest_client,
        {"type": "page", "userId": "u_1"},
        {"type": "pageview", "userId": "u_1"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == [
        {"field": "batch.1.type", "reason": f'must be one of {TYPES}, not "pageview"'}
    ]
    assert counts() == (0, 0, 0)


def test_a_track_page_and_screen_batch_takes_the_track_only_path(
    ingest_client, django_assert_num_queries
):
    if connection.vendor != "postgresql":
        pytest.skip("the upsert path is PostgreSQL's; SQLite runs the general path")
    kinds = [
        {"type": "track", "event": "Viewed"},
        {"type": "page", "name": "Home"},
        {"type": "screen", "name": "Cart"},
    ]
    batch(ingest_client, *[{"type": "track", "userId": f"old-{i}", "event": "W"} for i in range(5)])

    def items(prefix, mixed):
        return [
            {
                **(kinds[i % 3] if mixed else kinds[0]),
                "userId": f"old-{i}" if i % 2 else f"{prefix}-{i}",
                "messageId": f"{prefix}-m-{i}",
            }
            for i in range(10)
        ]

    # savepoint, customer upsert, event insert, suppression lookup (new customers), release
    # (the key was found by the warm-up request and is cached)
    with django_assert_num_queries(5):
        tracks = batch(ingest_client, *items("t", mixed=False))
    with django_assert_num_queries(5):
        mixed = batch(ingest_client, *items("p", mixed=True))

    assert tracks.json() == result(10, stored=10)
    assert mixed.json() == result(10, stored=10)
    assert Event.objects.filter(name__in=["Page Viewed", "Screen Viewed"]).count() == 6
