"""Web Push (RFC 8030) with VAPID (RFC 8292): the payload encrypted (aes128gcm, RFC 8291)
to the browser subscription's keys and POSTed to its endpoint, through pywebpush.

The push service answers 201 when it has queued the message; 404 or 410 when the
subscription is gone (unsubscribed, expired): that subscription is disabled at once, so
nothing is sent to it again. Web Push has no idempotency key, so an unanswered request
is ambiguous.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import ClassVar

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02, b64urlencode
from pywebpush import WebPushException, webpush

from channels_app.providers.base import Delivery, ProviderError, SendResult
from channels_app.providers.fields import ProviderField as Field
from channels_app.providers.push_common import (
    PushAdapter,
    Subscription,
    gone,
    notification,
    status_error,
    transport_error,
)
from customers.enums import PushPlatform

URGENCIES = ("very-low", "low", "normal", "high")
DEFAULT_TTL_SECONDS = 24 * 3600  # pywebpush's default, 0, drops it unless the device is online


class WebPushProvider(PushAdapter):
    name = "webpush"
    platforms = frozenset({PushPlatform.WEB.value})
    option_fields: ClassVar[tuple[Field, ...]] = (
        Field("vapid_subject", "VAPID subject", "A mailto: or https: contact the push services can reach you at.", required=True),
        Field("ttl_seconds", "Time to live (s)", "How long a push service keeps a message for an offline browser (default one day).", kind="int"),
        Field("urgency", "Urgency", "very-low, low, normal (default) or high: how eagerly a device on battery is woken."),
    )
    secret_fields: ClassVar[tuple[Field, ...]] = (
        Field("vapid_private_key", "VAPID private key", "PEM, or the raw 32-byte key in base64url.", required=True),
        Field("vapid_public_key", "VAPID public key", "base64url: the key browsers subscribed with (checked against the private key)."),
    )

    def send_to(self, delivery: Delivery, subscription: Subscription) -> SendResult:
        try:
            response = webpush(
                _subscription_info(subscription),
                data=json.dumps(notification(delivery)),
                vapid_private_key=self._vapid,
                vapid_claims={"sub": self._subject},  # a new dict: webpush() writes aud and exp into it
                content_encoding="aes128gcm",
                ttl=self._ttl,
                headers={"Urgency": self._urgency},
                timeout=self.timeout,
            )
        except WebPushException as error:
            if error.response is None:
                raise ProviderError(f"web push refused: {error.message}", permanent=True) from error
            raise _answer_error(subscription, error.response) from error
        except requests.RequestException as error:
            raise transport_error(error) from error
        except (ValueError, TypeError) as error:  # encrypting to the keys failed: nothing left
            raise ProviderError(f"web push subscription keys are invalid: {error}", permanent=True) from error
        # The push service's URL for the queued message (RFC 8030 §5) identifies it.
        return SendResult(provider_message_id=response.headers.get("Location") or delivery.public_id)

    # --- configuration: read once per adapter instance, refused permanently when wrong ---

    @cached_property
    def _subject(self) -> str:
        subject = str(self.config.options.get("vapid_subject", "")).strip()
        if not subject.startswith(("mailto:", "https:")):
            raise _config_error("vapid_subject must start with mailto: or https:")
        return subject

    @cached_property
    def _ttl(self) -> int:
        try:
            return int(self.config.options.get("ttl_seconds") or DEFAULT_TTL_SECONDS)
        except (TypeError, ValueError):
            raise _config_error("ttl_seconds must be a whole number of seconds") from None

    @cached_property
    def _urgency(self) -> str:
        urgency = str(self.config.options.get("urgency") or "normal")
        if urgency not in URGENCIES:
            raise _config_error(f"urgency must be one of {', '.join(URGENCIES)}")
        return urgency

    @cached_property
    def _vapid(self) -> Vapid02:
        vapid = _load_vapid(self.config.secrets.get("vapid_private_key", ""))
        expected = self.config.secrets.get("vapid_public_key", "").strip().rstrip("=")
        # Browsers subscribed with the public key; signing with another key gets every
        # send refused (403), so say which setting is wrong instead.
        if expected and expected != vapid_public_key(vapid):
            raise _config_error("vapid_public_key does not match vapid_private_key")
        return vapid


def vapid_public_key(vapid: Vapid02) -> str:
    """The application server key as browsers want it: the uncompressed point, base64url."""
    raw = vapid.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64urlencode(raw)


def _load_vapid(private_key: str) -> Vapid02:
    private_key = private_key.strip()
    if not private_key:
        raise _config_error("no vapid_private_key configured")
    try:
        if private_key.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(private_key.encode(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                raise ValueError("not a P-256 (prime256v1) key")
            return Vapid02(key)
        return Vapid02.from_string(private_key)
    except Exception as error:  # the key's own parse errors are many and varied
        raise _config_error(f"vapid_private_key is not a usable key: {error}") from error


def _subscription_info(subscription: Subscription) -> dict:
    keys = {name: subscription.keys.get(name, "") for name in ("p256dh", "auth")}
    if not all(keys.values()):
        raise ProviderError("web push subscription has no p256dh/auth keys", permanent=True)
    return {"endpoint": subscription.address, "keys": keys}


def _answer_error(subscription: Subscription, response: requests.Response) -> ProviderError:
    status = response.status_code
    if status in (404, 410):
        return gone(subscription, status, response.reason or "")
    if status == 413:
        return ProviderError("413 payload too large for the push service", permanent=True)
    return status_error(status, response.headers, f"{response.reason or ''} {response.text[:200]}".strip())


def _config_error(reason: str) -> ProviderError:
    return ProviderError(f"web push configuration: {reason}", permanent=True)
