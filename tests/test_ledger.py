"""The message ledger: queueing, the lifecycle, claims and the queries dashboards use."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection, transaction

from channels_app.ledger import (
    ALLOWED_TRANSITIONS,
    COUNTED_STATUSES,
    ENGAGEMENT_RANK,
    HourlyCount,
    IdempotencyConflict,
    IllegalTransition,
    InvalidMessageRequest,
    QueueRequest,
    claim_for_sending,
    counts_by_channel_per_hour,
    do_queue_message,
    do_transition_message,
    messages_for_customer_since,
)
from channels_app.models import Message, MessageStatus, MessageTransition
from customers.models import Customer

S = MessageStatus
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks and concurrent connections"
)


@pytest.fixture
def customer(db):
    return Customer.objects.create(external_id="cust-1", email="ada@example.com")


def make_request(customer, key="enr:1:node:a", **overrides) -> QueueRequest:
    values = dict(
        customer_id=customer.pk,
        channel="email",
        category="marketing",
        idempotency_key=key,
        content={"subject": "Hello", "body": "Hi Ada"},
        template_name="welcome",
        journey_id=7,
        journey_version_id=70,
        node_id="a",
        enrollment_id=1,
        at=T0,
    )
    values.update(overrides)
    return QueueRequest(**values)


def queue(customer, key="enr:1:node:a", **overrides) -> Message:
    return do_queue_message(make_request(customer, key, **overrides)).message


def put_in_status(message: Message, status: str) -> None:
    Message.objects.filter(pk=message.pk).update(status=status)


def history(message: Message) -> list[tuple[str, str]]:
    return list(MessageTransition.objects.filter(message=message).values_list("from_status", "to_status"))


# --- Queueing ----------------------------------------------------------------------------


def test_queue_writes_queued_message_and_its_first_transition(customer):
    result = do_queue_message(make_request(customer))

    message = Message.objects.get()
    assert result.created is True
    assert result.message.pk == message.pk
    assert (message.status, message.queued_at, message.channel, message.category) == (
        "queued", T0, "email", "marketing",
    )
    assert message.content == {"subject": "Hello", "body": "Hi Ada"}
    assert (message.journey_id, message.journey_version_id, message.node_id, message.enrollment_id) == (7, 70, "a", 1)
    assert history(message) == [("", "queued")]


def test_same_idempotency_key_twice_returns_the_existing_message(customer):
    first = do_queue_message(make_request(customer))
    second = do_queue_message(make_request(customer, content={"subject": "Changed"}))

    assert second.created is False
    assert second.message.pk == first.message.pk
    assert second.message.content == {"subject": "Hello", "body": "Hi Ada"}
    assert Message.objects.count() == 1
    assert MessageTransition.objects.count() == 1


def test_duplicate_key_inside_a_callers_transaction_leaves_that_transaction_usable(customer):
    queue(customer)
    with transaction.atomic():
        result = do_queue_message(make_request(customer))
        other = do_queue_message(make_request(customer, key="enr:1:node:b"))
    assert (result.created, other.created) == (False, True)
    assert Message.objects.count() == 2


def test_key_reused_for_another_customer_is_a_conflict(customer):
    queue(customer)
    other = Customer.objects.create(external_id="cust-2")
    with pytest.raises(IdempotencyConflict, match="already belongs to message"):
        do_queue_message(make_request(other))
    assert Message.objects.filter(customer=other).count() == 0


def test_key_reused_for_another_category_is_a_conflict(customer):
    queue(customer)
    with pytest.raises(IdempotencyConflict, match=r"\(customer \d+, email, marketing\)"):
        do_queue_message(make_request(customer, category="transactional"))
    assert list(Message.objects.values_list("category", flat=True)) == ["marketing"]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"channel": "fax"}, "channel: 'fax' is not one of email, sms, push, in_app"),
        ({"category": "spam"}, "category: 'spam' is not one of marketing, transactional"),
        ({"idempotency_key": ""}, "idempotency_key: required"),
        ({"idempotency_key": "k" * 256}, "idempotency_key: required, at most 255"),
    ],
)
def test_invalid_request_names_the_field_and_writes_nothing(customer, overrides, error):
    with pytest.raises(InvalidMessageRequest, match=error):
        do_queue_message(make_request(customer, **overrides))
    assert Message.objects.count() == 0


def test_queue_request_is_frozen(customer):
    request = make_request(customer)
    with pytest.raises(AttributeError):
        request.channel = "sms"  # type: ignore[misc]


def test_queueing_takes_four_queries_and_a_duplicate_five(customer, django_assert_num_queries):
    # SAVEPOINT, INSERT message, INSERT transition, RELEASE.
    with django_assert_num_queries(4):
        do_queue_message(make_request(customer))
    # SAVEPOINT, INSERT (fails on the unique key), ROLLBACK TO and RELEASE SAVEPOINT, SELECT.
    with django_assert_num_queries(5):
        do_queue_message(make_request(customer))


# --- The lifecycle -----------------------------------------------------------------------

ALLOWED_PAIRS = [(src, to) for src, targets in ALLOWED_TRANSITIONS.items() for to in sorted(targets)]


def _is_late(src, to) -> bool:
    return src in ENGAGEMENT_RANK and to in ENGAGEMENT_RANK and ENGAGEMENT_RANK[src] > ENGAGEMENT_RANK[to]


ILLEGAL_PAIRS = [
    (src, to)
    for src in MessageStatus
    for to in MessageStatus
    if src != to and to not in ALLOWED_TRANSITIONS[src] and not _is_late(src, to)
]


def test_every_status_has_a_row_in_the_lifecycle_table():
    assert set(ALLOWED_TRANSITIONS) == set(MessageStatus)


@pytest.mark.parametrize(("src", "to"), ALLOWED_PAIRS, ids=[f"{s}->{t}" for s, t in ALLOWED_PAIRS])
def test_allowed_transition_moves_status_stamps_time_and_records_history(customer, src, to):
    message = queue(customer)
    put_in_status(message, src)
    at = T0 + dt.timedelta(minutes=5)

    result = do_transition_message(message.pk, to, at=at, detail="because")

    message.refresh_from_db()
    assert (result.changed, result.from_status, result.to_status, result.status) == (True, src, to, to)
    assert message.status == to
    # queued_at was set when the message was first queued: timestamps mark first entry.
    assert getattr(message, f"{to}_at") == (T0 if to == "queued" else at)
    assert history(message)[-1] == (src, to)
    assert MessageTransition.objects.filter(message=message).last().detail == "because"


@pytest.mark.parametrize(("src", "to"), ILLEGAL_PAIRS, ids=[f"{s}->{t}" for s, t in ILLEGAL_PAIRS])
def test_illegal_transition_raises_naming_both_statuses_and_changes_nothing(customer, src, to):
    message = queue(customer)
    put_in_status(message, src)
    before = Message.objects.values().get(pk=message.pk)

    with pytest.raises(IllegalTransition, match=f"illegal transition {src} → {to}") as excinfo:
        do_transition_message(message.pk, to, at=T0 + dt.timedelta(minutes=5))

    assert (excinfo.value.from_status, excinfo.value.to_status) == (src, to)
    assert Message.objects.values().get(pk=message.pk) == before
    assert history(message) == [("", "queued")]


def test_a_representative_walk_through_the_lifecycle(customer):
    message = queue(customer)
    assert claim_for_sending(message.pk, at=T0 + dt.timedelta(seconds=1))
    do_transition_message(message.pk, "sent", at=T0 + dt.timedelta(seconds=2), provider="outbox", provider_message_id="p-1")
    do_transition_message(message.pk, "delivered", at=T0 + dt.timedelta(seconds=3))
    do_transition_message(message.pk, "opened", at=T0 + dt.timedelta(minutes=1))
    do_transition_message(message.pk, "clicked", at=T0 + dt.timedelta(minutes=2))
    do_transition_message(message.pk, "converted", at=T0 + dt.timedelta(hours=1))

    message.refresh_from_db()
    assert message.status == "converted"
    assert (message.provider, message.provider_message_id) == ("outbox", "p-1")
    assert history(message) == [
        ("", "queued"), ("queued", "sending"), ("sending", "sent"), ("sent", "delivered"),
        ("delivered", "opened"), ("opened", "clicked"), ("clicked", "converted"),
    ]


def test_same_status_again_is_a_no_op(customer):
    message = queue(customer)
    put_in_status(message, "sent")
    do_transition_message(message.pk, "delivered", at=T0 + dt.timedelta(minutes=1))

    result = do_transition_message(message.pk, "delivered", at=T0 + dt.timedelta(minutes=9))

    message.refresh_from_db()
    assert (result.changed, result.late, result.status) == (False, False, "delivered")
    assert message.delivered_at == T0 + dt.timedelta(minutes=1)
    assert [t for _, t in history(message)].count("delivered") == 1


def test_unknown_status_name_is_rejected(customer):
    message = queue(customer)
    with pytest.raises(ValueError, match="to_status: 'teleported'"):
        do_transition_message(message.pk, "teleported")


def test_missing_message_raises_does_not_exist(db):
    with pytest.raises(Message.DoesNotExist):
        do_transition_message(999_999, "sent")


def test_failure_detail_is_kept_as_the_error(customer):
    message = queue(customer)
    put_in_status(message, "sending")
    do_transition_message(message.pk, "failed", detail="550 mailbox unavailable")
    message.refresh_from_db()
    assert message.error == "550 mailbox unavailable"


def test_timestamp_is_set_on_first_entry_only(customer):
    message = queue(customer)
    do_transition_message(message.pk, "deferred", at=T0 + dt.timedelta(minutes=1))
    do_transition_message(message.pk, "queued", at=T0 + dt.timedelta(minutes=30))
    do_transition_message(message.pk, "deferred", at=T0 + dt.timedelta(minutes=31))

    message.refresh_from_db()
    assert message.status == "deferred"
    assert message.queued_at == T0
    assert message.deferred_at == T0 + dt.timedelta(minutes=1)
    assert history(message) == [("", "queued"), ("queued", "deferred"), ("deferred", "queued"), ("queued", "deferred")]


# --- Receipts out of order ---------------------------------------------------------------


@pytest.fixture
def sent_message(customer):
    message = queue(customer)
    put_in_status(message, "sent")
    return message


def test_click_before_delivery_moves_to_clicked_and_implies_the_open(sent_message):
    click = T0 + dt.timedelta(minutes=2)
    result = do_transition_message(sent_message.pk, "clicked", at=click)

    sent_message.refresh_from_db()
    assert (result.changed, sent_message.status) == (True, "clicked")
    assert (sent_message.clicked_at, sent_message.opened_at, sent_message.delivered_at) == (click, click, None)
    assert history(sent_message)[-1] == ("sent", "clicked")


def test_late_delivery_after_open_records_delivered_at_without_moving_back(sent_message):
    do_transition_message(sent_message.pk, "opened", at=T0 + dt.timedelta(minutes=2))

    result = do_transition_message(sent_message.pk, "delivered", at=T0 + dt.timedelta(minutes=1))

    sent_message.refresh_from_db()
    assert (result.changed, result.late, result.status) == (False, True, "opened")
    assert sent_message.status == "opened"
    assert sent_message.delivered_at == T0 + dt.timedelta(minutes=1)
    assert history(sent_message)[-1] == ("sent", "opened")


def test_late_open_after_click_keeps_the_implied_open_time(sent_message):
    do_transition_message(sent_message.pk, "clicked", at=T0 + dt.timedelta(minutes=2))

    result = do_transition_message(sent_message.pk, "opened", at=T0 + dt.timedelta(minutes=1))

    sent_message.refresh_from_db()
    assert (result.changed, result.late, sent_message.status) == (False, True, "clicked")
    assert sent_message.opened_at == T0 + dt.timedelta(minutes=2)


def test_late_click_after_conversion_records_the_click(sent_message):
    do_transition_message(sent_message.pk, "converted", at=T0 + dt.timedelta(hours=1))
    do_transition_message(sent_message.pk, "clicked", at=T0 + dt.timedelta(minutes=3))

    sent_message.refresh_from_db()
    assert sent_message.status == "converted"
    assert (sent_message.clicked_at, sent_message.opened_at) == (T0 + dt.timedelta(minutes=3),) * 2


def test_receipt_that_outruns_the_workers_sent_write_is_accepted(customer):
    message = queue(customer)
    assert claim_for_sending(message.pk)
    do_transition_message(message.pk, "delivered", at=T0 + dt.timedelta(seconds=2))

    result = do_transition_message(
        message.pk, "sent", at=T0 + dt.timedelta(seconds=1), provider="twilio", provider_message_id="SM1"
    )

    message.refresh_from_db()
    assert (result.changed, result.late, message.status) == (False, True, "delivered")
    assert (message.sent_at, message.provider, message.provider_message_id) == (T0 + dt.timedelta(seconds=1), "twilio", "SM1")


def test_late_receipt_resolves_an_unknown_send(customer):
    message = queue(customer)
    put_in_status(message, "unknown")
    do_transition_message(message.pk, "delivered", at=T0 + dt.timedelta(minutes=1))
    message.refresh_from_db()
    assert (message.status, message.delivered_at) == ("delivered", T0 + dt.timedelta(minutes=1))


def test_bounce_after_open_is_illegal(sent_message):
    do_transition_message(sent_message.pk, "opened")
    with pytest.raises(IllegalTransition, match="opened → bounced"):
        do_transition_message(sent_message.pk, "bounced")


def test_a_transition_takes_five_queries_and_a_duplicate_one(sent_message, django_assert_num_queries):
    # SAVEPOINT, SELECT status, UPDATE … WHERE status = 'sent', INSERT transition, RELEASE.
    with django_assert_num_queries(5):
        do_transition_message(sent_message.pk, "delivered")
    with django_assert_num_queries(3):  # SAVEPOINT, SELECT status, RELEASE.
        do_transition_message(sent_message.pk, "delivered")


# --- Claims ------------------------------------------------------------------------------


def test_claim_moves_queued_to_sending_once(customer):
    message = queue(customer)
    assert claim_for_sending(message.pk, at=T0 + dt.timedelta(seconds=1)) is True
    assert claim_for_sending(message.pk, at=T0 + dt.timedelta(seconds=2)) is False

    message.refresh_from_db()
    assert (message.status, message.sending_at) == ("sending", T0 + dt.timedelta(seconds=1))
    assert history(message) == [("", "queued"), ("queued", "sending")]


def test_claim_of_a_deferred_message_fails_and_changes_nothing(customer):
    message = queue(customer)
    put_in_status(message, "deferred")
    assert claim_for_sending(message.pk) is False
    message.refresh_from_db()
    assert (message.status, message.sending_at) == ("deferred", None)


def test_claim_takes_four_queries(customer, django_assert_num_queries):
    message = queue(customer)
    with django_assert_num_queries(4):  # SAVEPOINT, UPDATE, INSERT transition, RELEASE.
        claim_for_sending(message.pk)


# --- Real concurrency on PostgreSQL --------------------------------------------------------


def _in_thread(target, results: dict, name: str) -> threading.Thread:
    def run():
        try:
            results[name] = target()
        except BaseException as exc:  # reported by the test, not lost in the thread
            results[name] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def _wait_for_lock_waiters(count: int, timeout: float = 10.0) -> None:
    """Poll, on a separate autocommit connection, until `count` backends wait on a lock."""
    raw = connection.get_new_connection(connection.get_connection_params())
    raw.autocommit = True
    try:
        deadline = time.monotonic() + timeout
        with raw.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0] >= count:
                    return
                time.sleep(0.01)
    finally:
        raw.close()
    raise AssertionError(f"no {count} backend(s) waiting on a lock after {timeout}s")


@pytest.fixture
def tx_customer(transactional_db):
    return Customer.objects.create(external_id="cust-tx")


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_insert_racing_an_uncommitted_insert_of_the_same_key_gets_the_winners_row(tx_customer):
    request = make_request(tx_customer, key="race-key")
    results: dict = {}
    with transaction.atomic():
        first = do_queue_message(request)
        # The second insert blocks on the unique index until this transaction commits.
        thread = _in_thread(lambda: do_queue_message(request), results, "second")
        _wait_for_lock_waiters(1)
    thread.join(10)

    second = results["second"]
    assert not isinstance(second, BaseException), second
    assert (first.created, second.created) == (True, False)
    assert second.message.pk == first.message.pk
    assert Message.objects.filter(idempotency_key="race-key").count() == 1
    assert MessageTransition.objects.count() == 1


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_many_threads_queueing_one_key_write_one_row(tx_customer):
    request = make_request(tx_customer, key="stampede")
    barrier = threading.Barrier(6)
    results: dict = {}

    def attempt():
        barrier.wait(5)
        return do_queue_message(request)

    threads = [_in_thread(attempt, results, f"t{i}") for i in range(6)]
    for thread in threads:
        thread.join(10)

    outcomes = list(results.values())
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert sorted(o.created for o in outcomes) == [False] * 5 + [True]
    assert {o.message.pk for o in outcomes} == {Message.objects.get(idempotency_key="stampede").pk}


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_claim_racing_an_uncommitted_claim_loses(tx_customer):
    message = queue(tx_customer, key="claim-race")
    results: dict = {}
    with transaction.atomic():
        first = claim_for_sending(message.pk)
        # The second UPDATE waits for this row lock, then re-checks status = 'queued'.
        thread = _in_thread(lambda: claim_for_sending(message.pk), results, "second")
        _wait_for_lock_waiters(1)
    thread.join(10)

    assert (first, results["second"]) == (True, False)
    assert history(message) == [("", "queued"), ("queued", "sending")]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_many_workers_claiming_one_message_exactly_one_wins(tx_customer):
    message = queue(tx_customer, key="claim-stampede")
    barrier = threading.Barrier(8)
    results: dict = {}

    def attempt():
        barrier.wait(5)
        return claim_for_sending(message.pk)

    threads = [_in_thread(attempt, results, f"w{i}") for i in range(8)]
    for thread in threads:
        thread.join(10)

    assert sorted(results.values()) == [False] * 7 + [True]
    assert MessageTransition.objects.filter(message=message, to_status="sending").count() == 1


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_racing_receipts_each_take_effect_once(tx_customer):
    message = queue(tx_customer, key="receipts")
    put_in_status(message, "sent")
    barrier = threading.Barrier(4)
    results: dict = {}

    def receipt(status):
        def run():
            barrier.wait(5)
            return do_transition_message(message.pk, status)

        return run

    threads = [
        _in_thread(receipt(status), results, f"{status}-{i}")
        for i, status in enumerate(["delivered", "opened", "delivered", "opened"])
    ]
    for thread in threads:
        thread.join(10)

    assert not [r for r in results.values() if isinstance(r, BaseException)], results
    message.refresh_from_db()
    assert message.status == "opened"
    assert message.delivered_at is not None and message.opened_at is not None
    moves = history(message)[1:]
    assert moves.count(("sent", "opened")) + moves.count(("delivered", "opened")) == 1
    assert sum(1 for _, to in moves if to == "delivered") <= 1


# --- Queries -------------------------------------------------------------------------------


def test_messages_for_customer_since_returns_newest_first(customer):
    old = queue(customer, key="old", at=T0 - dt.timedelta(days=2))
    recent = queue(customer, key="recent", at=T0)
    newest = queue(customer, key="newest", at=T0 + dt.timedelta(hours=1), channel="sms")
    put_in_status(newest, "suppressed")
    other = Customer.objects.create(external_id="cust-2")
    queue(other, key="other", at=T0)

    since = T0 - dt.timedelta(days=1)
    assert list(messages_for_customer_since(customer.pk, since)) == [newest, recent]
    assert list(messages_for_customer_since(customer.pk, since, statuses=["queued"])) == [recent]
    # What frequency caps count: the suppressed message never went out.
    assert list(messages_for_customer_since(customer.pk, since, statuses=COUNTED_STATUSES)) == [recent]
    assert old not in messages_for_customer_since(customer.pk, T0 - dt.timedelta(days=3), statuses=["sent"])


def test_counts_by_channel_per_hour(customer):
    queue(customer, key="a", at=T0 + dt.timedelta(minutes=5))
    queue(customer, key="b", at=T0 + dt.timedelta(minutes=55))
    queue(customer, key="c", at=T0 + dt.timedelta(minutes=10), channel="sms")
    queue(customer, key="d", at=T0 + dt.timedelta(hours=1, minutes=1))
    queue(customer, key="outside", at=T0 + dt.timedelta(hours=2))

    counts = counts_by_channel_per_hour(T0, T0 + dt.timedelta(hours=2))

    assert counts == [
        HourlyCount(hour=T0, channel="email", count=2),
        HourlyCount(hour=T0, channel="sms", count=1),
        HourlyCount(hour=T0 + dt.timedelta(hours=1), channel="email", count=1),
    ]
    assert counts_by_channel_per_hour(T0, T0 + dt.timedelta(hours=2), channels=["sms"]) == [
        HourlyCount(hour=T0, channel="sms", count=1)
    ]


@postgres_only
def test_query_helpers_can_be_served_by_the_message_indexes(customer):
    # With sequential scans priced out, the plan shows which index can serve the query.
    # (Which of several usable indexes wins on an empty table is the planner's call.)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    since = T0 - dt.timedelta(days=1)
    assert "message_customer_time_idx" in messages_for_customer_since(customer.pk, since).explain()
    hourly = Message.objects.filter(channel__in=["email", "sms"], queued_at__gte=since, queued_at__lt=T0).explain()
    assert "Index" in hourly and "Seq Scan" not in hourly
