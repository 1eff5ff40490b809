"""FCM HTTP v1: the access token from the service account, the message, FCM's answers; and
the "push" configuration that sends browsers through Web Push and apps through FCM.

One local HTTP server plays both Google endpoints: the OAuth2 token endpoint (it checks
the JWT assertion against the service account's public key, made in the test) and
``messages:send``.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs

import pytest
import time_machine
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from py_vapid import Vapid02

from channels_app.delivery import deliver
from channels_app.ledger import QueueRequest, do_queue_message
from channels_app.models import Message, MessageTransition, ProviderConfig
from channels_app.providers import (
    PROVIDERS,
    Delivery,
    ProviderConfigValues,
    ProviderError,
    forget_provider_configs,
)
from channels_app.providers.fcm import SCOPE, FcmProvider, forget_access_tokens
from channels_app.providers.push import PushProvider
from channels_app.providers.webpush import vapid_public_key
from channels_app.tracking import click_url, receipt_url
from customers.models import ContactPoint, Customer
from tests.push_peers import HOLD, Browser, Recorded, Reply, StubServer, b64url, unb64url

T0 = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
SEND_PATH = "/v1/projects/chorus-test/messages:send"
CONTENT = {"title": "Your order shipped", "body": "It arrives Friday.", "url": "https://shop.example/o/42"}


def fcm_error(status: int, google_status: str, error_code: str | None = None, headers=None) -> Reply:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}] if error_code else []
    return Reply(status, {"Content-Type": "application/json", **(headers or {})},
                 {"error": {"code": status, "message": "stub", "status": google_status, "details": details}})


class Google:
    """The token endpoint and FCM, on one local server. Tokens are ya29.test-1, -2, …"""

    def __init__(self, server: StubServer, key: rsa.RSAPrivateKey):
        self.server, self.public_key = server, key.public_key()
        self.assertions: list[dict] = []
        server.routes["/token"] = self.token
        server.routes[SEND_PATH] = Reply(200, {"Content-Type": "application/json"}, {"name": "projects/chorus-test/messages/0:1"})

    def token(self, request: Recorded) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        header, claims, signature = form["assertion"].split(".")
        # Signed by the service account's key, or this raises (and the stub answers nothing).
        self.public_key.verify(unb64url(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        assert json.loads(unb64url(header)) == {"alg": "RS256", "typ": "JWT", "kid": "key-1"}
        self.assertions.append(json.loads(unb64url(claims)))
        return Reply(200, {"Content-Type": "application/json"},
                     {"access_token": f"ya29.test-{len(self.assertions)}", "expires_in": 3599, "token_type": "Bearer"})

    def sends(self) -> list[Recorded]:
        return self.server.to(SEND_PATH)


@pytest.fixture(autouse=True)
def _fresh_tokens():
    forget_access_tokens()
    yield
    forget_access_tokens()


@pytest.fixture
def service_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def google(service_key):
    with StubServer() as server:
        yield Google(server, service_key)


def service_account(key: rsa.RSAPrivateKey) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return json.dumps({
        "type": "service_account", "project_id": "chorus-test", "private_key_id": "key-1", "private_key": pem.decode(),
        "client_email": "chorus@chorus-test.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token",
    })


def fcm_values(google: Google, key: rsa.RSAPrivateKey, name: str = "fcm", **options) -> ProviderConfigValues:
    base = {"api_base_url": google.server.url, "token_uri": f"{google.server.url}/token", "ttl_seconds": 600}
    return ProviderConfigValues(name=name, options={**base, **options}, secrets={"service_account_json": service_account(key)})


def make_fcm(google: Google, key: rsa.RSAPrivateKey, **options) -> FcmProvider:
    provider = FcmProvider(fcm_values(google, key, **options))
    provider.timeout = 0.5
    return provider


@pytest.fixture
def phone(db):
    customer = Customer.objects.create(external_id="u-1")
    return ContactPoint.objects.create(customer=customer, channel="push", platform="android", address="fcm-token-abc")


def delivery_to(point: ContactPoint, content=CONTENT) -> Delivery:
    message = Message.objects.create(
        customer=point.customer, channel="push", category="transactional", content=content,
        idempotency_key=f"k-{point.pk}-{Message.objects.count()}",
    )
    return Delivery(
        message_id=message.pk, public_id=str(message.public_id), channel="push", category="transactional",
        to=point.address, content=content, idempotency_key=message.idempotency_key,
    )


def test_is_registered_for_the_push_channel():
    assert PROVIDERS["fcm"] is FcmProvider
    assert PROVIDERS["push"] is PushProvider
    assert FcmProvider.channels == PushProvider.channels == {"push"}


@time_machine.travel(T0, tick=False)
def test_sends_the_message_with_a_token_from_the_service_account(phone, google, service_key):
    delivery = delivery_to(phone)

    result = make_fcm(google, service_key).send(delivery)

    (send,) = google.sends()
    assert send.headers["Authorization"] == "Bearer ya29.test-1"
    assert send.json() == {
        "message": {
            "token": "fcm-token-abc",
            "notification": {"title": "Your order shipped", "body": "It arrives Friday."},
            "data": {"message_id": delivery.public_id, "receipt_url": receipt_url(delivery.public_id),
                     "url": click_url("https://shop.example/o/42", delivery.public_id)},
            "android": {"ttl": "600s"},
            "apns": {"headers": {"apns-expiration": str(int(T0.timestamp()) + 600)}},
        }
    }
    now = int(T0.timestamp())
    assert google.assertions == [{
        "iss": "chorus@chorus-test.iam.gserviceaccount.com", "scope": SCOPE, "aud": f"{google.server.url}/token",
        "iat": now, "exp": now + 3600,
    }]
    assert result.provider_message_id == "projects/chorus-test/messages/0:1"


def test_caches_the_access_token_until_a_minute_before_it_expires(phone, google, service_key):
    provider = make_fcm(google, service_key)
    with time_machine.travel(T0, tick=False) as clock:
        provider.send(delivery_to(phone))
        clock.shift(3599 - 61)
        FcmProvider(provider.config).send(delivery_to(phone))  # another instance, same process
        clock.shift(2)
        provider.send(delivery_to(phone))

    assert len(google.assertions) == 2
    assert [s.headers["Authorization"] for s in google.sends()] == ["Bearer ya29.test-1", "Bearer ya29.test-1", "Bearer ya29.test-2"]


def test_an_unregistered_token_is_disabled_at_once_and_the_error_is_permanent(phone, google, service_key):
    google.server.script(SEND_PATH, fcm_error(404, "NOT_FOUND", "UNREGISTERED"))

    with pytest.raises(ProviderError) as raised:
        make_fcm(google, service_key).send(delivery_to(phone))

    assert (raised.value.permanent, raised.value.reason) == (True, "push subscription gone (404 UNREGISTERED); disabled")
    phone.refresh_from_db()
    assert (phone.enabled, phone.last_failure_reason) == (False, "push subscription gone (404 UNREGISTERED); disabled")


def test_an_invalid_argument_is_permanent_and_keeps_the_token(phone, google, service_key):
    google.server.script(SEND_PATH, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"))

    with pytest.raises(ProviderError) as raised:
        make_fcm(google, service_key).send(delivery_to(phone))

    assert (raised.value.permanent, raised.value.reason) == (True, "400 INVALID_ARGUMENT")
    phone.refresh_from_db()
    assert phone.enabled is True


@pytest.mark.parametrize(("reply", "retry_after"), [
    (fcm_error(503, "UNAVAILABLE", "UNAVAILABLE", {"Retry-After": "30"}), 30.0),
    (fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", {"Retry-After": "60"}), 60.0),
    (fcm_error(500, "INTERNAL", "INTERNAL"), None),
])
def test_unavailable_and_quota_are_transient_honouring_retry_after(phone, google, service_key, reply, retry_after):
    google.server.script(SEND_PATH, reply)

    with pytest.raises(ProviderError) as raised:
        make_fcm(google, service_key).send(delivery_to(phone))

    assert (raised.value.permanent, raised.value.ambiguous, raised.value.retry_after) == (False, False, retry_after)
    phone.refresh_from_db()
    assert phone.enabled is True


def test_a_refused_access_token_is_replaced_once(phone, google, service_key):
    google.server.script(SEND_PATH, fcm_error(401, "UNAUTHENTICATED"))

    result = make_fcm(google, service_key).send(delivery_to(phone))

    assert result.provider_message_id == "projects/chorus-test/messages/0:1"
    assert [s.headers["Authorization"] for s in google.sends()] == ["Bearer ya29.test-1", "Bearer ya29.test-2"]


def test_a_token_refused_twice_is_transient(phone, google, service_key):
    google.server.script(SEND_PATH, fcm_error(401, "UNAUTHENTICATED"), fcm_error(401, "UNAUTHENTICATED"))

    with pytest.raises(ProviderError) as raised:
        make_fcm(google, service_key).send(delivery_to(phone))

    assert (raised.value.permanent, raised.value.ambiguous) == (False, False)
    assert len(google.sends()) == 2


def test_broken_apns_credentials_in_firebase_are_permanent_without_a_new_token(phone, google, service_key):
    google.server.script(SEND_PATH, fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"))

    with pytest.raises(ProviderError) as raised:
        make_fcm(google, service_key).send(delivery_to(phone))

    assert raised.value.permanent is True
    assert raised.value.reason == "401 THIRD_PARTY_AUTH_ERROR: fix the credentials in the Firebase console"
    assert (len(google.assertions), len(google.sends())) == (1, 1)
    phone.refresh_from_db()
    assert phone.enabled is True


def test_an_unanswered_send_is_ambiguous(phone, google, service_key):
    google.server.script(SEND_PATH, HOLD)

    with pytest.raises(ProviderError) as raised:
        make_fcm(google, service_key).send(delivery_to(phone))

    assert (raised.value.permanent, raised.value.ambiguous) == (False, True)


def test_an_unanswered_token_request_is_transient_not_ambiguous(phone, google, service_key):
    google.server.script("/token", HOLD)

    with pytest.raises(ProviderError) as raised:
        make_fcm(google, service_key).send(delivery_to(phone))

    assert (raised.value.permanent, raised.value.ambiguous) == (False, False)
    assert google.sends() == []


def test_a_rejected_service_account_is_permanent(phone, google, service_key):
    google.server.script("/token", Reply(400, {"Content-Type": "application/json"}, {"error": "invalid_grant"}))

    with pytest.raises(ProviderError) as raised:
        make_fcm(google, service_key).send(delivery_to(phone))

    assert raised.value.permanent is True
    assert raised.value.reason.startswith("FCM access token refused: 400")
    assert google.sends() == []


def test_refuses_browser_subscriptions_without_a_request(phone, google, service_key):
    ContactPoint.objects.filter(pk=phone.pk).update(platform="web")

    with pytest.raises(ProviderError) as raised:
        make_fcm(google, service_key).send(delivery_to(phone))

    assert (raised.value.permanent, raised.value.reason) == (True, "fcm sends to android/ios subscriptions; this one is web")
    assert google.server.requests == []


# --- the "push" configuration: both halves, through delivery --------------------------------


def queue_push(customer: Customer, key: str) -> Message:
    request = QueueRequest(customer_id=customer.pk, channel="push", category="transactional", idempotency_key=key, content=CONTENT)
    return do_queue_message(request).message


@pytest.fixture
def push_config(db, google, service_key):
    vapid = _vapid()
    raw = vapid.private_key.private_numbers().private_value.to_bytes(32, "big")
    vapid_secrets = {"vapid_private_key": b64url(raw), "vapid_public_key": vapid_public_key(vapid)}
    values = fcm_values(google, service_key, name="push", vapid_subject="mailto:ops@shop.example")
    row = ProviderConfig(channel="push", provider="push", label="Web + apps", is_primary=True, options=dict(values.options))
    row.set_secrets({**values.secrets, **vapid_secrets})
    row.save()
    forget_provider_configs()
    yield row
    forget_provider_configs()


def _vapid() -> Vapid02:
    key = Vapid02()
    key.generate_keys()
    return key


def test_push_sends_browsers_through_web_push_and_apps_through_fcm(push_config, google):
    browser = Browser()
    web_customer = Customer.objects.create(external_id="web-1")
    ContactPoint.objects.create(customer=web_customer, channel="push", platform="web", address=f"{google.server.url}/wp/1", keys=browser.keys)
    app_customer = Customer.objects.create(external_id="app-1")
    ContactPoint.objects.create(customer=app_customer, channel="push", platform="ios", address="apns-via-fcm-token")
    web_message, app_message = queue_push(web_customer, "k-web"), queue_push(app_customer, "k-app")

    assert deliver(web_message.pk) == "sent"
    assert deliver(app_message.pk) == "sent"

    (web_push,) = google.server.to("/wp/1")
    assert browser.decrypt(web_push.body)["message_id"] == str(web_message.public_id)
    assert google.sends()[0].json()["message"]["token"] == "apns-via-fcm-token"
    assert Message.objects.get(pk=app_message.pk).provider_message_id == "projects/chorus-test/messages/0:1"


def test_a_gone_subscription_fails_the_message_and_says_why(push_config, google):
    customer = Customer.objects.create(external_id="web-2")
    point = ContactPoint.objects.create(customer=customer, channel="push", platform="web", address=f"{google.server.url}/wp/2", keys=Browser().keys)
    google.server.script("/wp/2", Reply(410, {}, "Gone"))
    message = queue_push(customer, "k-gone")

    assert deliver(message.pk) == "failed"

    point.refresh_from_db()
    assert point.enabled is False
    detail = MessageTransition.objects.filter(message=message, to_status="failed").values_list("detail", flat=True).get()
    assert detail == "push subscription gone (410 Gone); disabled"
