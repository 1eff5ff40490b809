"""ESP tracking webhooks through anymail: authenticated, idempotent, never backwards."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from django.test import Client
from django.urls import reverse

from channels_app.ledger import (
    QueueRequest,
    claim_for_sending,
    do_queue_message,
    do_transition_message,
)
from channels_app.models import Message, MessageTransition, ProviderConfig, ProviderEvent
from customers.enums import Category, Channel, ConsentStatus
from customers.models import Consent, Customer
from orchestrator.roles import Role

pytestmark = pytest.mark.django_db

ESP_ID = "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"
EMAIL = "ada@example.com"
SECRET = "chorus:webhook-password"
POSTMARK = "/webhooks/anymail/postmark/tracking/"
ENGAGED: list[int] = []


def record_engagement(message_id: int) -> None:
    ENGAGED.append(message_id)


@pytest.fixture(autouse=True)
def _anymail(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    settings.CHORUS_ENGAGEMENT_LISTENERS = ["tests.test_webhooks_anymail.record_engagement"]
    ENGAGED.clear()


def auth(secret: str = SECRET) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


def post(client, payload: dict, *, path: str = POSTMARK, secret: str | None = SECRET):
    headers = auth(secret) if secret else {}
    return client.post(path, json.dumps(payload), content_type="application/json", **headers)


@pytest.fixture
def message():
    customer = Customer.objects.create(external_id="u1", email=EMAIL)
    queued = do_queue_message(QueueRequest(
        customer_id=customer.pk, channel=Channel.EMAIL, category=Category.MARKETING, idempotency_key="mail-1",
    )).message
    claim_for_sending(queued.pk)
    do_transition_message(queued.pk, "sent", provider="anymail", provider_message_id=ESP_ID)
    return Message.objects.get(pk=queued.pk)


def delivery(at: str = "2026-12-03T10:00:00Z") -> dict:
    return {"RecordType": "Delivery", "MessageID": ESP_ID, "Recipient": EMAIL, "DeliveredAt": at}


def opened(at: str = "2026-12-03T10:05:00Z") -> dict:
    return {"RecordType": "Open", "MessageID": ESP_ID, "Recipient": EMAIL, "ReceivedAt": at}


def clicked(at: str = "2026-12-03T10:06:00Z") -> dict:
    return {"RecordType": "Click", "MessageID": ESP_ID, "Recipient": EMAIL, "ReceivedAt": at,
            "OriginalLink": "https://acme.example/sale"}


def bounce(kind: str = "HardBounce", bounce_id: int = 42) -> dict:
    return {"RecordType": "Bounce", "ID": bounce_id, "Type": kind, "MessageID": ESP_ID, "Email": EMAIL,
            "BouncedAt": "2026-12-03T10:01:00Z", "Description": "The server was unable to deliver your message"}


def snapshot(message: Message) -> tuple:
    row = Message.objects.get(pk=message.pk)
    return row.status, row.delivered_at, ProviderEvent.objects.count(), Consent.objects.count()


@pytest.fixture(autouse=True)
def _now(time_machine):
    time_machine.move_to("2026-12-03T11:00:00Z", tick=False)


def test_delivered_event_moves_the_message_and_wakes_engagement(client, message, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, delivery())

    assert response.status_code == 200
    row = Message.objects.get(pk=message.pk)
    assert (row.status, row.delivered_at.isoformat()) == ("delivered", "2026-12-03T10:00:00+00:00")
    assert ProviderEvent.objects.get().provider == "anymail:postmark"
    assert ENGAGED == [message.pk]


def test_wrong_basic_auth_is_refused_and_changes_nothing(client, message):
    before = snapshot(message)

    assert post(client, delivery(), secret="chorus:guess").status_code == 403
    assert post(client, delivery(), secret=None).status_code == 403
    assert snapshot(message) == before


def test_no_configured_secret_refuses_everything(client, message, settings):
    settings.ANYMAIL = {}
    before = snapshot(message)

    assert post(client, delivery()).status_code == 403
    assert snapshot(message) == before


def test_secret_from_the_provider_config(client, message, settings):
    settings.ANYMAIL = {}
    config = ProviderConfig(channel=Channel.EMAIL, provider="anymail", label="Postmark", options={"esp": "postmark"})
    config.set_secrets({"api_key": "k", "webhook_secret": "hooks:from-the-row"})
    config.save()

    assert post(client, delivery(), secret="hooks:from-the-row").status_code == 200
    assert Message.objects.get(pk=message.pk).status == "delivered"


def test_the_webhook_secret_is_set_write_only_in_the_admin_and_verifies_the_webhook(client, message, settings, make_user):
    settings.ANYMAIL = {}
    admin = Client()
    admin.force_login(make_user(Role.ADMIN, username="ada-admin"))
    form = {
        "channel": "email", "provider": "anymail", "label": "Postmark", "enabled": "on", "is_primary": "on",
        "failover_order": "1", "anymail__esp": "postmark", "anymail__from_email": "news@shop.example",
        "anymail__api_key": "pm-server-token", "anymail__webhook_secret": "hooks:set-in-the-admin",
    }
    assert admin.post(reverse("admin:channels_app_providerconfig_add"), form).status_code == 302
    row = ProviderConfig.objects.get()
    assert row.secrets() == {"api_key": "pm-server-token", "webhook_secret": "hooks:set-in-the-admin"}
    change_page = admin.get(reverse("admin:channels_app_providerconfig_change", args=[row.pk])).content.decode()
    for name in ("webhook_secret", "webhook_signing_key", "webhook_verification_key"):
        assert f'type="password" name="anymail__{name}"' in change_page
    assert "set-in-the-admin" not in change_page

    assert post(client, delivery(), secret="hooks:guessed").status_code == 403
    assert post(client, delivery(), secret="hooks:set-in-the-admin").status_code == 200
    assert Message.objects.get(pk=message.pk).status == "delivered"


def test_unknown_esp_is_404(client):
    assert post(client, delivery(), path="/webhooks/anymail/nope/tracking/").status_code == 404


def test_hard_bounce_bounces_message_and_address(client, message):
    response = post(client, bounce())

    assert response.status_code == 200
    assert Message.objects.get(pk=message.pk).status == "bounced"
    consent = Consent.objects.get(customer=message.customer, channel=Channel.EMAIL)
    assert (consent.category, consent.status, consent.source) == (Category.MARKETING, ConsentStatus.BOUNCED, "postmark: bounced")


def test_soft_bounce_leaves_the_address_alone(client, message):
    post(client, bounce("SoftBounce"))

    assert not Consent.objects.exists()


def test_complaint_and_unsubscribe_record_consent(client, message):
    post(client, {"RecordType": "SpamComplaint", "ID": 7, "Type": "SpamComplaint", "MessageID": ESP_ID,
                  "Email": EMAIL, "BouncedAt": "2026-12-03T10:10:00Z"})
    assert Consent.objects.get(customer=message.customer, channel=Channel.EMAIL).status == ConsentStatus.COMPLAINED

    post(client, {"RecordType": "SubscriptionChange", "MessageID": ESP_ID, "Recipient": EMAIL,
                  "ChangedAt": "2026-12-03T10:11:00Z", "SuppressSending": True, "SuppressionReason": "ManualSuppression"})
    assert Consent.objects.get(customer=message.customer, channel=Channel.EMAIL).status == ConsentStatus.UNSUBSCRIBED


def test_bounce_for_an_unknown_message_bounces_the_recipient_address(client):
    customer = Customer.objects.create(external_id="u9", email=EMAIL)

    post(client, bounce())

    assert Consent.objects.get(customer=customer, channel=Channel.EMAIL).status == ConsentStatus.BOUNCED


def test_duplicated_event_is_applied_once(client, message):
    for _ in range(40):
        assert post(client, opened()).status_code == 200

    assert ProviderEvent.objects.count() == 1
    assert MessageTransition.objects.filter(message=message, to_status="opened").count() == 1


def test_duplicated_bounce_id_is_applied_once(client, message):
    for _ in range(3):
        post(client, bounce(bounce_id=99))

    assert list(ProviderEvent.objects.values_list("event_id", flat=True)) == ["99"]


def test_out_of_order_events_never_move_backwards(client, message):
    post(client, clicked())
    post(client, opened())
    post(client, delivery())

    row = Message.objects.get(pk=message.pk)
    assert row.status == "clicked"
    assert row.delivered_at.isoformat() == "2026-12-03T10:00:00+00:00"
    assert list(MessageTransition.objects.filter(message=message).order_by("id").values_list("to_status", flat=True)) == [
        "queued", "sending", "sent", "clicked"
    ]


def test_events_older_than_a_week_are_acknowledged_and_ignored(client, message):
    before = snapshot(message)

    assert post(client, delivery(at="2026-11-20T10:00:00Z")).status_code == 200
    assert snapshot(message) == before


# --- an ESP with its own signature: Mailgun --------------------------------------------


MAILGUN = "/webhooks/anymail/mailgun/tracking/"
SIGNING_KEY = "mailgun-signing-key"
MAILGUN_ID = "20261203100000.1@mg.acme.example"  # anymail's Mailgun backend stores it as "<…>"


def mailgun_event(signature: str | None = None, *, event: str = "delivered", event_id: str = "mg-event-1",
                  timestamp: str = "1796292000", token: str = "a" * 50) -> dict:
    good = hmac.new(SIGNING_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature or good},
        "event-data": {"event": event, "id": event_id, "timestamp": 1796292000.0, "recipient": EMAIL,
                       "message": {"headers": {"message-id": MAILGUN_ID}}},
    }


def test_mailgun_signed_event_is_accepted(client, message, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    Message.objects.filter(pk=message.pk).update(provider_message_id=f"<{MAILGUN_ID}>")

    assert post(client, mailgun_event(), path=MAILGUN).status_code == 200
    assert Message.objects.get(pk=message.pk).status == "delivered"


def test_mailgun_forged_signature_is_refused(client, message, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    before = snapshot(message)

    assert post(client, mailgun_event(signature="0" * 64), path=MAILGUN).status_code == 403
    assert snapshot(message) == before


def test_mailgun_without_signing_key_is_unavailable(client, message):
    assert post(client, mailgun_event(), path=MAILGUN).status_code == 503


# --- the receipt wakes a journey waiting on it -----------------------------------------


def test_open_receipt_wakes_the_journey_waiting_for_it(client, settings, django_capture_on_commit_callbacks):
    from orchestrator.engine.models import EnrollmentState
    from tests.test_engine_nodes import bodies, engagement_journey, make_customer, start

    settings.CHORUS_ENGAGEMENT_LISTENERS = ["orchestrator.engine.on_message_engagement"]  # the default
    ada = make_customer("ada-webhook", email=EMAIL)
    with django_capture_on_commit_callbacks(execute=True):
        enrollment = start(engagement_journey("opened"), ada)
    email = Message.objects.get(customer=ada, channel="email")
    Message.objects.filter(pk=email.pk).update(provider="anymail", provider_message_id=ESP_ID)
    enrollment.refresh_from_db()
    assert enrollment.state == EnrollmentState.WAITING

    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, opened(at="2026-12-03T11:00:00Z")).status_code == 200

    assert Message.objects.get(pk=email.pk).status == "opened"
    assert bodies(ada) == ["engaged"]


def test_mailgun_replayed_signature_changes_nothing(client, message, settings):
    """The signature covers timestamp + token only: a second use of the token is a replay."""
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    Message.objects.filter(pk=message.pk).update(provider_message_id=f"<{MAILGUN_ID}>")
    post(client, mailgun_event(), path=MAILGUN)
    before = snapshot(message)

    response = post(client, mailgun_event(event="failed", event_id="mg-event-2"), path=MAILGUN)

    assert response.status_code == 200
    assert snapshot(message) == before


def test_mailgun_stale_signature_is_refused(client, message, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    Message.objects.filter(pk=message.pk).update(provider_message_id=f"<{MAILGUN_ID}>")
    before = snapshot(message)

    response = post(client, mailgun_event(timestamp="1796194800"), path=MAILGUN)  # 27 hours before now

    assert response.status_code == 403
    assert snapshot(message) == before
