"""Concurrent consent writes for one customer are serialised: none fails, none is lost."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from customers.consent import do_set_consent
from customers.models import Consent, ConsentChange, Customer

pytestmark = [
    # Real transactions; no role groups needed, so the flush between tests does not matter.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's"),
]


def wait_until_a_backend_waits_on_a_lock(deadline_seconds: float = 10.0) -> None:
    """Block until another connection is waiting on a lock (B queued behind A), or fail."""
    deadline = time.monotonic() + deadline_seconds
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
    pytest.fail("the second writer never waited for the first")


def test_two_first_consent_writes_at_once_both_succeed_in_order():
    customer = Customer.objects.create(external_id="c", email="c@example.com")
    a_wrote, b_may_finish = threading.Event(), threading.Event()
    errors: dict[str, BaseException] = {}

    def first_writer() -> None:
        try:
            with transaction.atomic():
                do_set_consent(customer, "email", "marketing", "unsubscribed", source="unsubscribe link")
                a_wrote.set()
                b_may_finish.wait(timeout=15)  # hold the transaction open while B queues
        except BaseException as exc:  # surfaced by the assertion below
            errors["a"] = exc
            a_wrote.set()
        finally:
            connections.close_all()

    def second_writer() -> None:
        a_wrote.wait(timeout=15)
        try:
            do_set_consent(customer, "email", "marketing", "opted_in", source="api")
        except BaseException as exc:
            errors["b"] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_writer), threading.Thread(target=second_writer)]
    for thread in threads:
        thread.start()
    a_wrote.wait(timeout=15)
    try:
        wait_until_a_backend_waits_on_a_lock()
    finally:
        b_may_finish.set()
        for thread in threads:
            thread.join(timeout=30)

    assert errors == {}
    assert Consent.objects.get(customer=customer).status == "opted_in"
    history = ConsentChange.objects.filter(customer=customer).order_by("id")
    assert list(history.values_list("previous_status", "status", "source")) == [
        ("", "unsubscribed", "unsubscribe link"),
        ("unsubscribed", "opted_in", "api"),
    ]
