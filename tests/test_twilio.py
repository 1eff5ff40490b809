"""The Twilio SMS adapter, against a local HTTP server standing in for Twilio's API."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from channels_app.ledger import QueueRequest, do_queue_message
from channels_app.providers import PROVIDERS, Delivery, ProviderConfigValues, ProviderError
from channels_app.providers.twilio import DEFAULT_MARKETING_VALIDITY_SECONDS, TwilioProvider
from channels_app.sms_text import short_url
from customers.enums import Category, Channel, ConsentStatus
from customers.models import Consent, Customer

SID, TOKEN = "AC" + "1" * 32, "secret-token"
BODY = "Acme: 20% off until midnight. Reply STOP to opt out"


class FakeTwilio:
    """Answers Twilio's Messages API with whatever the test scripted; records each request."""

    def __init__(self):
        self.requests: list[dict] = []
        self.reply: tuple[int, dict, dict] = (201, {"sid": "SM" + "a" * 32, "status": "queued"}, {})
        self.hang = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                fake.requests.append({"path": self.path, "form": form, "auth": self.headers.get("Authorization", "")})
                if fake.hang.is_set():  # read the request, never answer
                    fake.release.wait(5)
                    return
                status, body, headers = fake.reply
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def twilio_api():
    fake = FakeTwilio()
    yield fake
    fake.close()


def provider(url: str, **options) -> TwilioProvider:
    options = {"from_number": "+14155550100", "api_base_url": url, **options}
    return TwilioProvider(ProviderConfigValues(name="twilio", options=options, secrets={"account_sid": SID, "auth_token": TOKEN}))


def delivery(category: str = Category.MARKETING, message_id: int = 1, public_id: str = "0b3d7c9e-0000-4000-8000-000000000001") -> Delivery:
    return Delivery(
        message_id=message_id, public_id=public_id, channel="sms", category=category, to="+14155550199",
        content={"body": BODY}, idempotency_key="k-1",
    )


def test_is_registered_for_sms():
    assert PROVIDERS["twilio"] is TwilioProvider
    assert TwilioProvider.channels == frozenset({"sms"})


def test_sends_marketing_sms_with_callback_and_validity(twilio_api, settings):
    settings.PUBLIC_URL = "https://chorus.example"
    result = provider(twilio_api.url).send(delivery())

    assert result.provider_message_id == "SM" + "a" * 32
    [request] = twilio_api.requests
    assert request["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request["auth"].startswith("Basic ")
    assert request["form"] == {
        "To": "+14155550199",
        "From": "+14155550100",
        "Body": BODY,
        "StatusCallback": "https://chorus.example/webhooks/twilio/status/?message=0b3d7c9e-0000-4000-8000-000000000001",
        "ValidityPeriod": str(DEFAULT_MARKETING_VALIDITY_SECONDS),
    }


def test_messaging_service_replaces_from_number_and_transactional_has_no_validity(twilio_api):
    provider(twilio_api.url, messaging_service_sid="MG" + "b" * 32).send(delivery(Category.TRANSACTIONAL))

    form = twilio_api.requests[0]["form"]
    assert form["MessagingServiceSid"] == "MG" + "b" * 32
    assert "From" not in form
    assert "ValidityPeriod" not in form


def test_configured_validity_periods(twilio_api):
    adapter = provider(twilio_api.url, validity_period_seconds="600", transactional_validity_period_seconds=120)
    adapter.send(delivery())
    adapter.send(delivery(Category.TRANSACTIONAL))

    assert [r["form"]["ValidityPeriod"] for r in twilio_api.requests] == ["600", "120"]


def test_out_of_range_validity_is_a_permanent_error_without_a_request(twilio_api):
    with pytest.raises(ProviderError) as caught:
        provider(twilio_api.url, validity_period_seconds=99999).send(delivery())

    assert caught.value.permanent is True
    assert twilio_api.requests == []


def test_missing_sender_is_permanent_without_a_request(twilio_api):
    with pytest.raises(ProviderError) as caught:
        provider(twilio_api.url, from_number="").send(delivery())

    assert caught.value.permanent is True
    assert twilio_api.requests == []


def test_invalid_number_is_permanent(twilio_api):
    twilio_api.reply = (400, {"code": 21211, "message": "The 'To' number is not valid.", "status": 400}, {})

    with pytest.raises(ProviderError) as caught:
        provider(twilio_api.url).send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous, caught.value.retry_after) == (True, False, None)
    assert "21211" in caught.value.reason


@pytest.mark.django_db
def test_unsubscribed_recipient_is_permanent_and_records_the_stop(twilio_api):
    customer = Customer.objects.create(external_id="u1", phone="+14155550199")
    message = do_queue_message(QueueRequest(
        customer_id=customer.pk, channel=Channel.SMS, category=Category.MARKETING, idempotency_key="k-21610",
    )).message
    twilio_api.reply = (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}, {})

    with pytest.raises(ProviderError) as caught:
        provider(twilio_api.url).send(delivery(message_id=message.pk, public_id=str(message.public_id)))

    assert caught.value.permanent is True
    statuses = dict(Consent.objects.filter(customer=customer, channel=Channel.SMS).values_list("category", "status"))
    assert statuses == {Category.MARKETING: ConsentStatus.STOPPED, Category.TRANSACTIONAL: ConsentStatus.STOPPED}


def test_rate_limit_is_transient_with_retry_after(twilio_api):
    twilio_api.reply = (429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "7"})

    with pytest.raises(ProviderError) as caught:
        provider(twilio_api.url).send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous, caught.value.retry_after) == (False, False, 7.0)


def test_server_error_is_transient(twilio_api):
    twilio_api.reply = (500, {"code": 20500, "message": "Internal Server Error", "status": 500}, {})

    with pytest.raises(ProviderError) as caught:
        provider(twilio_api.url).send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous, caught.value.retry_after) == (False, False, None)


def test_no_answer_after_the_request_left_is_ambiguous(twilio_api, monkeypatch):
    monkeypatch.setattr(TwilioProvider, "timeout", 0.5)
    twilio_api.hang.set()

    with pytest.raises(ProviderError) as caught:
        provider(twilio_api.url).send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous) == (False, True)
    assert len(twilio_api.requests) == 1


def test_refused_connection_is_transient_not_ambiguous():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(ProviderError) as caught:
        provider(f"http://127.0.0.1:{port}").send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous) == (False, False)


def test_links_in_a_marketing_text_become_short_tracked_links(twilio_api, settings):
    settings.PUBLIC_URL = "https://chorus.acme.example"
    body = "Acme: the sale is on at https://shop.example/sale/spring?utm_source=sms. Reply STOP to opt out"
    marketing = Delivery(message_id=4242, public_id="p", channel="sms", category=Category.MARKETING,
                         to="+14155550199", content={"body": body}, idempotency_key="k-2")

    provider(twilio_api.url).send(marketing)
    provider(twilio_api.url).send(replace(marketing, category=Category.TRANSACTIONAL))
    provider(twilio_api.url, track_clicks="false").send(marketing)

    sent = [r["form"]["Body"] for r in twilio_api.requests]
    assert sent[0] == f"Acme: the sale is on at {short_url(4242, 0)}. Reply STOP to opt out"
    assert sent[1:] == [body, body]  # transactional links, and an account that turned tracking off
