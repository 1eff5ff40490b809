"""Web Push: the payload encrypted to the browser's keys, VAPID-signed, and the push service's answers.

A local HTTP server is the push service. The test holds the subscription's private key,
as the browser would, and decrypts what arrived.
"""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from py_vapid import Vapid02

from channels_app.models import Message
from channels_app.providers import PROVIDERS, Delivery, ProviderConfigValues, ProviderError
from channels_app.providers.webpush import WebPushProvider, vapid_public_key
from channels_app.tracking import click_url, read_click, receipt_url
from customers.models import ContactPoint, Customer
from tests.push_peers import HOLD, Browser, Reply, StubServer, b64url, closed_port_url, unb64url

CONTENT = {"title": "Back in stock", "body": "The blue kettle is back.", "url": "https://shop.example/kettle", "icon": "https://shop.example/i.png"}


@pytest.fixture
def push_service():
    with StubServer(Reply(201, {"Location": "/m/abc123"})) as server:
        yield server


@pytest.fixture
def vapid():
    key = Vapid02()
    key.generate_keys()
    return key


@pytest.fixture
def browser():
    return Browser()


@pytest.fixture
def subscribed(db, push_service, browser):
    customer = Customer.objects.create(external_id="u-1")
    return ContactPoint.objects.create(
        customer=customer, channel="push", platform="web", address=f"{push_service.url}/push/sub-1", keys=browser.keys
    )


def make_provider(vapid: Vapid02, **options) -> WebPushProvider:
    raw = vapid.private_key.private_numbers().private_value.to_bytes(32, "big")
    secrets = {"vapid_private_key": b64url(raw), "vapid_public_key": vapid_public_key(vapid)}
    secrets.update(options.pop("secrets", {}))
    values = ProviderConfigValues(name="webpush", options={"vapid_subject": "mailto:ops@shop.example", **options}, secrets=secrets)
    provider = WebPushProvider(values)
    provider.timeout = 0.5  # the peer is local: half a second is an eternity
    return provider


def delivery_to(point: ContactPoint, content=CONTENT) -> Delivery:
    message = Message.objects.create(
        customer=point.customer, channel="push", category="marketing", content=content, idempotency_key=f"k-{point.pk}-{Message.objects.count()}"
    )
    return Delivery(
        message_id=message.pk, public_id=str(message.public_id), channel="push", category="marketing",
        to=point.address, content=content, idempotency_key=message.idempotency_key,
    )


def test_is_registered_for_the_push_channel():
    assert PROVIDERS["webpush"] is WebPushProvider
    assert WebPushProvider.channels == {"push"}
    assert WebPushProvider.honours_idempotency_key is False


def test_sends_a_payload_only_the_subscription_key_decrypts(subscribed, push_service, browser, vapid):
    delivery = delivery_to(subscribed)

    result = make_provider(vapid, ttl_seconds=3600, urgency="high").send(delivery)

    (request,) = push_service.requests
    assert request.path == "/push/sub-1"
    assert request.headers["Content-Encoding"] == "aes128gcm"
    assert request.headers["TTL"] == "3600"
    assert request.headers["Urgency"] == "high"
    assert b"Back in stock" not in request.body
    assert browser.decrypt(request.body) == {
        "title": "Back in stock",
        "body": "The blue kettle is back.",
        "url": click_url("https://shop.example/kettle", delivery.public_id),
        "icon": "https://shop.example/i.png",
        "message_id": delivery.public_id,
        "receipt_url": receipt_url(delivery.public_id),
    }
    assert result.provider_message_id == "/m/abc123"


def test_the_link_is_a_signed_click_tracking_link_to_the_page(subscribed, push_service, browser, vapid, settings):
    delivery = delivery_to(subscribed)

    make_provider(vapid).send(delivery)

    tracked = browser.decrypt(push_service.requests[0].body)["url"]
    prefix = f"{settings.PUBLIC_URL}/t/c/"
    assert tracked.startswith(prefix)
    assert read_click(tracked.removeprefix(prefix).rstrip("/")) == (delivery.public_id, "https://shop.example/kettle")


def test_defaults_to_a_day_to_live_and_normal_urgency(subscribed, push_service, browser, vapid):
    make_provider(vapid).send(delivery_to(subscribed, {"title": "Hi", "body": "There"}))

    (request,) = push_service.requests
    assert (request.headers["TTL"], request.headers["Urgency"]) == ("86400", "normal")
    assert set(browser.decrypt(request.body)) == {"title", "body", "message_id", "receipt_url"}


