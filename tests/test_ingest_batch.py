"""POST /api/v1/batch: mixed identify and track calls, stored atomically and in bulk."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from customers.enums import ConsentStatus
from customers.models import (
    ContactPoint,
    Customer,
    Event,
    ProfileUpdate,
    SuppressedIdentifier,
    hash_identifier,
)

URL = "/api/v1/batch"

pytestmark = pytest.mark.django_db


def post(client, payload):
    return client.post(URL, payload, format="json")


def track(user_id, event="Viewed", message_id=None, **extra):
    item = {"type": "track", "userId": user_id, "event": event, **extra}
    if message_id:
        item["messageId"] = message_id
    return item


def identify(user_id, traits=None, message_id=None, **extra):
    item = {"type": "identify", "userId": user_id, "traits": traits or {}, **extra}
    if message_id:
        item["messageId"] = message_id
    return item


def counts():
    return Customer.objects.count(), Event.objects.count(), ProfileUpdate.objects.count()


def test_batch_stores_identify_and_track_calls_for_several_customers(ingest_client):
    response = post(
        ingest_client,
        {
            "batch": [
                identify("u_1", {"email": "ana@example.com", "plan": "pro"}, "m-1"),
                track("u_1", "Order Completed", "m-2", properties={"revenue": 415}),
                track("u_2", "Signed Up", "m-3", timestamp="2026-11-01T09:00:00Z"),
            ]
        },
    )

    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "received": 3,
        "stored": 3,
        "duplicates": 0,
        "ignored": 0,
    }
    ana = Customer.objects.get(external_id="u_1")
    assert (ana.email, ana.traits) == ("ana@example.com", {"plan": "pro"})
    assert list(ana.events.values_list("name", "properties")) == [
        ("Order Completed", {"revenue": 415})
    ]
    signed_up = Event.objects.get(customer__external_id="u_2")
    assert signed_up.occurred_at == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    assert list(ContactPoint.objects.values_list("address", flat=True)) == ["ana@example.com"]


def test_batch_counts_repeats_within_the_batch_and_already_stored_ones_as_duplicates(ingest_client):
    post(
        ingest_client,
        {"batch": [track("u_1", "A", "m-1"), identify("u_1", {"plan": "pro"}, "m-2")]},
    )

    response = post(
        ingest_client,
        {
            "batch": [
                track("u_1", "A", "m-1"),  # stored before
                identify("u_1", {"plan": "free"}, "m-2"),  # stored before
                track("u_1", "B", "m-3"),
                track("u_1", "B", "m-3"),  # repeated in this batch
                track("u_1", "C"),  # no messageId: never a duplicate
            ]
        },
    )

    assert response.json() == {
        "success": True,
        "received": 5,
        "stored": 2,
        "duplicates": 3,
        "ignored": 0,
    }
    assert sorted(Event.objects.values_list("name", flat=True)) == ["A", "B", "C"]
    assert Customer.objects.get().traits == {"plan": "pro"}


def test_batch_with_one_bad_item_among_good_ones_stores_nothing(ingest_client):
    post(ingest_client, {"batch": [identify("u_0", {"plan": "free"})]})
    before = counts()

    response = post(
        ingest_client,
        {
            "batch": [
                identify("u_0", {"plan": "pro"}),
                track("u_1", "Good"),
                track("u_2", "Good"),
                {"type": "track", "event": "No User"},
                track("u_3", "Good"),
            ]
        },
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == [
        {"field": "batch.3.userId", "reason": "is required"}
    ]
    assert counts() == before
    assert Customer.objects.get(external_id="u_0").traits == {"plan": "free"}


def test_batch_lists_every_bad_item_with_its_index_field_and_reason(ingest_client):
    response = post(
        ingest_client,
        {
            "batch": [
                track("u_1", "Fine"),
                {"type": "track", "userId": {"id": 1}, "event": "Bad Id"},
                identify("u_2", {"timezone": "Mars/Olympus"}),
                "not an object",
                {"type": "pageview", "userId": "u_3"},
                {"userId": "u_4"},
                track("u_5", "x" * 201),
            ]
        },
    )

    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "invalid"
    assert body["message"] == "The request has 6 invalid fields; nothing was stored."
    assert body["fields"] == [
        {"field": "batch.1.userId", "reason": "must be a string (or an integer), not an object"},
        {
            "field": "batch.2.traits.timezone",
            "reason": "'Mars/Olympus' is not an IANA time zone name (e.g. America/New_York)",
        },
        {"field": "batch.3", "reason": "must be an object"},
        {
            "field": "batch.4.type",
            "reason": 'must be one of identify, track, page, screen, group, alias, not "pageview"',
        },
        {
            "field": "batch.5.type",
            "reason": "is required: one of identify, track, page, screen, group, alias",
        },
        {"field": "batch.6.event", "reason": "value is 201 characters long; the limit is 200"},
    ]
    assert counts() == (0, 0, 0)


def test_later_identify_in_a_batch_wins_and_only_the_final_email_gets_a_contact_point(
    ingest_client,
):
    post(
        ingest_client,
        {
            "batch": [
                identify("u_1", {"email": "first@example.com", "plan": "free"}),
                identify("u_1", {"email": "final@example.com", "plan": "pro"}),
            ]
        },
    )

    customer = Customer.objects.get()
    assert (customer.email, customer.traits) == ("final@example.com", {"plan": "pro"})
    assert list(ContactPoint.objects.values_list("address", "enabled")) == [
        ("final@example.com", True)
    ]
    assert ProfileUpdate.objects.count() == 2


def test_batch_level_context_applies_to_every_item(ingest_client):
    post(
        ingest_client,
        {
            "context": {"timezone": "Asia/Tokyo", "locale": "ja-JP"},
            "batch": [identify("u_1"), identify("u_2", context={"timezone": "Europe/Paris"})],
        },
    )

    assert list(Customer.objects.order_by("external_id").values_list("timezone", "locale")) == [
        ("Asia/Tokyo", "ja-JP"),
        ("Europe/Paris", "ja-JP"),
    ]


def test_batch_applies_the_suppression_list_to_new_customers(ingest_client):
    SuppressedIdentifier.objects.create(
        identifier_hash=hash_identifier("email", "gone@example.com"),
        kind=SuppressedIdentifier.Kind.EMAIL,
        channel="email",
        status=ConsentStatus.UNSUBSCRIBED,
    )

    post(
        ingest_client,
        {
            "batch": [identify(f"u_{i}", {"email": f"u{i}@example.com"}) for i in range(5)]
            + [identify("u_gone", {"email": "gone@example.com"})]
        },
    )

    assert list(
        Customer.objects.filter(consents__status=ConsentStatus.UNSUBSCRIBED).values_list(
            "external_id", flat=True
        )
    ) == ["u_gone"]


def test_empty_batch_is_accepted_and_stores_nothing(ingest_client):
    response = post(ingest_client, {"batch": []})

    assert response.json() == {
        "success": True,
        "received": 0,
        "stored": 0,
        "duplicates": 0,
        "ignored": 0,
    }
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize("size", [10, 300])
def test_batch_query_count_does_not_grow_with_the_batch(
    ingest_client, django_assert_max_num_queries, size
):
    if size > 10 and connection.vendor != "postgresql":
        pytest.skip("SQLite splits bulk statements at its parameter limit")
    existing = [f"old-{i}" for i in range(size // 2)]
    post(ingest_client, {"batch": [track(user_id, "Warm Up") for user_id in existing]})
    items = []
    for i in range(size):
        user_id = existing[i // 2] if i % 2 else f"new-{i}"
        items.append(track(user_id, "Viewed", f"t-{i}", properties={"i": i}))
        items.append(identify(user_id, {"email": f"{user_id}@example.com", "n": i}, f"i-{i}"))

    # key, savepoint, lock, create missing, lock created, 2 duplicate checks, 2 inserts,
    # customer update, contact points (disable, upsert), suppression lookup, release
    with django_assert_max_num_queries(14):
        response = post(ingest_client, {"batch": items})

    assert response.json() == {
        "success": True,
        "received": 2 * size,
        "stored": 2 * size,
        "duplicates": 0,
        "ignored": 0,
    }
    assert Event.objects.filter(name="Viewed").count() == size


@pytest.mark.parametrize("size", [10, 1000])
def test_track_only_batch_takes_the_same_few_queries_at_any_size(
    ingest_client, django_assert_max_num_queries, size
):
    if connection.vendor != "postgresql":
        pytest.skip("the upsert path is PostgreSQL's; SQLite runs the general path")
    post(ingest_client, {"batch": [track(f"old-{i}", "Warm Up") for i in range(size // 2)]})
    items = [track(f"old-{i}" if i % 2 else f"new-{i}", "Viewed", f"t-{i}") for i in range(size)]

    # key, savepoint, customer upsert, event insert, suppression lookup (new customers), release
    with django_assert_max_num_queries(6):
        response = post(ingest_client, {"batch": items})

    assert response.json() == {
        "success": True,
        "received": size,
        "stored": size,
        "duplicates": 0,
        "ignored": 0,
    }
