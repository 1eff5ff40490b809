"""Firebase Cloud Messaging HTTP v1 for Android and iOS device tokens.

One ``POST {api}/v1/projects/{project}/messages:send`` per message, authorised by an OAuth2
access token that the service account obtains with a signed JWT (RFC 7523). google-auth
signs the assertion (it reads the service account JSON and its key); the two HTTP calls
are ours, with explicit timeouts and no hidden retries: google-auth's own token refresh
retries with sleeps and a 120-second default timeout, and firebase-admin brings far more
than this needs. The access token is cached per process until a minute before it expires.

FCM has no idempotency key, so an unanswered send is ambiguous. A token FCM calls
UNREGISTERED (or a 404) is disabled at once.
"""

from __future__ import annotations

import json
import threading
import time
from functools import cached_property
from typing import Any, ClassVar

import requests
from google.auth import crypt, jwt

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

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
DEFAULT_API_BASE = "https://fcm.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
DEFAULT_TTL_SECONDS = 24 * 3600
ASSERTION_LIFETIME = 3600  # the longest Google accepts
EARLY_REFRESH = 60  # seconds before expiry a cached token is replaced

# (client_email, private_key_id, token_uri) -> (access token, expires at, epoch seconds)
_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def forget_access_tokens() -> None:
    with _tokens_lock:
        _tokens.clear()


