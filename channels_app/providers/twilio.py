"""SMS through Twilio's Programmable Messaging, with the official SDK.

Every message asks Twilio to report its fate to ``{PUBLIC_URL}/webhooks/twilio/status/``
(naming the message's public id in the query)
(channels_app.webhooks.twilio). Marketing texts carry a validity period: a promotion
that sat in Twilio's queue for hours is dropped instead of arriving stale at night.
Transactional texts (a one-time code, a receipt) keep Twilio's own default unless the
account sets one for them too. Links in marketing texts become short click-tracking links
(channels_app.sms_text.short_links) unless the account's ``track_clicks`` is off; a
transactional text's links (a password reset) go out as written.

Failures: a 4xx answer is permanent (21211 invalid number, 21610 the recipient replied
STOP to this sender: their STOP is recorded here too, since Twilio will refuse every
text until they reply START); 429 and 5xx are transient, honouring Retry-After; a
refused or timed-out connect never reached Twilio (transient); a read timeout may
have sent (ambiguous).
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from channels_app.providers.base import Delivery, Provider, ProviderError, SendResult
from channels_app.providers.fields import ProviderField
from channels_app.sms_text import short_links, shortens_links
from customers.enums import Category

Field = ProviderField

STATUS_CALLBACK_PATH = "/webhooks/twilio/status/"
DEFAULT_MARKETING_VALIDITY_SECONDS = 4 * 3600
# Twilio accepts 1…36000 seconds (its default and maximum: 10 hours).
MAX_VALIDITY_SECONDS = 36000
# Twilio error codes meaning the recipient opted out of this sender (replied STOP).
OPTED_OUT_CODES = frozenset({21610})


class _HttpClient(TwilioHttpClient):
    """Keeps the last response's headers: TwilioRestException drops them, Retry-After included."""

    last_headers: dict

    def request(self, *args, **kwargs):
        self.last_headers = {}
        response = super().request(*args, **kwargs)
        self.last_headers = dict(response.headers or {})
        return response


def status_callback_url(public_id: str) -> str:
    """Names the message, so a receipt that outruns our own "sent" write still finds it."""
    return f"{settings.PUBLIC_URL}{STATUS_CALLBACK_PATH}?message={public_id}"


