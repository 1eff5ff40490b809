"""The cadence dashboard's rollups stay equal to a recount of the ledger, whatever the
ledger does to the messages (tests the listener, the recount and the rebuild)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from channels_app.ledger import (
    QueueRequest,
    claim_many_for_sending,
    do_queue_message,
    do_transition_message,
    queue_many,
    record_sent_many,
)
from customers.consent import do_erase_customer
from customers.models import Customer
from orchestrator.dashboards.models import CustomerDay, MixCount, PressureBucket
from orchestrator.dashboards.rollups import recount, stored_state

pytestmark = pytest.mark.django_db

MON = dt.datetime(2026, 3, 9, 10, 0, tzinfo=dt.UTC)  # a Monday
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


@pytest.fixture
def people():
    return [Customer.objects.create(external_id=f"c{i}", email=f"c{i}@example.com") for i in range(3)]


def queue(customer, channel, at, *, key, category="marketing", journey_id=None) -> int:
    request = QueueRequest(customer_id=customer.pk, channel=channel, category=category, idempotency_key=key,
                           at=at, journey_id=journey_id)
    return do_queue_message(request).message.pk


def send(customer, channel, at, *, key, **extra) -> int:
    pk = queue(customer, channel, at, key=key, **extra)
    claim_many_for_sending([pk], at=at)
    record_sent_many([(pk, "outbox", f"p-{pk}")], at=at)
    return pk


def test_nothing_is_counted_until_a_message_leaves(people):
    ada = people[0]
    pk = queue(ada, "email", MON, key="a")
    claim_many_for_sending([pk], at=MON)
    assert stored_state() == recount() == recount([])
    record_sent_many([(pk, "outbox", "p")], at=MON + HOUR)
    day = MON.date()
    assert stored_state().customer_days == {(ada.pk, day): 1}
    assert stored_state().mix == {(day, "email", "marketing", 0): 1}
    assert stored_state().pressure == {
        ("d", day, "email", "marketing", 1): 1, ("d", day, "email", "", 1): 1,
        ("d", day, "", "marketing", 1): 1, ("d", day, "", "", 1): 1,
        ("w", day, "email", "marketing", 1): 1, ("w", day, "email", "", 1): 1,
        ("w", day, "", "marketing", 1): 1, ("w", day, "", "", 1): 1,
    }


def test_rollups_equal_a_recount_after_a_mixed_sequence_of_sends_and_moves(people):
    ada, bob, cy = people
    sent = [send(ada, "email", MON + i * HOUR, key=f"a-email-{i}", journey_id=7) for i in range(3)]
    send(ada, "sms", MON + 2 * DAY, key="a-sms", category="transactional")
    send(bob, "push", MON, key="b-push", journey_id=8)
    send(bob, "push", MON + 8 * DAY, key="b-push-next-week")
    # A receipt that outran "sent": sending → delivered directly.
    quick = queue(cy, "email", MON, key="c-quick")
    claim_many_for_sending([quick], at=MON)
    do_transition_message(quick, "delivered", at=MON + HOUR)
    # Engagement inside the counted statuses changes nothing; a late receipt neither.
    do_transition_message(sent[0], "opened", at=MON + HOUR)
    do_transition_message(sent[0], "delivered", at=MON + HOUR)
    # Counted, then not: a bounce after sent, and unknown → failed.
    do_transition_message(sent[1], "bounced", at=MON + 2 * HOUR)
    maybe = queue(cy, "sms", MON + DAY, key="c-unknown")
    claim_many_for_sending([maybe], at=MON + DAY)
    do_transition_message(maybe, "unknown", at=MON + DAY)
    assert stored_state().customer_days[(cy.pk, (MON + DAY).date())] == 1
    do_transition_message(maybe, "failed", at=MON + DAY + HOUR)
    # Unknown → sent counts once; suppressed, deferred and failed-before-sending never count.
    again = queue(cy, "push", MON + DAY, key="c-unknown-sent")
    claim_many_for_sending([again], at=MON + DAY)
    do_transition_message(again, "unknown", at=MON + DAY)
    do_transition_message(again, "sent", at=MON + DAY + HOUR)
    queue_many([(QueueRequest(customer_id=bob.pk, channel="email", category="marketing", idempotency_key="b-supp",
                              at=MON), "capped")])
    deferred = queue(bob, "sms", MON, key="b-deferred")
    do_transition_message(deferred, "deferred", at=MON)
    failed = queue(bob, "sms", MON, key="b-failed")
    claim_many_for_sending([failed], at=MON)
    do_transition_message(failed, "failed", at=MON)

    state = stored_state()
    assert state == recount()
    assert state.bounces == {(MON.date(), "email", "marketing"): 1}
    assert state.customer_days == {
        (ada.pk, MON.date()): 2, (ada.pk, (MON + 2 * DAY).date()): 1,
        (bob.pk, MON.date()): 1, (bob.pk, (MON + 8 * DAY).date()): 1,
        (cy.pk, MON.date()): 1, (cy.pk, (MON + DAY).date()): 1,
    }
    # Ada's week: 3 messages, all categories and channels; Bob's first week 1, second 1; Cy 2.
    week = MON.date()
    weekly = {k[4]: n for k, n in state.pressure.items() if k[:4] == ("w", week, "", "")}
    assert weekly == {3: 1, 1: 1, 2: 1}


def test_erasing_a_customer_takes_their_messages_out_of_every_rollup(people):
    ada, bob, _ = people
    for i in range(3):
        send(ada, "email", MON + i * HOUR, key=f"a{i}", journey_id=7)
    send(ada, "sms", MON + 2 * DAY, key="a-sms", category="transactional")
    do_transition_message(send(ada, "email", MON, key="a-bounce"), "bounced", at=MON + HOUR)
    send(bob, "email", MON, key="b", journey_id=7)
    do_transition_message(send(bob, "push", MON, key="b-bounce"), "bounced", at=MON + HOUR)
    do_erase_customer(ada)
    state = stored_state()
    assert state == recount()
    assert state.customer_days == {(bob.pk, MON.date()): 1}
    assert state.mix == {(MON.date(), "email", "marketing", 7): 1}
    assert state.bounces == {(MON.date(), "push", "marketing"): 1}
    assert {k[4]: n for k, n in state.pressure.items() if k[:4] == ("d", MON.date(), "", "")} == {1: 1}


def test_sends_in_one_batch_count_each_customer_once_per_span(people):
    ada, bob, _ = people
    ids = [queue(ada, "email", MON + i * HOUR, key=f"a{i}") for i in range(4)] + [queue(bob, "email", MON, key="b")]
    claim_many_for_sending(ids, at=MON + 5 * HOUR)
    record_sent_many([(pk, "outbox", f"p-{pk}") for pk in ids], at=MON + 5 * HOUR)
    state = stored_state()
    assert state == recount()
    assert {k[4]: n for k, n in state.pressure.items() if k[:4] == ("d", MON.date(), "", "")} == {4: 1, 1: 1}


def test_rebuild_command_folds_the_deltas_into_a_recount(people):
    ada, bob, _ = people
    for i in range(3):
        send(ada, "email", MON + i * HOUR, key=f"a{i}", journey_id=3)
    send(bob, "sms", MON + DAY, key="b")
    before = stored_state()
    rows_before = PressureBucket.objects.count()
    call_command("rebuild_dashboard_rollups", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert stored_state() == before == recount()
    assert PressureBucket.objects.count() < rows_before  # one row per key, the deltas folded
    assert sorted(MixCount.objects.values_list("day", "channel", "journey_id", "count")) == [
        (MON.date(), "email", 3, 3), ((MON + DAY).date(), "sms", 0, 1),
    ]
    assert CustomerDay.objects.get(customer_id=ada.pk).count == 3
    assert connection.vendor == "postgresql"  # the set-based rebuild is the one under test


def _waiting_for_an_advisory_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_two_transactions_moving_one_customers_messages_count_one_after_the_other():
    """B moves its message while A's move of the same customer's message is uncommitted: B
    waits for A (the advisory lock), then counts A's message too: one customer-day of 2."""
    ada = Customer.objects.create(external_id="ada")
    # Transactional: the channel-affinity model (another listener) leaves them alone, so
    # nothing but the dashboard's own lock orders the two transactions.
    first, second = (queue(ada, "email", MON + i * HOUR, key=f"k{i}", category="transactional") for i in range(2))
    claim_many_for_sending([first, second], at=MON)
    a_moved, a_may_commit = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def in_thread(body):
        def run():
            try:
                body()
            except BaseException as error:  # reported by the test, not lost in the thread
                errors.append(error)
            finally:
                connection.close()
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def a():
        with transaction.atomic():
            record_sent_many([(first, "outbox", "p1")], at=MON + HOUR)
            a_moved.set()
            assert a_may_commit.wait(timeout=30)

    def b():
        with transaction.atomic():
            record_sent_many([(second, "outbox", "p2")], at=MON + 2 * HOUR)

    thread_a = in_thread(a)
    assert a_moved.wait(timeout=30)
    thread_b = in_thread(b)
    for _ in range(600):  # until B queues behind A's lock (not a clock: a condition to reach)
        if _waiting_for_an_advisory_lock() or not thread_b.is_alive():
            break
        a_moved.wait(0.05)
    waited = _waiting_for_an_advisory_lock()
    a_may_commit.set()  # before asserting: a failure must not leave A's transaction open
    thread_a.join(30)
    thread_b.join(30)
    assert errors == []
    assert waited
    state = stored_state()
    assert state == recount()
    assert {k[4]: n for k, n in state.pressure.items() if k[:4] == ("d", MON.date(), "", "")} == {2: 1}


def test_the_demo_seed_leaves_the_rollups_equal_to_its_ledger():
    call_command("seed_demo", customers=12, days=7, stdout=open("/dev/null", "w"))  # noqa: SIM115
    state = stored_state()
    assert state.customer_days and state == recount()