class FcmProvider(PushAdapter):
    name = "fcm"
    platforms = frozenset({PushPlatform.ANDROID.value, PushPlatform.IOS.value})
    option_fields: ClassVar[tuple[Field, ...]] = (
        Field("project_id", "Firebase project id", "Defaults to the service account's project."),
        Field("ttl_seconds", "Time to live (s)", "How long FCM keeps a message for an offline device (default one day).", kind="int"),
        Field("api_base_url", "FCM API base URL", "Leave empty for Google's; tests point it at a local stub.", kind="url"),
        Field("token_uri", "OAuth2 token URI", "Leave empty for the service account's; tests point it at a local stub.", kind="url"),
    )
    secret_fields: ClassVar[tuple[Field, ...]] = (
        Field("service_account_json", "Service account JSON", "The key file of a service account allowed to send with Firebase Messaging.", required=True),
    )

    def send_to(self, delivery: Delivery, subscription: Subscription) -> SendResult:
        body = self._message(delivery, subscription)
        response = self._post(body)
        if response.status_code == 401 and _error_code(response) != "THIRD_PARTY_AUTH_ERROR":
            # The token may have been revoked early: fetch a new one, once.
            self._forget_token()
            response = self._post(body)
        if response.status_code == 200:
            return SendResult(provider_message_id=_message_name(response) or delivery.public_id)
        raise _answer_error(subscription, response)

    def _message(self, delivery: Delivery, subscription: Subscription) -> dict[str, Any]:
        fields = notification(delivery)
        data = {"message_id": fields["message_id"], "receipt_url": fields["receipt_url"]}
        if "url" in fields:
            data["url"] = fields["url"]
        return {
            "message": {
                "token": subscription.address,
                "notification": {"title": fields["title"], "body": fields["body"]},
                "data": data,
                "android": {"ttl": f"{self._ttl}s"},
                # APNs wants the moment to give up, as epoch seconds.
                "apns": {"headers": {"apns-expiration": str(int(time.time()) + self._ttl)}},
            }
        }

    def _post(self, body: dict[str, Any]) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._access_token()}"}
        try:
            return self._session.post(self._send_url, json=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as error:
            raise transport_error(error) from error

    # --- the access token ---------------------------------------------------------------

    def _access_token(self) -> str:
        with _tokens_lock:
            cached = _tokens.get(self._token_key)
        if cached and cached[1] - EARLY_REFRESH > time.time():
            return cached[0]
        token, expires_in = self._fetch_token()
        with _tokens_lock:
            _tokens[self._token_key] = (token, time.time() + expires_in)
        return token

    def _forget_token(self) -> None:
        with _tokens_lock:
            _tokens.pop(self._token_key, None)

    def _fetch_token(self) -> tuple[str, float]:
        """Nothing is sent to a device here, so every failure is unambiguous."""
        now = int(time.time())
        claims = {"iss": self._account["client_email"], "scope": SCOPE, "aud": self._token_uri, "iat": now, "exp": now + ASSERTION_LIFETIME}
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": jwt.encode(self._signer, claims).decode()}
        try:
            response = self._session.post(self._token_uri, data=form, timeout=self.timeout)
        except requests.RequestException as error:
            raise ProviderError(f"FCM access token: {error}", permanent=False) from error
        if response.status_code != 200:
            error = status_error(response.status_code, response.headers, response.text[:200])
            raise ProviderError(f"FCM access token refused: {error.reason}", permanent=error.permanent, retry_after=error.retry_after)
        try:
            answer = response.json()
            return str(answer["access_token"]), float(answer.get("expires_in", ASSERTION_LIFETIME))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ProviderError(f"FCM access token: unreadable answer ({error!r})", permanent=False) from error

    # --- configuration: read once per adapter instance, refused permanently when wrong ---

    @cached_property
    def _session(self) -> requests.Session:
        return requests.Session()

    @cached_property
    def _account(self) -> dict[str, Any]:
        try:
            account = json.loads(self.config.secrets.get("service_account_json", "") or "null")
        except ValueError:
            raise _config_error("service_account_json is not JSON") from None
        if not isinstance(account, dict) or not account.get("client_email") or not account.get("private_key"):
            raise _config_error("service_account_json needs client_email and private_key")
        return account

    @cached_property
    def _signer(self) -> crypt.Signer:
        try:
            return crypt.RSASigner.from_service_account_info(self._account)
        except Exception as error:  # a malformed key raises any of several errors
            raise _config_error(f"the service account's private_key is not usable: {error}") from error

    @cached_property
    def _token_uri(self) -> str:
        return str(self.config.options.get("token_uri") or self._account.get("token_uri") or DEFAULT_TOKEN_URI)

    @cached_property
    def _token_key(self) -> tuple[str, str, str]:
        return (self._account["client_email"], str(self._account.get("private_key_id", "")), self._token_uri)

    @cached_property
    def _send_url(self) -> str:
        project = self.config.options.get("project_id") or self._account.get("project_id")
        if not project:
            raise _config_error("no project_id, in the options or the service account")
        base = str(self.config.options.get("api_base_url") or DEFAULT_API_BASE).rstrip("/")
        return f"{base}/v1/projects/{project}/messages:send"

    @cached_property
    def _ttl(self) -> int:
        try:
            return int(self.config.options.get("ttl_seconds") or DEFAULT_TTL_SECONDS)
        except (TypeError, ValueError):
            raise _config_error("ttl_seconds must be a whole number of seconds") from None


def _message_name(response: requests.Response) -> str:
    """FCM's id for the accepted message ("projects/…/messages/…"); "" if unreadable (it was sent)."""
    try:
        return str(response.json().get("name", ""))
    except (ValueError, AttributeError):
        return ""


def _error_code(response: requests.Response) -> str:
    """FCM's own code (UNREGISTERED, QUOTA_EXCEEDED…) when given, else the Google status."""
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return ""
    if not isinstance(error, dict):
        return ""
    for detail in error.get("details", []) or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            return str(detail["errorCode"])
    return str(error.get("status", ""))


def _answer_error(subscription: Subscription, response: requests.Response) -> ProviderError:
    status, code = response.status_code, _error_code(response)
    if code == "UNREGISTERED" or status == 404:
        return gone(subscription, status, code or "not found")
    if code == "THIRD_PARTY_AUTH_ERROR":  # the APNs or web credentials in Firebase are wrong
        return ProviderError(f"{status} {code}: fix the credentials in the Firebase console", permanent=True)
    if status == 401:  # still refused with a fresh token: may be Google's side
        return ProviderError(f"401 {code or 'unauthorized'} after a fresh access token", permanent=False)
    return status_error(status, response.headers, code or response.text[:200])


def _config_error(reason: str) -> ProviderError:
    return ProviderError(f"FCM configuration: {reason}", permanent=True)