def test_vapid_authorization_verifies_with_the_public_key(subscribed, push_service, vapid):
    before = int(time.time())
    make_provider(vapid).send(delivery_to(subscribed))

    scheme, params = push_service.requests[0].headers["Authorization"].split(" ", 1)
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert scheme == "vapid"
    assert fields["k"] == vapid_public_key(vapid)
    signed, signature = fields["t"].rsplit(".", 1)
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
    raw = unb64url(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key.verify(der, signed.encode(), ec.ECDSA(hashes.SHA256()))  # raises when forged
    claims = json.loads(unb64url(signed.split(".")[1]))
    assert claims["aud"] == push_service.url
    assert claims["sub"] == "mailto:ops@shop.example"
    assert before < claims["exp"] <= before + 24 * 3600


def test_reads_a_pem_private_key(subscribed, push_service, browser, vapid):
    pem = vapid.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    provider = make_provider(vapid, secrets={"vapid_private_key": pem.decode()})

    provider.send(delivery_to(subscribed))

    assert browser.decrypt(push_service.requests[0].body)["title"] == "Back in stock"


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_subscription_is_disabled_at_once_and_the_error_is_permanent(subscribed, push_service, vapid, status):
    push_service.default = Reply(status)

    with pytest.raises(ProviderError) as raised:
        make_provider(vapid).send(delivery_to(subscribed))

    assert raised.value.permanent is True
    assert raised.value.reason.startswith(f"push subscription gone ({status}")
    subscribed.refresh_from_db()
    assert subscribed.enabled is False
    assert subscribed.last_failure_reason == raised.value.reason
    assert subscribed.last_failure_at is not None


def test_a_disabled_subscription_is_not_sent_to(subscribed, push_service, vapid):
    ContactPoint.objects.filter(pk=subscribed.pk).update(enabled=False)

    with pytest.raises(ProviderError) as raised:
        make_provider(vapid).send(delivery_to(subscribed))

    assert (raised.value.permanent, raised.value.reason) == (True, "push subscription removed or disabled before sending")
    assert push_service.requests == []


def test_too_large_is_permanent_and_keeps_the_subscription(subscribed, push_service, vapid):
    push_service.default = Reply(413)

    with pytest.raises(ProviderError) as raised:
        make_provider(vapid).send(delivery_to(subscribed))

    assert raised.value.permanent is True
    subscribed.refresh_from_db()
    assert subscribed.enabled is True


@pytest.mark.parametrize(("status", "retry_after"), [(429, "120"), (503, "7"), (500, None)])
def test_throttling_and_server_errors_are_transient_honouring_retry_after(subscribed, push_service, vapid, status, retry_after):
    push_service.default = Reply(status, {"Retry-After": retry_after} if retry_after else {})

    with pytest.raises(ProviderError) as raised:
        make_provider(vapid).send(delivery_to(subscribed))

    error = raised.value
    assert (error.permanent, error.ambiguous) == (False, False)
    assert error.retry_after == (float(retry_after) if retry_after else None)
    subscribed.refresh_from_db()
    assert subscribed.enabled is True


def test_an_unanswered_request_is_ambiguous(subscribed, push_service, vapid):
    push_service.default = HOLD

    with pytest.raises(ProviderError) as raised:
        make_provider(vapid).send(delivery_to(subscribed))

    assert (raised.value.permanent, raised.value.ambiguous) == (False, True)
    assert len(push_service.requests) == 1


def test_a_refused_connection_is_transient_and_not_ambiguous(db, browser, vapid):
    customer = Customer.objects.create(external_id="u-2")
    point = ContactPoint.objects.create(customer=customer, channel="push", platform="web", address=f"{closed_port_url()}/push/x", keys=browser.keys)

    with pytest.raises(ProviderError) as raised:
        make_provider(vapid).send(delivery_to(point))

    assert (raised.value.permanent, raised.value.ambiguous) == (False, False)


def test_refuses_app_tokens_without_a_request(subscribed, push_service, vapid):
    ContactPoint.objects.filter(pk=subscribed.pk).update(platform="android")

    with pytest.raises(ProviderError) as raised:
        make_provider(vapid).send(delivery_to(subscribed))

    assert raised.value.permanent is True
    assert raised.value.reason == "webpush sends to web subscriptions; this one is android"
    assert push_service.requests == []


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"vapid_subject": "ops@shop.example"}, "web push configuration: vapid_subject must start with mailto: or https:"),
        ({"urgency": "urgent"}, "web push configuration: urgency must be one of very-low, low, normal, high"),
        ({"secrets": {"vapid_public_key": b64url(b"\x04" + b"\x01" * 64)}}, "web push configuration: vapid_public_key does not match vapid_private_key"),
    ],
)
def test_a_wrong_configuration_is_permanent_and_sends_nothing(subscribed, push_service, vapid, options, reason):
    with pytest.raises(ProviderError) as raised:
        make_provider(vapid, **options).send(delivery_to(subscribed))

    assert (raised.value.permanent, raised.value.reason) == (True, reason)
    assert push_service.requests == []


def test_a_batch_reads_its_subscriptions_in_one_query(subscribed, push_service, browser, vapid, django_assert_num_queries):
    second = ContactPoint.objects.create(
        customer=subscribed.customer, channel="push", platform="web", address=f"{push_service.url}/push/sub-2", keys=Browser().keys
    )
    deliveries = [delivery_to(subscribed), delivery_to(second)]
    provider = make_provider(vapid)

    with django_assert_num_queries(1):
        outcomes = provider.send_batch(deliveries)

    assert [o.provider_message_id for o in outcomes] == ["/m/abc123", "/m/abc123"]
    assert [r.path for r in push_service.requests] == ["/push/sub-1", "/push/sub-2"]
