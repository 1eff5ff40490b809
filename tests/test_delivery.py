"""Delivery: one provider call per message, the outbox provider, errors, and crash recovery."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from channels_app.delivery import UNKNOWN_AFTER_CRASH, address_for, deliver, recover_stranded
from channels_app.ledger import (
    QueueRequest,
    claim_for_sending,
    do_queue_message,
    do_transition_message,
)
from channels_app.models import Message, MessageTransition, OutboxMessage
from channels_app.providers import (
    PROVIDERS,
    Delivery,
    Provider,
    ProviderError,
    SendResult,
    get_provider,
)
from channels_app.providers.outbox import OutboxProvider
from customers.enums import Channel
from customers.models import ContactPoint, Customer

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
SMS = {"body": "Acme: 20% off until midnight. Reply STOP to opt out"}
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks and concurrent connections"
)


# --- Test providers: real adapters of the interface, registered for one test ------------------


class RecordingGateway(Provider):
    """A provider without idempotency keys that remembers what it was asked to send."""

    name = "recording"
    honours_idempotency_key = False
    calls: list[int] = []
    lock = threading.Lock()

    def send(self, delivery: Delivery) -> SendResult:
        with self.lock:
            self.calls.append(delivery.message_id)
        return SendResult(provider_message_id=f"rec-{delivery.message_id}")


class RefusingGateway(Provider):
    name = "refusing"

    def send(self, delivery: Delivery) -> SendResult:
        raise ProviderError("21610 recipient unsubscribed", permanent=True)


class ThrottledGateway(Provider):
    name = "throttled"

    def send(self, delivery: Delivery) -> SendResult:
        raise ProviderError("429 too many requests", permanent=False)


class TimingOutGateway(Provider):
    name = "timing-out"

    def send(self, delivery: Delivery) -> SendResult:
        raise TimeoutError("read timed out after the request was sent")


@pytest.fixture
def use_provider(monkeypatch, settings):
    """use_provider(ProviderClass, channel="sms"): register it and route the channel to it."""

    def use(provider: type[Provider], channel: str = "sms") -> None:
        monkeypatch.setitem(PROVIDERS, provider.name, provider)
        settings.CHORUS_PROVIDERS = {**settings.CHORUS_PROVIDERS, channel: provider.name}
        RecordingGateway.calls = []

    return use


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def ada(db):
    return Customer.objects.create(external_id="ada", email="ada@example.com", phone="+14155550100")


def queue(customer, channel="sms", key="enrollment:1:step:1", content=SMS, category="marketing") -> Message:
    request = QueueRequest(
        customer_id=customer.pk, channel=channel, category=category, idempotency_key=key, content=content
    )
    return do_queue_message(request).message


def history(message: Message) -> list[tuple[str, str, str]]:
    return list(
        MessageTransition.objects.filter(message=message).values_list("from_status", "to_status", "detail")
    )


def outbox_delivery(message: Message, to: str) -> Delivery:
    return Delivery(
        message_id=message.pk,
        public_id=str(message.public_id),
        channel=message.channel,
        category=message.category,
        to=to,
        content=message.content,
        idempotency_key=message.idempotency_key,
    )


# --- The registry --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_channel_has_a_registered_provider_by_default():
    assert {channel: type(get_provider(channel)) for channel in Channel.values} == {
        channel: OutboxProvider for channel in Channel.values
    }
    # Every registered adapter names the channels it serves (the admin offers it for those).
    assert all(adapter.channels and adapter.channels <= set(Channel.values) for adapter in PROVIDERS.values())


@pytest.mark.django_db
def test_unknown_provider_name_fails_loudly_naming_the_setting(settings):
    settings.CHORUS_PROVIDERS = {**settings.CHORUS_PROVIDERS, "sms": "carrier-pigeon"}
    with pytest.raises(ImproperlyConfigured, match=r"CHORUS_PROVIDERS\['sms'\] is 'carrier-pigeon'; expected one of .*outbox"):
        get_provider("sms")


# --- Addresses -----------------------------------------------------------------------------------


def test_address_is_an_enabled_contact_point_before_the_profile(ada):
    ContactPoint.objects.create(customer=ada, channel="email", address="old@example.com", enabled=False)
    ContactPoint.objects.create(customer=ada, channel="email", address="work@example.com")
    ContactPoint.objects.create(customer=ada, channel="push", address="https://push.example/sub/1")

    assert address_for(queue(ada, "email", key="e")) == "work@example.com"
    assert address_for(queue(ada, "sms", key="s")) == "+14155550100"
    assert address_for(queue(ada, "push", key="p")) == "https://push.example/sub/1"
    assert address_for(queue(ada, "in_app", key="i")) == "inbox"


def test_no_address_is_none(db):
    nobody = Customer.objects.create(external_id="nobody")
    ContactPoint.objects.create(customer=nobody, channel="push", address="https://push.example/sub/1", enabled=False)

    assert [address_for(queue(nobody, channel, key=channel)) for channel in ("email", "sms", "push")] == [None] * 3


# --- deliver() -----------------------------------------------------------------------------------


def test_deliver_records_the_message_in_the_outbox_and_marks_it_sent(ada):
    message = queue(ada)

    assert deliver(message.pk) == "sent"

    record = OutboxMessage.objects.get()
    message.refresh_from_db()
    assert (record.message_id, record.channel, record.to, record.content) == (message.pk, "sms", "+14155550100", SMS)
    assert (record.recorded_at, record.attempts) == (T0, 1)
    assert (message.status, message.sent_at) == ("sent", T0)
    assert (message.provider, message.provider_message_id) == ("outbox", f"outbox-{record.pk}")


def test_deliver_sends_once_a_second_call_does_nothing(ada, use_provider):
    use_provider(RecordingGateway)
    message = queue(ada)

    assert deliver(message.pk) == "sent"
    assert deliver(message.pk) == "sent"

    assert RecordingGateway.calls == [message.pk]
    assert [(f, t) for f, t, _ in history(message)] == [("", "queued"), ("queued", "sending"), ("sending", "sent")]


def test_deliver_leaves_a_message_that_is_not_queued_alone(ada):
    message = queue(ada)
    do_transition_message(message.pk, "suppressed", detail="sms/marketing: unsubscribed")

    assert deliver(message.pk) == "suppressed"

    assert not OutboxMessage.objects.exists()
    assert len(history(message)) == 2


def test_permanent_provider_error_fails_the_message_with_the_reason(ada, use_provider):
    use_provider(RefusingGateway)
    message = queue(ada)

    assert deliver(message.pk) == "failed"

    message.refresh_from_db()
    assert (message.status, message.error, message.provider, message.failed_at) == (
        "failed", "21610 recipient unsubscribed", "refusing", T0,
    )
    assert history(message)[-1] == ("sending", "failed", "21610 recipient unsubscribed")


def test_transient_provider_error_queues_the_message_again_saying_transient(ada, use_provider):
    # Backoff, failover and the retry limit: tests/test_delivery_retries.py.
    use_provider(ThrottledGateway)
    message = queue(ada)

    assert deliver(message.pk) == "queued"

    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == ("queued", 1, "transient: 429 too many requests")


def test_unexpected_error_during_the_call_marks_the_message_unknown(ada, use_provider):
    use_provider(TimingOutGateway)
    message = queue(ada)

    assert deliver(message.pk) == "unknown"

    message.refresh_from_db()
    assert (message.status, message.provider) == ("unknown", "timing-out")
    assert message.error == "provider raised TimeoutError: read timed out after the request was sent"


def test_address_gone_before_delivery_fails_without_calling_the_provider(ada, use_provider):
    use_provider(RecordingGateway)
    message = queue(ada)
    Customer.objects.filter(pk=ada.pk).update(phone="")

    assert deliver(message.pk) == "failed"

    assert Message.objects.get().error == "no phone number"
    assert RecordingGateway.calls == []


# --- The outbox provider -------------------------------------------------------------------------


def test_outbox_resend_of_one_message_keeps_one_record_and_counts_attempts(ada):
    message = queue(ada)
    provider = OutboxProvider()

    first = provider.send(outbox_delivery(message, "+14155550100"))
    second = provider.send(outbox_delivery(message, "+14155550100"))

    record = OutboxMessage.objects.get()
    assert first == second == SendResult(provider_message_id=f"outbox-{record.pk}")
    assert record.attempts == 2


# --- recover_stranded() --------------------------------------------------------------------------


def test_recovery_delivers_queued_messages_whose_delivery_was_lost(ada, _frozen_clock):
    lost = queue(ada, key="lost")
    _frozen_clock.shift(dt.timedelta(seconds=20))
    recent = queue(ada, key="recent")
    _frozen_clock.shift(dt.timedelta(seconds=15))

    assert recover_stranded() == {"delivered": 1, "resent": 0, "unknown": 0}

    assert Message.objects.get(pk=lost.pk).status == "sent"
    assert Message.objects.get(pk=recent.pk).status == "queued"
    assert list(OutboxMessage.objects.values_list("message_id", flat=True)) == [lost.pk]


def test_recovery_resends_a_stale_send_through_the_outbox_without_a_second_record(ada, _frozen_clock):
    message = queue(ada)
    claim_for_sending(message.pk)
    # The worker reached the provider, then died before writing "sent".
    OutboxProvider().send(outbox_delivery(message, "+14155550100"))
    _frozen_clock.shift(dt.timedelta(minutes=3))

    assert recover_stranded() == {"delivered": 0, "resent": 1, "unknown": 0}

    record = OutboxMessage.objects.get()
    message.refresh_from_db()
    assert record.attempts == 2
    assert (message.status, message.provider_message_id) == ("sent", f"outbox-{record.pk}")
    assert message.sent_at == T0 + dt.timedelta(minutes=3)


def test_recovery_marks_a_stale_send_unknown_when_the_provider_has_no_idempotency(ada, use_provider, _frozen_clock):
    use_provider(RecordingGateway)
    message = queue(ada)
    claim_for_sending(message.pk)
    _frozen_clock.shift(dt.timedelta(minutes=3))

    assert recover_stranded() == {"delivered": 0, "resent": 0, "unknown": 1}

    message.refresh_from_db()
    assert (message.status, message.error, message.provider) == ("unknown", UNKNOWN_AFTER_CRASH, "recording")
    assert history(message)[-1] == ("sending", "unknown", UNKNOWN_AFTER_CRASH)
    assert RecordingGateway.calls == []


def test_recovery_leaves_sends_in_progress_alone(ada, use_provider, _frozen_clock):
    use_provider(RecordingGateway)
    message = queue(ada)
    claim_for_sending(message.pk)
    _frozen_clock.shift(dt.timedelta(minutes=1))

    assert recover_stranded() == {"delivered": 0, "resent": 0, "unknown": 0}

    assert Message.objects.get().status == "sending"
    assert RecordingGateway.calls == []


def test_recovery_works_through_several_batches(ada, _frozen_clock):
    ids = [queue(ada, key=f"k{i}").pk for i in range(5)]
    _frozen_clock.shift(dt.timedelta(minutes=1))

    assert recover_stranded(batch_size=2) == {"delivered": 5, "resent": 0, "unknown": 0}

    assert sorted(OutboxMessage.objects.values_list("message_id", flat=True)) == ids
    assert recover_stranded(batch_size=2) == {"delivered": 0, "resent": 0, "unknown": 0}


class SlowGateway(Provider):
    """Each send takes a minute of the test's clock."""

    name = "slow"
    clock = None

    def send(self, delivery: Delivery) -> SendResult:
        self.clock.shift(dt.timedelta(minutes=1))
        return SendResult(provider_message_id=f"slow-{delivery.message_id}")


