"""deliver_many(): a batch of messages sent once each, for a few queries per batch."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection

from channels_app.delivery import deliver_many, deliver_many_after_commit
from channels_app.ledger import (
    QueueRequest,
    claim_many_for_sending,
    do_queue_message,
    do_transition_message,
    record_sent_many,
)
from channels_app.models import Message, MessageTransition, OutboxMessage
from channels_app.providers import PROVIDERS, Delivery, Provider, ProviderError, SendResult
from channels_app.providers.outbox import OutboxProvider
from customers.models import ContactPoint, Customer

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
SMS = {"body": "Acme: 20% off until midnight. Reply STOP to opt out"}
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks and concurrent connections"
)


class PickyGateway(Provider):
    """Refuses one number, breaks on another, sends the rest; remembers every call."""

    name = "picky"
    calls: list[int] = []
    lock = threading.Lock()

    def send(self, delivery: Delivery) -> SendResult:
        with self.lock:
            self.calls.append(delivery.message_id)
        if delivery.to == "+14155550666":
            raise ProviderError("21211 invalid number", permanent=True)
        if delivery.to == "+14155550999":
            raise TimeoutError("read timed out")
        return SendResult(provider_message_id=f"picky-{delivery.message_id}")


class BrokenBatchGateway(Provider):
    name = "broken-batch"

    def send(self, delivery: Delivery) -> SendResult:  # pragma: no cover - send_batch is used
        raise AssertionError("not called")

    def send_batch(self, deliveries):
        raise ConnectionError("connection reset mid-batch")


@pytest.fixture
def use_provider(monkeypatch, settings):
    def use(provider: type[Provider], channel: str = "sms") -> None:
        monkeypatch.setitem(PROVIDERS, provider.name, provider)
        settings.CHORUS_PROVIDERS = {**settings.CHORUS_PROVIDERS, channel: provider.name}
        PickyGateway.calls = []

    return use


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def customer(name: str, phone: str = "+14155550100", **fields) -> Customer:
    return Customer.objects.create(external_id=name, email=f"{name}@example.com", phone=phone, **fields)


def queue(person: Customer, channel: str = "sms", key: str | None = None) -> int:
    request = QueueRequest(
        customer_id=person.pk, channel=channel, category="marketing",
        idempotency_key=key or f"{person.external_id}:{channel}", content=SMS,
    )
    return do_queue_message(request).message.pk


def queue_many(count: int) -> list[int]:
    """Half SMS, half email (each customer with an email contact point): two providers calls."""
    ids = []
    for i in range(count):
        person = customer(f"c{i}")
        ContactPoint.objects.create(customer=person, channel="email", address=f"work{i}@example.com")
        ids.append(queue(person, "sms" if i % 2 else "email"))
    return ids


def history(message_id: int) -> list[tuple[str, str, str]]:
    return list(
        MessageTransition.objects.filter(message_id=message_id).values_list("from_status", "to_status", "detail")
    )


def statuses(ids) -> dict[int, str]:
    return dict(Message.objects.filter(pk__in=ids).values_list("pk", "status"))


# --- Sending once -------------------------------------------------------------------------------


def test_deliver_many_records_each_message_once_in_the_outbox_and_marks_it_sent(db):
    ids = queue_many(4)

    assert deliver_many(ids) == dict.fromkeys(ids, "sent")

    records = {r.message_id: r for r in OutboxMessage.objects.all()}
    assert sorted(records) == ids
    assert {(r.attempts, r.recorded_at) for r in records.values()} == {(1, T0)}
    assert [records[pk].to for pk in ids] == ["work0@example.com", "+14155550100", "work2@example.com", "+14155550100"]
    for message in Message.objects.filter(pk__in=ids):
        assert (message.status, message.sending_at, message.sent_at, message.updated_at) == ("sent", T0, T0, T0)
        assert (message.provider, message.provider_message_id) == ("outbox", f"outbox-{records[message.pk].pk}")
        assert history(message.pk) == [("", "queued", ""), ("queued", "sending", ""), ("sending", "sent", "")]


# On PostgreSQL: claim (savepoint, UPDATE … RETURNING, transitions INSERT, release), load
# (messages with customers, contact points), one outbox INSERT per channel, mark sent
# (savepoint, UPDATE … FROM VALUES, transitions INSERT, release). SQLite marks each
# message sent with its own UPDATE, so only PostgreSQL pins the exact count. Then, once
# per batch, the channel-affinity models learn of the sends (messages read, affinity rows
# upserted in a savepoint, population priors) and the provider configs are read (one
# query; cached for a few seconds after that). The cadence dashboard's rollups follow
# (orchestrator.dashboards.rollups: messages read, customers' advisory locks, mix INSERT,
# the customers' counts read, histogram INSERT, customer-day upsert): six more.
BATCH_QUERIES = 26


@pytest.mark.parametrize("size", [5, 50])
def test_a_batch_costs_the_same_queries_whatever_its_size(db, size, django_assert_num_queries, django_assert_max_num_queries):
    ids = queue_many(size)

    if connection.vendor == "postgresql":
        with django_assert_num_queries(BATCH_QUERIES):
            deliver_many(ids)
    else:
        with django_assert_max_num_queries(BATCH_QUERIES + size):
            deliver_many(ids)

    assert set(statuses(ids).values()) == {"sent"}


def test_a_second_delivery_of_the_same_batch_does_nothing(db, django_assert_num_queries):
    ids = queue_many(3)
    deliver_many(ids)
    before = list(MessageTransition.objects.values_list("pk", flat=True))

    # savepoint, claim (nothing claimed, nothing inserted), release, statuses
    with django_assert_num_queries(4):
        assert deliver_many(ids) == dict.fromkeys(ids, "sent")

    assert list(OutboxMessage.objects.values_list("attempts", flat=True)) == [1, 1, 1]
    assert list(MessageTransition.objects.values_list("pk", flat=True)) == before


def test_messages_that_are_not_queued_are_left_alone(db):
    ada = customer("ada")
    suppressed, queued = queue(ada, key="a"), queue(ada, key="b")
    do_transition_message(suppressed, "suppressed", detail="sms/marketing: unsubscribed")

    assert deliver_many([suppressed, queued]) == {suppressed: "suppressed", queued: "sent"}

    assert list(OutboxMessage.objects.values_list("message_id", flat=True)) == [queued]
    assert [t for _, t, _ in history(suppressed)] == ["queued", "suppressed"]


def test_empty_and_unknown_ids_deliver_nothing(db):
    assert deliver_many([]) == {}
    assert deliver_many([424242]) == {}
    assert not OutboxMessage.objects.exists()


# --- Failures stay with their own message ---------------------------------------------------------


def test_a_refused_item_fails_only_its_own_message(db, use_provider):
    use_provider(PickyGateway)
    good, refused, broken, other = (
        queue(customer("good")),
        queue(customer("refused", phone="+14155550666")),
        queue(customer("broken", phone="+14155550999")),
        queue(customer("other")),
    )

    assert deliver_many([good, refused, broken, other]) == {
        good: "sent", refused: "failed", broken: "unknown", other: "sent",
    }

    assert sorted(PickyGateway.calls) == [good, refused, broken, other]
    failed, unknown = Message.objects.get(pk=refused), Message.objects.get(pk=broken)
    assert (failed.error, failed.provider, failed.failed_at) == ("21211 invalid number", "picky", T0)
    assert (unknown.error, unknown.provider) == ("provider raised TimeoutError: read timed out", "picky")
    assert Message.objects.get(pk=good).provider_message_id == f"picky-{good}"
    assert history(refused)[-1] == ("sending", "failed", "21211 invalid number")


def test_a_message_without_an_address_fails_without_reaching_the_provider(db, use_provider):
    use_provider(PickyGateway)
    reachable, unreachable = queue(customer("ada")), queue(customer("nobody", phone=""))

    assert deliver_many([reachable, unreachable]) == {reachable: "sent", unreachable: "failed"}

    assert PickyGateway.calls == [reachable]
    assert Message.objects.get(pk=unreachable).error == "no phone number"


def test_a_batch_call_that_breaks_marks_that_channels_messages_unknown(db, use_provider):
    use_provider(BrokenBatchGateway)
    ada = customer("ada")
    sms, email = queue(ada, "sms"), queue(ada, "email")

    assert deliver_many([sms, email]) == {sms: "unknown", email: "sent"}

    assert Message.objects.get(pk=sms).error == "provider raised ConnectionError: connection reset mid-batch"


# --- The ledger's batch transitions ----------------------------------------------------------------


def test_claim_many_claims_only_queued_messages_and_records_each_claim(db):
    ada = customer("ada")
    first, second, suppressed = queue(ada, key="a"), queue(ada, key="b"), queue(ada, key="c")
    do_transition_message(suppressed, "suppressed")

    assert claim_many_for_sending([second, first, suppressed, first]) == [first, second]
    assert claim_many_for_sending([first, second]) == []

    assert statuses([first, second, suppressed]) == {first: "sending", second: "sending", suppressed: "suppressed"}
    assert [t for _, t, _ in history(first)] == ["queued", "sending"]


def test_record_sent_keeps_what_receipts_decided_meanwhile(db, _frozen_clock):
    ada = customer("ada")
    plain, delivered, bounced, unknown = ids = [queue(ada, key=k) for k in "abcd"]
    claim_many_for_sending(ids)
    _frozen_clock.shift(dt.timedelta(seconds=1))
    do_transition_message(delivered, "delivered")  # the receipt beat the worker's "sent"
    do_transition_message(bounced, "bounced", detail="550 no such user")
    do_transition_message(unknown, "unknown", detail="worker stopped mid-send")
    _frozen_clock.shift(dt.timedelta(seconds=1))
    later = T0 + dt.timedelta(seconds=2)

    assert record_sent_many([(pk, "outbox", f"p-{pk}") for pk in ids]) == {
        plain: "sent", delivered: "delivered", bounced: "bounced", unknown: "sent",
    }

    messages = {m.pk: m for m in Message.objects.filter(pk__in=ids)}
    # A late "sent" records its time and the provider's id, and moves nothing back.
    assert (messages[delivered].sent_at, messages[delivered].provider_message_id) == (later, f"p-{delivered}")
    assert [t for _, t, _ in history(delivered)] == ["queued", "sending", "delivered"]
    assert (messages[bounced].sent_at, messages[bounced].provider_message_id) == (None, "")
    assert [t for _, t, _ in history(unknown)] == ["queued", "sending", "unknown", "sent"]
    assert (messages[plain].sent_at, messages[plain].provider_message_id) == (later, f"p-{plain}")


def test_outbox_batch_resend_keeps_one_record_and_counts_attempts(db):
    ada = customer("ada")
    ids = [queue(ada, key=k) for k in "ab"]
    deliveries = [
        Delivery(message_id=pk, public_id="x", channel="sms", category="marketing", to="+1", content=SMS, idempotency_key=k)
        for pk, k in zip(ids, "ab", strict=True)
    ]
    provider = OutboxProvider()

    first = provider.send_batch(deliveries[:1])
    second = provider.send_batch(deliveries)

    records = dict(OutboxMessage.objects.values_list("message_id", "pk"))
    assert first == [SendResult(f"outbox-{records[ids[0]]}")]
    assert second == [SendResult(f"outbox-{records[pk]}") for pk in ids]
    assert dict(OutboxMessage.objects.values_list("message_id", "attempts")) == {ids[0]: 2, ids[1]: 1}


# --- After commit ----------------------------------------------------------------------------------


def test_a_batch_is_delivered_by_one_callback_after_commit(db, django_capture_on_commit_callbacks):
    ids = queue_many(3)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        deliver_many_after_commit(ids)
        deliver_many_after_commit([])

    assert len(callbacks) == 1
    assert set(statuses(ids).values()) == {"sent"}


# --- Concurrency -----------------------------------------------------------------------------------


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_over_the_same_messages_send_each_once(use_provider):
    use_provider(PickyGateway)
    ada = customer("ada")
    ids = [queue(ada, key=f"k{i}") for i in range(100)]
    barrier = threading.Barrier(3)
    errors: list = []

    def deliver():
        try:
            barrier.wait(5)
            deliver_many(ids)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sorted(PickyGateway.calls) == ids
    assert set(statuses(ids).values()) == {"sent"}
    assert MessageTransition.objects.filter(to_status="sending").count() == 100
    assert MessageTransition.objects.filter(to_status="sent").count() == 100
