"""POST /api/v1/track: events stored against the customer named by userId."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection

from customers.consent import do_set_consent
from customers.enums import Category, Channel, ConsentStatus
from customers.models import Consent, Customer, Event

URL = "/api/v1/track"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def post(client, payload):
    return client.post(URL, payload, format="json")


def test_track_stores_event_with_name_properties_time_and_source(ingest_client):
    response = post(
        ingest_client,
        {
            "userId": "u_1",
            "event": "Order Completed",
            "messageId": "m-1",
            "timestamp": "2026-11-23T20:14:00+01:00",
            "properties": {"revenue": 415, "currency": "USD", "items": [{"sku": "A1"}]},
        },
    )

    assert response.status_code == 200
    assert response.json() == {"success": True}
    event = Event.objects.get()
    assert event.customer.external_id == "u_1"
    assert event.name == "Order Completed"
    assert event.properties == {"revenue": 415, "currency": "USD", "items": [{"sku": "A1"}]}
    assert event.occurred_at == datetime(2026, 11, 23, 19, 14, tzinfo=UTC)
    assert event.source == "crm"
    assert event.source_message_id == "m-1"


def test_track_creates_the_customer_on_first_sight(ingest_client):
    with time_machine.travel(NOW, tick=False):
        post(
            ingest_client,
            {"userId": "new-user", "event": "Signed Up", "timestamp": "2026-11-20T08:00:00Z"},
        )

    customer = Customer.objects.get(external_id="new-user")
    assert customer.first_seen_at == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert customer.last_seen_at == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert customer.traits == {}
    assert customer.email == ""


def test_track_accepts_a_numeric_user_id_as_a_string(ingest_client):
    response = post(ingest_client, {"userId": 42, "event": "Signed Up"})

    assert response.status_code == 200
    assert Event.objects.get().customer.external_id == "42"


def test_track_without_timestamp_happened_when_received(ingest_client):
    with time_machine.travel(NOW, tick=False):
        post(ingest_client, {"userId": "u_1", "event": "Opened App"})

    assert Event.objects.get().occurred_at == NOW
    assert Event.objects.get().received_at == NOW


def test_track_corrects_original_timestamp_for_device_clock_skew(ingest_client):
    # The device clock is 10 minutes fast: it sent 1 minute after the event, by its clock.
    with time_machine.travel(NOW, tick=False):
        post(
            ingest_client,
            {
                "userId": "u_1",
                "event": "Opened App",
                "originalTimestamp": "2026-11-23T12:09:00Z",
                "sentAt": "2026-11-23T12:10:00Z",
            },
        )

    assert Event.objects.get().occurred_at == datetime(2026, 11, 23, 11, 59, tzinfo=UTC)


def test_track_timestamp_wins_over_original_timestamp(ingest_client):
    post(
        ingest_client,
        {
            "userId": "u_1",
            "event": "Opened App",
            "timestamp": "2026-01-01T00:00:00Z",
            "originalTimestamp": "2026-02-01T00:00:00Z",
        },
    )

    assert Event.objects.get().occurred_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_out_of_order_events_move_first_seen_back_and_last_seen_forward_only(ingest_client):
    with time_machine.travel(NOW, tick=False):
        post(ingest_client, {"userId": "u_1", "event": "B", "timestamp": "2026-11-10T00:00:00Z"})
        post(ingest_client, {"userId": "u_1", "event": "C", "timestamp": "2026-11-15T00:00:00Z"})
        post(ingest_client, {"userId": "u_1", "event": "A", "timestamp": "2026-11-01T00:00:00Z"})
        post(ingest_client, {"userId": "u_1", "event": "B2", "timestamp": "2026-11-12T00:00:00Z"})

    customer = Customer.objects.get()
    assert customer.first_seen_at == datetime(2026, 11, 1, tzinfo=UTC)
    assert customer.last_seen_at == datetime(2026, 11, 15, tzinfo=UTC)
    assert Event.objects.count() == 4


def test_a_timestamp_up_to_a_day_ahead_is_stored_but_last_seen_stops_at_now(ingest_client):
    # (More than a day ahead is refused: see test_ingest_bad_input.)
    with time_machine.travel(NOW, tick=False):
        post(
            ingest_client, {"userId": "u_1", "event": "Skewed", "timestamp": "2026-11-24T11:00:00Z"}
        )

    assert Event.objects.get().occurred_at == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert Customer.objects.get().last_seen_at == NOW


def test_repeated_message_id_succeeds_and_stores_nothing_new(ingest_client):
    payload = {
        "userId": "u_1",
        "event": "Order Completed",
        "messageId": "m-1",
        "properties": {"n": 1},
    }
    first = post(ingest_client, payload)
    again = post(
        ingest_client, {**payload, "properties": {"n": 2}, "timestamp": "2026-01-01T00:00:00Z"}
    )

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == {"success": True}
    event = Event.objects.get()
    assert event.properties == {"n": 1}


def test_same_message_id_from_another_source_is_a_different_event(ingest_client, make_api_key):
    from rest_framework.test import APIClient

    _, clear = make_api_key(("ingest",), name="other", source="web-sdk")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    payload = {"userId": "u_1", "event": "Order Completed", "messageId": "m-1"}

    post(ingest_client, payload)
    post(other, payload)

    assert sorted(Event.objects.values_list("source", flat=True)) == ["crm", "web-sdk"]


def test_new_customer_whose_id_was_erased_while_unsubscribed_starts_unsubscribed(ingest_client):
    from customers.consent import do_erase_customer

    erased = Customer.objects.create(external_id="u_gone")
    do_set_consent(
        erased, Channel.PUSH, Category.MARKETING, ConsentStatus.UNSUBSCRIBED, source="test"
    )
    do_erase_customer(erased)

    post(ingest_client, {"userId": "u_gone", "event": "Came Back"})

    consent = Consent.objects.get(customer__external_id="u_gone", channel=Channel.PUSH)
    assert (consent.category, consent.status) == (Category.MARKETING, ConsentStatus.UNSUBSCRIBED)


def test_track_for_a_known_customer_takes_three_queries_and_a_savepoint(
    ingest_client, django_assert_num_queries
):
    post(ingest_client, {"userId": "u_1", "event": "Warm Up", "timestamp": "2026-11-01T00:00:00Z"})

    # savepoint, customer upsert (seen-times), event insert, release savepoint (the key was
    # found by the warm-up request and is cached); SQLite, without the upsert, locks, checks
    # duplicates and updates separately.
    expected = 4 if connection.vendor == "postgresql" else 6
    with django_assert_num_queries(expected):
        response = post(
            ingest_client,
            {
                "userId": "u_1",
                # Not an activity event (Order Completed, Session Started…): those also
                # update the customer's send-time profile (orchestrator.intelligence.hooks).
                "event": "Product Viewed",
                "messageId": "m-9",
                "timestamp": "2026-11-02T00:00:00Z",
            },
        )

    assert response.status_code == 200
    assert Event.objects.count() == 2


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2015-02-23T22:28:55.111Z", datetime(2015, 2, 23, 22, 28, 55, 111000, tzinfo=UTC)),
        ("2026-11-23T20:14:00.123456789Z", datetime(2026, 11, 23, 20, 14, 0, 123456, tzinfo=UTC)),
        ("2026-11-23T21:14:00+0100", datetime(2026, 11, 23, 20, 14, tzinfo=UTC)),
    ],
)
def test_track_accepts_the_iso_8601_forms_sdks_send(ingest_client, timestamp, expected):
    post(ingest_client, {"userId": "u_1", "event": "E", "timestamp": timestamp})

    assert Event.objects.get().occurred_at == expected