def test_a_long_sweep_stamps_each_claim_when_it_is_made(ada, use_provider, _frozen_clock):
    # Stamped with the sweep's start instead, a batch claimed minutes into the sweep would
    # look stale to a concurrent sweeper at once, which would settle or resend it mid-send.
    use_provider(SlowGateway)
    SlowGateway.clock = _frozen_clock
    ids = [queue(ada, key=f"k{i}").pk for i in range(4)]
    _frozen_clock.shift(dt.timedelta(minutes=1))

    assert recover_stranded(batch_size=2) == {"delivered": 4, "resent": 0, "unknown": 0}

    claimed = [Message.objects.get(pk=pk).sending_at for pk in ids]
    assert claimed == [T0 + dt.timedelta(minutes=1)] * 2 + [T0 + dt.timedelta(minutes=3)] * 2


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_sweepers_deliver_each_message_exactly_once(use_provider):
    use_provider(RecordingGateway)
    customer = Customer.objects.create(external_id="tx", phone="+14155550100")
    ids = [queue(customer, key=f"k{i}").pk for i in range(30)]
    later = T0 + dt.timedelta(minutes=1)
    barrier = threading.Barrier(3)
    results: list = []

    def sweep():
        try:
            barrier.wait(5)
            results.append(recover_stranded(now=later, batch_size=4))
        except BaseException as exc:  # reported by the test, not lost in the thread
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(r["delivered"] for r in results) == 30
    assert sorted(RecordingGateway.calls) == ids
    assert set(Message.objects.values_list("status", flat=True)) == {"sent"}
