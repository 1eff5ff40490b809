"""dispatch(): the one send entry point — consent, addresses, the ledger, delivery after commit."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import transaction

from channels_app.ledger import InvalidMessageRequest
from channels_app.models import Message, MessageTransition, OutboxMessage
from customers.consent import do_set_consent
from customers.models import ContactPoint, Customer
from orchestrator.dispatch import DispatchResult, SendRequest, dispatch
from tests.api_factories import opted_in

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
EMAIL = {"subject": "Hello Ada", "html": "<p>Hi <b>Ada</b></p>"}


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(T0, tick=False):
        yield


@pytest.fixture
def ada(db):
    """Opted in to marketing everywhere: which consent allows what is tests/test_consent_availability.py."""
    return opted_in(Customer.objects.create(external_id="ada", email="ada@example.com", phone="+14155550100"))


def send_request(customer, channel="email", category="marketing", key="enrollment:1:step:1", **overrides):
    values = dict(
        customer_id=customer.pk,
        channel=channel,
        category=category,
        content=EMAIL if channel == "email" else {"title": "Hi", "body": "Hello Ada"},
        idempotency_key=key,
        journey_id=7,
        journey_version_id=70,
        node_id="send-1",
        enrollment_id=1,
        template_name="Welcome · Email",
    )
    values.update(overrides)
    return SendRequest(**values)


def dispatch_in_transaction(request: SendRequest) -> DispatchResult:
    with transaction.atomic():  # as the engine does: one transaction per step
        return dispatch(request)


def history(message_id: int) -> list[tuple[str, str, str]]:
    return list(
        MessageTransition.objects.filter(message_id=message_id).values_list("from_status", "to_status", "detail")
    )


# --- Queued and delivered ----------------------------------------------------------------------


def test_queued_message_is_delivered_only_after_the_transaction_commits(ada, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        result = dispatch_in_transaction(send_request(ada))

    message = Message.objects.get()
    assert result == DispatchResult("queued", message.pk, "")
    assert message.status == "queued"
    assert not OutboxMessage.objects.exists()
    assert len(callbacks) == 1

    callbacks[0]()

    message.refresh_from_db()
    record = OutboxMessage.objects.get()
    assert (message.status, message.provider, message.provider_message_id) == ("sent", "outbox", f"outbox-{record.pk}")
    assert (record.message_id, record.channel, record.to, record.content) == (message.pk, "email", "ada@example.com", EMAIL)
    assert [(f, t) for f, t, _ in history(message.pk)] == [("", "queued"), ("queued", "sending"), ("sending", "sent")]


def test_queued_message_keeps_the_journey_references_and_rendered_content(ada, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        dispatch_in_transaction(send_request(ada, at=T0 - dt.timedelta(minutes=5)))

    message = Message.objects.get()
    assert (message.journey_id, message.journey_version_id, message.node_id, message.enrollment_id) == (7, 70, "send-1", 1)
    assert (message.template_name, message.content, message.idempotency_key) == ("Welcome · Email", EMAIL, "enrollment:1:step:1")
    assert message.queued_at == T0 - dt.timedelta(minutes=5)
    assert message.status == "sent"


def test_in_app_needs_no_address_and_goes_to_the_inbox(db, django_capture_on_commit_callbacks):
    nobody = Customer.objects.create(external_id="no-address")
    with django_capture_on_commit_callbacks(execute=True):
        result = dispatch_in_transaction(send_request(nobody, channel="in_app"))

    assert result.outcome == "queued"
    assert OutboxMessage.objects.get().to == "inbox"
    assert Message.objects.get().status == "sent"


# --- Suppressed ----------------------------------------------------------------------------------


def test_unsubscribed_marketing_sms_is_recorded_as_suppressed_with_the_reason(ada, django_capture_on_commit_callbacks):
    do_set_consent(ada, "sms", "marketing", "unsubscribed", source="STOP reply")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = dispatch_in_transaction(send_request(ada, channel="sms"))

    message = Message.objects.get()
    assert result == DispatchResult("suppressed", message.pk, "marketing SMS: the customer unsubscribed")
    assert (message.status, message.suppressed_at) == ("suppressed", T0)
    assert history(message.pk) == [("", "queued", ""), ("queued", "suppressed", "marketing SMS: the customer unsubscribed")]
    assert callbacks == []
    assert not OutboxMessage.objects.exists()


def test_marketing_unsubscribe_does_not_suppress_transactional_messages(ada, django_capture_on_commit_callbacks):
    do_set_consent(ada, "email", "marketing", "unsubscribed", source="unsubscribe link")

    with django_capture_on_commit_callbacks(execute=True):
        result = dispatch_in_transaction(send_request(ada, category="transactional"))

    assert result.outcome == "queued"
    assert Message.objects.get().status == "sent"


def test_consent_is_checked_before_the_address(db):
    customer = Customer.objects.create(external_id="no-phone")
    do_set_consent(customer, "sms", "marketing", "opted_out", source="admin")

    result = dispatch_in_transaction(send_request(customer, channel="sms"))

    assert (result.outcome, result.reason) == ("suppressed", "marketing SMS: the customer opted out")


@pytest.mark.parametrize(
    ("channel", "reason"),
    [("email", "no email address"), ("sms", "no phone number"), ("push", "no enabled push subscription")],
)
def test_channel_without_an_address_is_suppressed_with_the_reason(db, channel, reason, django_capture_on_commit_callbacks):
    customer = opted_in(Customer.objects.create(external_id="bare"), channel)
    # A disabled subscription is no way to reach someone.
    ContactPoint.objects.create(customer=customer, channel="push", address="https://push.example/sub/1", enabled=False)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = dispatch_in_transaction(send_request(customer, channel=channel))

    message = Message.objects.get()
    assert result == DispatchResult("suppressed", message.pk, reason)
    assert message.status == "suppressed"
    assert history(message.pk)[-1] == ("queued", "suppressed", reason)
    assert callbacks == []


# --- Duplicates ------------------------------------------------------------------------------------


def test_same_key_again_is_a_duplicate_and_schedules_nothing(ada, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as first_callbacks:
        first = dispatch_in_transaction(send_request(ada))
    with django_capture_on_commit_callbacks(execute=True) as second_callbacks:
        second = dispatch_in_transaction(send_request(ada, content={"subject": "Changed", "html": "x"}))

    assert first.outcome == "queued"
    assert second == DispatchResult("duplicate", first.message_id, "idempotency key already used")
    assert (len(first_callbacks), second_callbacks) == (1, [])
    assert Message.objects.get().content == EMAIL
    assert OutboxMessage.objects.get().attempts == 1


def test_duplicate_of_a_suppressed_message_stays_suppressed_once(ada):
    do_set_consent(ada, "email", "marketing", "unsubscribed", source="unsubscribe link")
    first = dispatch_in_transaction(send_request(ada))
    second = dispatch_in_transaction(send_request(ada))

    assert (first.outcome, second.outcome) == ("suppressed", "duplicate")
    assert second.message_id == first.message_id
    assert len(history(first.message_id)) == 2


# --- Misuse ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_dispatch_outside_a_transaction_is_refused_and_writes_nothing():
    customer = Customer.objects.create(external_id="ada", email="ada@example.com")

    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        dispatch(send_request(customer))

    assert not Message.objects.exists()


def test_unknown_channel_is_an_error_not_a_suppression(ada):
    with pytest.raises(InvalidMessageRequest, match="channel: 'fax' is not one of"):
        dispatch_in_transaction(send_request(ada, channel="fax"))

    assert not Message.objects.exists()


def test_send_request_and_result_are_frozen(ada):
    request = send_request(ada)
    with pytest.raises(AttributeError):
        request.channel = "sms"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        DispatchResult("queued", 1, "").outcome = "duplicate"  # type: ignore[misc]
