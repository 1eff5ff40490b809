"""Concurrent ingestion: repeated messageIds are stored once and counted once, without deadlock."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import connection, connections, transaction

from customers.ingestion import IdentifyCall, IngestResult, TrackCall, do_ingest_batch
from customers.models import Customer, Event, ProfileUpdate

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locks and upserts are PostgreSQL's"
    ),
]

AT = datetime(2026, 11, 20, tzinfo=UTC)


def run_concurrently(batches: list[list]) -> list:
    results: list = [None] * len(batches)
    start = threading.Barrier(len(batches))

    def work(index: int) -> None:
        try:
            start.wait()
            results[index] = do_ingest_batch(batches[index], source="crm", received_at=AT)
        except Exception as exc:  # surfaced by the assertion below
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_the_same_track_batch_sent_four_times_at_once_is_stored_once():
    calls = [
        TrackCall(user_id=f"u_{i % 7}", timestamp=AT, event="E", message_id=f"m-{i}")
        for i in range(60)
    ]
    # Each request lists the customers in a different order.
    batches = [calls, calls[::-1], calls[30:] + calls[:30], calls[::2] + calls[1::2]]

    results = run_concurrently(batches)

    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(r.stored for r in results) == 60
    assert sum(r.duplicates for r in results) == 180
    assert Event.objects.count() == 60
    assert Customer.objects.count() == 7


def test_the_same_mixed_batch_sent_four_times_at_once_is_stored_once():
    calls = []
    for i in range(20):
        calls.append(
            IdentifyCall(user_id=f"u_{i % 5}", timestamp=AT, message_id=f"i-{i}", traits={"n": i})
        )
        calls.append(
            TrackCall(user_id=f"u_{(i + 2) % 5}", timestamp=AT, event="E", message_id=f"t-{i}")
        )
    batches = [calls, calls[::-1], calls, calls[::-1]]

    results = run_concurrently(batches)

    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(r.stored for r in results) == 40
    assert (Event.objects.count(), ProfileUpdate.objects.count(), Customer.objects.count()) == (
        20,
        20,
        5,
    )


def test_message_ids_reused_for_other_customers_in_reverse_order_do_not_deadlock():
    ids = [f"m-{i:02d}" for i in range(60)]
    batches = [
        [
            TrackCall(user_id=f"{who}_{i % 3}", timestamp=AT, event="E", message_id=m)
            for i, m in enumerate(order)
        ]
        for who, order in (("a", ids), ("b", ids[::-1]), ("c", ids[20:] + ids[:20]))
    ]

    results = run_concurrently(batches)

    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(r.stored for r in results) == 60
    assert Event.objects.count() == 60


def _backends_waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        # pg_stat_activity is a per-transaction snapshot unless cleared.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def _until(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the interleaving was never reached"
        time.sleep(0.01)  # polling the server for a lock wait; no clock is being moved


def test_a_track_only_batch_racing_an_identify_batch_over_the_same_customers_does_not_deadlock():
    # The general path (any identify) used to lock the existing customer "b" first and insert
    # the missing "a" afterwards, while the hot path upserts "a" then "b": each ended up
    # holding the row the other wanted. Both now lock or create in external-id order.
    Customer.objects.create(external_id="b")
    general = [
        IdentifyCall(user_id="a", timestamp=AT, traits={"x": 1}),
        TrackCall(user_id="b", timestamp=AT, event="E", message_id="g-1"),
    ]
    hot = [
        TrackCall(user_id="a", timestamp=AT, event="E", message_id="h-1"),
        TrackCall(user_id="b", timestamp=AT, event="E", message_id="h-2"),
    ]
    results: dict = {}

    def ingest(name: str, calls: list) -> None:
        try:
            results[name] = do_ingest_batch(calls, source="crm", received_at=AT)
        except Exception as exc:  # surfaced by the assertion below
            results[name] = exc
        finally:
            connections.close_all()

    threads = {
        "general": threading.Thread(target=ingest, args=("general", general)),
        "hot": threading.Thread(target=ingest, args=("hot", hot)),
    }
    with transaction.atomic():
        # Hold "b" so the general request stops on it mid-way, then let the hot one queue up.
        Customer.objects.select_for_update().get(external_id="b")
        threads["general"].start()
        _until(lambda: _backends_waiting_on_a_lock() == 1)
        threads["hot"].start()
        _until(lambda: _backends_waiting_on_a_lock() == 2)
    for thread in threads.values():
        thread.join(timeout=60)

    assert results == {
        "general": IngestResult(received=2, stored=2, duplicates=0),
        "hot": IngestResult(received=2, stored=2, duplicates=0),
    }
    a = Customer.objects.get(external_id="a")
    assert a.traits == {"x": 1}
    assert sorted(Event.objects.values_list("customer__external_id", "source_message_id")) == [
        ("a", "h-1"),
        ("b", "g-1"),
        ("b", "h-2"),
    ]
    assert ProfileUpdate.objects.get().customer_id == a.pk
    assert Customer.objects.count() == 2