def _seconds(value: Any, key: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise ProviderError(f"twilio: option {key} must be a number of seconds, got {value!r}", permanent=True) from None
    if not 1 <= seconds <= MAX_VALIDITY_SECONDS:
        raise ProviderError(f"twilio: option {key} must be 1…{MAX_VALIDITY_SECONDS} seconds", permanent=True)
    return seconds


class TwilioProvider(Provider):
    name = "twilio"
    channels = frozenset({"sms"})
    option_fields: ClassVar[tuple[Field, ...]] = (
        Field("from_number", "From number", "E.164 sender, e.g. +14155550100 (or set a messaging service)."),
        Field("messaging_service_sid", "Messaging service SID", "MG…; used instead of the from number when set."),
        Field("validity_period_seconds", "Validity, marketing (s)",
              f"Drop a marketing text not delivered within this many seconds (default {DEFAULT_MARKETING_VALIDITY_SECONDS}).",
              kind="int"),
        Field("transactional_validity_period_seconds", "Validity, transactional (s)",
              "Optional; empty keeps Twilio's default (10 hours).", kind="int"),
        Field("track_clicks", "Track clicks",
              "Replace links in marketing texts with short click-tracking links (default: yes).", kind="bool"),
        Field("help_reply", "HELP reply", "Optional answer to a HELP/INFO text; empty leaves it to Twilio."),
        Field("api_base_url", "API base URL", "Leave empty for https://api.twilio.com; set for a test stub.", kind="url"),
    )
    secret_fields: ClassVar[tuple[Field, ...]] = (
        Field("account_sid", "Account SID", "AC…", required=True),
        Field("auth_token", "Auth token", "Also verifies Twilio's webhook signatures.", required=True),
    )

    def client(self) -> tuple[Client, _HttpClient]:
        secrets, options = self.config.secrets, self.config.options
        if not secrets.get("account_sid") or not secrets.get("auth_token"):
            raise ProviderError("twilio: account_sid and auth_token are required", permanent=True)
        http = _HttpClient(timeout=self.timeout, pool_connections=False)
        client = Client(secrets["account_sid"], secrets["auth_token"], http_client=http)
        if options.get("api_base_url"):
            client.api.base_url = str(options["api_base_url"]).rstrip("/")
        return client, http

    def params(self, delivery: Delivery) -> dict[str, Any]:
        options = self.config.options
        params: dict[str, Any] = {
            "to": delivery.to, "body": self.body(delivery),
            "status_callback": status_callback_url(delivery.public_id),
        }
        if options.get("messaging_service_sid"):
            params["messaging_service_sid"] = options["messaging_service_sid"]
        elif options.get("from_number"):
            params["from_"] = options["from_number"]
        else:
            raise ProviderError("twilio: set from_number or messaging_service_sid", permanent=True)
        validity = self.validity(delivery.category)
        if validity is not None:
            params["validity_period"] = validity
        return params

    def body(self, delivery: Delivery) -> str:
        """The text as rendered; a marketing text's links become short tracked ones (the
        ledger keeps the originals, which the redirect reads)."""
        body = str(delivery.content.get("body") or "")
        return short_links(body, delivery.message_id) if shortens_links(delivery.category, self.config.options) else body

    def validity(self, category: str) -> int | None:
        options = self.config.options
        if category == Category.MARKETING:
            value = _seconds(options.get("validity_period_seconds"), "validity_period_seconds")
            return DEFAULT_MARKETING_VALIDITY_SECONDS if value is None else value
        return _seconds(options.get("transactional_validity_period_seconds"), "transactional_validity_period_seconds")

    def send(self, delivery: Delivery) -> SendResult:
        params = self.params(delivery)
        client, http = self.client()
        try:
            message = client.messages.create(**params)
        except TwilioRestException as error:
            raise self._rest_error(error, delivery, http) from error
        except requests.RequestException as error:
            if _never_left(error):
                raise ProviderError(f"twilio: could not connect: {type(error).__name__}", permanent=False) from error
            # The request left and no (complete) answer came back: Twilio may have sent it.
            raise ProviderError(f"twilio: no answer: {type(error).__name__}", permanent=False, ambiguous=True) from error
        except TwilioException as error:
            raise ProviderError(f"twilio: {error}", permanent=True) from error
        return SendResult(provider_message_id=str(message.sid))

    def _rest_error(self, error: TwilioRestException, delivery: Delivery, http: _HttpClient) -> ProviderError:
        reason = f"twilio: {error.status} code {error.code}: {error.msg}"[:500]
        if error.status == 429 or error.status >= 500:
            return ProviderError(reason, permanent=False, retry_after=_retry_after(http.last_headers))
        if error.code in OPTED_OUT_CODES:
            record_carrier_stop(delivery)
        return ProviderError(reason, permanent=400 <= error.status < 500)


def _never_left(error: requests.RequestException) -> bool:
    """A refused or timed-out connect: nothing reached Twilio. A reset after sending did."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None  # urllib3's MaxRetryError
    return isinstance(error, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _retry_after(headers: dict) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: rare from Twilio; fall back to our own backoff
        return None


def record_carrier_stop(delivery: Delivery) -> None:
    """Twilio says the recipient replied STOP (we missed or predate that reply): record it."""
    from channels_app.models import Message
    from customers.consent import do_record_sms_stop

    message = Message.objects.select_related("customer").filter(pk=delivery.message_id).first()
    if message is not None:
        do_record_sms_stop(message.customer, source="Twilio: recipient unsubscribed (21610)")
