"""Twilio's signed webhooks: status callbacks move the ledger, inbound texts change consent."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from channels_app.ledger import (
    QueueRequest,
    claim_for_sending,
    do_queue_message,
    do_transition_message,
)
from channels_app.models import Message, MessageTransition, ProviderConfig, ProviderEvent
from channels_app.webhooks import sms_keywords
from customers.enums import Category, Channel, ConsentStatus
from customers.models import Consent, ContactPoint, Customer, Event

pytestmark = pytest.mark.django_db

PUBLIC = "https://chorus.example"
TOKEN = "twilio-auth-token"
ACCOUNT = "AC" + "1" * 32
MSG_SID = "SM" + "a" * 32
PHONE = "+14155550199"
ENGAGED: list[int] = []


def record_engagement(message_id: int) -> None:
    ENGAGED.append(message_id)


@pytest.fixture(autouse=True)
def _twilio(settings):
    settings.PUBLIC_URL = PUBLIC
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.CHORUS_ENGAGEMENT_LISTENERS = ["tests.test_webhooks_twilio.record_engagement"]
    ENGAGED.clear()


def signed_post(client, path: str, params: dict, *, token: str = TOKEN, url: str | None = None, sent: dict | None = None):
    """POST ``sent`` (default: params) with the signature Twilio computes over ``url`` and ``params``."""
    signature = RequestValidator(token).compute_signature(url or f"{PUBLIC}{path}", params)
    return client.post(path, sent or params, HTTP_X_TWILIO_SIGNATURE=signature)


@pytest.fixture
def message():
    customer = Customer.objects.create(external_id="u1", phone=PHONE)
    queued = do_queue_message(QueueRequest(
        customer_id=customer.pk, channel=Channel.SMS, category=Category.MARKETING, idempotency_key="sms-1",
    )).message
    claim_for_sending(queued.pk)
    do_transition_message(queued.pk, "sent", provider="twilio", provider_message_id=MSG_SID)
    return Message.objects.get(pk=queued.pk)


def status_path(message: Message) -> str:
    return f"/webhooks/twilio/status/?message={message.public_id}"


def status_params(status: str, **extra) -> dict:
    return {"AccountSid": ACCOUNT, "MessageSid": MSG_SID, "MessageStatus": status, "To": PHONE, **extra}


def snapshot(message: Message) -> tuple:
    row = Message.objects.get(pk=message.pk)
    return (row.status, row.delivered_at, MessageTransition.objects.filter(message=row).count(), ProviderEvent.objects.count())


# --- status callbacks ------------------------------------------------------------------


def test_signed_delivered_callback_moves_the_message_and_wakes_engagement(client, message, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, status_path(message), status_params("delivered"))

    assert response.status_code == 204
    message.refresh_from_db()
    assert message.status == "delivered"
    assert message.delivered_at is not None
    assert list(ProviderEvent.objects.values_list("provider", "event_id", "kind", "message_id")) == [
        ("twilio", f"{MSG_SID}:delivered", "delivered", message.pk)
    ]
    assert ENGAGED == [message.pk]


def test_callback_without_message_query_finds_the_message_by_sid(client, message):
    response = signed_post(client, "/webhooks/twilio/status/", status_params("delivered"))

    assert response.status_code == 204
    assert Message.objects.get(pk=message.pk).status == "delivered"


def test_token_from_the_provider_config_verifies(client, message, settings):
    settings.TWILIO_AUTH_TOKEN = ""
    config = ProviderConfig(channel=Channel.SMS, provider="twilio", label="Twilio", is_primary=True)
    config.set_secrets({"account_sid": ACCOUNT, "auth_token": "row-token"})
    config.save()

    response = signed_post(client, status_path(message), status_params("delivered"), token="row-token")

    assert response.status_code == 204
    assert Message.objects.get(pk=message.pk).status == "delivered"


def test_forged_signature_is_refused_and_changes_nothing(client, message):
    before = snapshot(message)

    response = signed_post(client, status_path(message), status_params("delivered"), token="not-the-token")

    assert response.status_code == 403
    assert snapshot(message) == before


def test_missing_signature_is_refused(client, message):
    before = snapshot(message)

    response = client.post(status_path(message), status_params("delivered"))

    assert response.status_code == 403
    assert snapshot(message) == before


def test_tampered_parameter_is_refused_and_changes_nothing(client, message):
    before = snapshot(message)
    params = status_params("failed", ErrorCode="30006")

    response = signed_post(client, status_path(message), params, sent={**params, "ErrorCode": "30008"})

    assert response.status_code == 403
    assert snapshot(message) == before


def test_signature_over_a_spoofed_host_is_refused(client, message, settings):
    """The forger signs the URL of the Host it sends; we check against PUBLIC_URL."""
    settings.ALLOWED_HOSTS = ["*"]  # as behind a proxy that passes any Host through
    before = snapshot(message)
    path = status_path(message)

    response = client.post(
        path, status_params("delivered"), HTTP_HOST="evil.example",
        HTTP_X_TWILIO_SIGNATURE=RequestValidator(TOKEN).compute_signature(f"http://evil.example{path}", status_params("delivered")),
    )

    assert response.status_code == 403
    assert snapshot(message) == before


def test_the_same_callback_forty_times_is_one_transition(client, message):
    responses = {signed_post(client, status_path(message), status_params("delivered")).status_code for _ in range(40)}

    assert responses == {204}
    assert list(MessageTransition.objects.filter(message=message, to_status="delivered").values_list("from_status", flat=True)) == ["sent"]
    assert ProviderEvent.objects.count() == 1


def test_late_delivered_does_not_undo_clicked(client, message):
    do_transition_message(message.pk, "clicked")

    response = signed_post(client, status_path(message), status_params("delivered"))

    assert response.status_code == 204
    row = Message.objects.get(pk=message.pk)
    assert row.status == "clicked"
    assert row.delivered_at is not None  # the late receipt still records its time
    assert not MessageTransition.objects.filter(message=message, to_status="delivered").exists()


def test_sent_after_delivered_keeps_delivered(client, message):
    signed_post(client, status_path(message), status_params("delivered"))
    signed_post(client, status_path(message), status_params("sent"))

    assert Message.objects.get(pk=message.pk).status == "delivered"
    assert ProviderEvent.objects.count() == 2


def test_failed_after_delivered_keeps_delivered(client, message):
    signed_post(client, status_path(message), status_params("delivered"))

    response = signed_post(client, status_path(message), status_params("failed", ErrorCode="30008"))

    assert response.status_code == 204
    assert Message.objects.get(pk=message.pk).status == "delivered"


def test_landline_error_bounces_the_message_and_the_number(client, message):
    response = signed_post(client, status_path(message), status_params("undelivered", ErrorCode="30006"))

    assert response.status_code == 204
    row = Message.objects.get(pk=message.pk)
    assert (row.status, row.error) == ("bounced", "twilio undelivered (error 30006)")
    consent = Consent.objects.get(customer=message.customer, channel=Channel.SMS)
    assert (consent.category, consent.status) == (Category.MARKETING, ConsentStatus.BOUNCED)


def test_other_failures_fail_the_message_without_touching_consent(client, message):
    signed_post(client, status_path(message), status_params("failed", ErrorCode="30008"))

    assert Message.objects.get(pk=message.pk).status == "failed"
    assert not Consent.objects.exists()


def test_queued_status_is_recorded_without_moving_the_message(client, message):
    response = signed_post(client, status_path(message), status_params("queued"))

    assert response.status_code == 204
    assert Message.objects.get(pk=message.pk).status == "sent"
    assert ProviderEvent.objects.get().kind == "queued"


# --- inbound SMS -----------------------------------------------------------------------


INBOUND = "/webhooks/twilio/inbound/"


def inbound(body: str, sid: str = "SM" + "b" * 32, sender: str = PHONE) -> dict:
    return {"AccountSid": ACCOUNT, "MessageSid": sid, "From": sender, "To": "+14155550100", "Body": body}


@pytest.fixture
def customer():
    return Customer.objects.create(external_id="u1", phone=PHONE)


def sms_consents(customer) -> dict:
    return dict(Consent.objects.filter(customer=customer, channel=Channel.SMS).values_list("category", "status"))


@pytest.mark.parametrize("body", ["STOP", " stop ", "Stop.", "STOPALL", "unsubscribe", "Cancel", "END", "quit"])
def test_stop_keywords_stop_all_sms(client, customer, body):
    response = signed_post(client, INBOUND, inbound(body))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    assert response.content.decode() == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    assert sms_consents(customer) == {Category.MARKETING: ConsentStatus.STOPPED, Category.TRANSACTIONAL: ConsentStatus.STOPPED}


@pytest.mark.parametrize("body", ["please stop texting me", "Remove me from this list!", "don't text me again"])
def test_free_text_opt_outs_stop_too(client, customer, body):
    signed_post(client, INBOUND, inbound(body))

    assert sms_consents(customer) == {Category.MARKETING: ConsentStatus.STOPPED, Category.TRANSACTIONAL: ConsentStatus.STOPPED}


def test_start_after_stop_lifts_it(client, customer):
    signed_post(client, INBOUND, inbound("STOP", sid="SM1"))
    signed_post(client, INBOUND, inbound("start", sid="SM2"))

    assert sms_consents(customer)[Category.TRANSACTIONAL] == ConsentStatus.OPTED_IN


def test_stop_reaches_customers_known_by_contact_point(client, customer):
    other = Customer.objects.create(external_id="u2")
    ContactPoint.objects.create(customer=other, channel=Channel.SMS, address=PHONE)

    signed_post(client, INBOUND, inbound("STOP"))

    assert sms_consents(other)[Category.MARKETING] == ConsentStatus.STOPPED
    assert sms_consents(customer)[Category.MARKETING] == ConsentStatus.STOPPED


def test_help_replies_with_the_configured_text(client, customer):
    config = ProviderConfig(
        channel=Channel.SMS, provider="twilio", label="Twilio", is_primary=True,
        options={"from_number": "+14155550100", "help_reply": "Acme alerts. Reply STOP to stop <3"},
    )
    config.set_secrets({"account_sid": ACCOUNT, "auth_token": TOKEN})
    config.save()

    response = signed_post(client, INBOUND, inbound("HELP"))

    assert response.content.decode() == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Acme alerts. Reply STOP to stop &lt;3</Message></Response>'
    )
    assert sms_consents(customer) == {}


def test_other_text_is_recorded_as_an_event_without_consent_change(client, customer):
    signed_post(client, INBOUND, inbound("what time do you open?"))

    event = Event.objects.get(customer=customer)
    assert event.name == "SMS Received"
    assert event.properties == {"body": "what time do you open?", "from": PHONE, "to": "+14155550100", "keyword": "other"}
    assert sms_consents(customer) == {}


def test_duplicate_inbound_is_applied_once(client, customer):
    for _ in range(40):
        assert signed_post(client, INBOUND, inbound("hello")).status_code == 200

    assert Event.objects.filter(customer=customer).count() == 1
    assert ProviderEvent.objects.count() == 1


def test_forged_inbound_stop_is_refused(client, customer):
    response = signed_post(client, INBOUND, inbound("STOP"), token="forged")

    assert response.status_code == 403
    assert sms_consents(customer) == {}
    assert not ProviderEvent.objects.exists()


@pytest.mark.parametrize(
    ("body", "intent"),
    [("STOP", "stop"), ("can't stop smiling", "other"), ("yes", "start"), ("Info", "help"), ("", "other")],
)
def test_keyword_intents(body, intent):
    assert sms_keywords.intent(body) == intent
