"""Email over SMTP (Django's SMTP backend) and over any ESP django-anymail supports.

Both build one multipart/alternative message (text + HTML) from the rendered content,
with a Message-ID naming the message's public id. Marketing mail carries the one-click
unsubscribe headers (channels_app.unsubscribe); transactional mail does not. Each adapter
takes its settings from its ProviderConfigValues, never from the global EMAIL_* or
ANYMAIL settings, so two accounts can live side by side.
"""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.utils.html import strip_tags
from urllib3.exceptions import NewConnectionError

from channels_app.providers.base import Delivery, Provider, ProviderError, SendResult
from channels_app.providers.fields import ProviderField
from channels_app.tracking import add_tracking
from channels_app.unsubscribe import list_unsubscribe_headers
from customers.enums import Category

Field = ProviderField

COMMON_OPTIONS: tuple[Field, ...] = (
    Field("from_email", "From address", 'Sender, e.g. "Acme <news@acme.example>".', required=True),
    Field("reply_to", "Reply-To", "Optional address replies go to.", kind="email"),
    Field("unsubscribe_mailbox", "Unsubscribe mailbox", "Optional address for mailto: unsubscribes (List-Unsubscribe).",
          kind="email"),
    Field("track_opens", "Track opens", "Add Chorus's open-tracking pixel. Default: yes over SMTP (it has no "
          "webhooks), no through an ESP (it reports opens itself).", kind="bool"),
    Field("track_clicks", "Track clicks", "Rewrite links through Chorus's click tracking. Default: as for opens.",
          kind="bool"),
)


def _flag(options: Any, key: str, default: bool) -> bool:
    value = options.get(key, default)
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


class _EmailProvider(Provider):
    channels = frozenset({"email"})
    # Our own tracking by default: SMTP has no webhooks; an ESP reports through its own.
    tracks_by_default: ClassVar[bool] = False

    def build(self, delivery: Delivery) -> EmailMultiAlternatives:
        """The email for one delivery: text + HTML alternatives and all headers."""
        options = self.config.options
        content = delivery.content
        html = str(content.get("html") or "")
        text = str(content.get("text") or "") or strip_tags(html)
        html = add_tracking(
            html, delivery.public_id,
            clicks=_flag(options, "track_clicks", self.tracks_by_default),
            opens=_flag(options, "track_opens", self.tracks_by_default),
        )
        email = EmailMultiAlternatives(
            subject=str(content.get("subject") or ""),
            body=text,
            from_email=options.get("from_email") or None,
            to=[delivery.to],
            reply_to=[options["reply_to"]] if options.get("reply_to") else None,
            headers=self.headers(delivery),
        )
        email.attach_alternative(html, "text/html")
        return email

    def headers(self, delivery: Delivery) -> dict[str, str]:
        headers = {str(k): str(v) for k, v in (delivery.content.get("headers") or {}).items()}
        headers["Message-ID"] = f"<{delivery.public_id}@{self._domain()}>"
        if delivery.category == Category.MARKETING:
            mailbox = str(self.config.options.get("unsubscribe_mailbox") or "")
            headers.update(list_unsubscribe_headers(delivery.public_id, mailto=mailbox))
        return headers

    def _domain(self) -> str:
        address = parseaddr(str(self.config.options.get("from_email") or ""))[1]
        return address.rpartition("@")[2] or urlsplit(settings.PUBLIC_URL).hostname or "chorus.invalid"


# --- SMTP ------------------------------------------------------------------------------------


class SmtpProvider(_EmailProvider):
    """Django's SMTP backend, instantiated with this configuration's values."""

    name = "smtp"
    tracks_by_default = True
    option_fields: ClassVar[tuple[Field, ...]] = (
        Field("host", "SMTP host", "e.g. smtp.example.com", required=True),
        Field("port", "Port", "587 for STARTTLS, 465 for SSL, 25 plain.", required=True, kind="int"),
        Field("use_tls", "STARTTLS", "Upgrade the connection with STARTTLS (default: no).", kind="bool"),
        Field("use_ssl", "SSL/TLS", "Connect over implicit TLS, usually port 465 (default: no).", kind="bool"),
        *COMMON_OPTIONS,
    )
    secret_fields: ClassVar[tuple[Field, ...]] = (
        Field("username", "Username", "SMTP login; leave empty for none."),
        Field("password", "Password", "SMTP password or app password."),
    )

    def backend(self) -> SmtpBackend:
        options, secrets = self.config.options, self.config.secrets
        return SmtpBackend(
            host=str(options.get("host") or "localhost"),
            port=int(options.get("port") or 25),
            username=secrets.get("username") or "",
            password=secrets.get("password") or "",
            use_tls=_flag(options, "use_tls", False),
            use_ssl=_flag(options, "use_ssl", False),
            timeout=self.timeout,
            fail_silently=False,
        )

    def send(self, delivery: Delivery) -> SendResult:
        email = self.build(delivery)
        backend = self.backend()
        _smtp_open(backend)
        try:
            _smtp_send(backend, email)
        finally:
            _close_quietly(backend)
        return SendResult(provider_message_id=email.extra_headers["Message-ID"])

    def send_batch(self, deliveries: Sequence[Delivery]) -> list[SendResult | Exception]:
        """One connection (and one login) for the whole batch, reopened after a broken send.

        If the server cannot be reached, nothing in the batch was sent: every remaining
        delivery gets that transient error rather than another wait for a timeout."""
        outcomes: list[SendResult | Exception] = []
        backend: SmtpBackend | None = None
        try:
            for delivery in deliveries:
                if backend is None:
                    backend = self.backend()
                    try:
                        _smtp_open(backend)
                    except ProviderError as error:
                        return outcomes + [error] * (len(deliveries) - len(outcomes))
                outcomes.append(self._send_on(backend, delivery))
                if isinstance(outcomes[-1], ProviderError) and outcomes[-1].ambiguous:
                    _close_quietly(backend)  # the session is gone; the next send reconnects
                    backend = None
        finally:
            if backend is not None:
                _close_quietly(backend)
        return outcomes

    def _send_on(self, backend: SmtpBackend, delivery: Delivery) -> SendResult | Exception:
        try:
            email = self.build(delivery)
            _smtp_send(backend, email)
        except Exception as error:  # each outcome is judged by the caller
            return error
        return SendResult(provider_message_id=email.extra_headers["Message-ID"])


def _smtp_open(backend: SmtpBackend) -> None:
    # Connecting apart from sending tells "never reached the server" (safe to retry) from
    # "the server went away during the transaction" (it may have accepted the message).
    try:
        backend.open()
    except smtplib.SMTPResponseException as error:  # a greeting, STARTTLS or login refused
        raise _smtp_code_error(error.smtp_code, error.smtp_error) from error
    except (OSError, smtplib.SMTPException) as error:
        raise ProviderError(f"SMTP connection failed: {error!r}", permanent=False) from error


def _close_quietly(backend: SmtpBackend) -> None:
    try:
        backend.close()
    except (OSError, smtplib.SMTPException):
        pass  # the message's fate was decided by then


def _smtp_send(backend: SmtpBackend, email: EmailMultiAlternatives) -> None:
    try:
        backend.send_messages([email])
    except smtplib.SMTPRecipientsRefused as error:
        code, reply = next(iter(error.recipients.values()))
        raise _smtp_code_error(code, reply) from error
    except smtplib.SMTPResponseException as error:  # sender refused, DATA refused
        raise _smtp_code_error(error.smtp_code, error.smtp_error) from error
    except (OSError, smtplib.SMTPException) as error:  # disconnected or timed out mid-transaction
        raise ProviderError(f"SMTP transaction interrupted: {error!r}", permanent=False, ambiguous=True) from error


def _smtp_code_error(code: int, reply: bytes | str) -> ProviderError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return ProviderError(f"SMTP {code} {text}".strip(), permanent=500 <= code < 600)


# --- django-anymail ----------------------------------------------------------------------------

# The kwarg each ESP's anymail backend takes the API key under (most say api_key).
ESP_KEY_KWARG = {"postmark": "server_token"}
ANYMAIL_BACKENDS = {
    "sendgrid": "anymail.backends.sendgrid.EmailBackend",
    "mailgun": "anymail.backends.mailgun.EmailBackend",
    "postmark": "anymail.backends.postmark.EmailBackend",
    "amazon_ses": "anymail.backends.amazon_ses.EmailBackend",
    "brevo": "anymail.backends.brevo.EmailBackend",
    "mailjet": "anymail.backends.mailjet.EmailBackend",
    "mandrill": "anymail.backends.mandrill.EmailBackend",
    "resend": "anymail.backends.resend.EmailBackend",
    "sparkpost": "anymail.backends.sparkpost.EmailBackend",
    "mailersend": "anymail.backends.mailersend.EmailBackend",
}


class AnymailProvider(_EmailProvider):
    """Any ESP django-anymail supports, configured per instance (api_key, api_url…)."""

    name = "anymail"
    option_fields: ClassVar[tuple[Field, ...]] = (
        Field("esp", "ESP", f"One of: {', '.join(sorted(ANYMAIL_BACKENDS))}.", required=True),
        Field("api_url", "API URL", "Leave empty for the ESP's own; set for an EU region or a test stub.", kind="url"),
        *COMMON_OPTIONS,
    )
    secret_fields: ClassVar[tuple[Field, ...]] = (
        Field("api_key", "API key", "The ESP's API key (Postmark: the server token)."),
        Field("secret_key", "Secret key", "Only ESPs with a key pair (Mailjet)."),
        # Read by channels_app.webhooks.anymail to verify the ESP's tracking webhook.
        Field("webhook_secret", "Tracking webhook secret",
              "user:password for HTTP basic auth on the tracking webhook: give the ESP "
              "https://user:password@<your Chorus host>/webhooks/anymail/<esp>/tracking/. "
              "Without one, tracking webhooks are refused."),
        Field("webhook_signing_key", "Webhook signing key", "Mailgun only: the HTTP webhook signing key."),
        Field("webhook_verification_key", "Webhook verification key",
              "SendGrid only: the signed event webhook's public verification key."),
    )

    def connection(self):
        options, secrets = self.config.options, self.config.secrets
        esp = str(options.get("esp") or "")
        if esp not in ANYMAIL_BACKENDS:
            raise ProviderError(f"anymail: unknown esp {esp!r}", permanent=True)
        kwargs: dict[str, Any] = {"timeout": self.timeout}
        if secrets.get("api_key"):
            kwargs[ESP_KEY_KWARG.get(esp, "api_key")] = secrets["api_key"]
        if secrets.get("secret_key"):
            kwargs["secret_key"] = secrets["secret_key"]
        if options.get("api_url"):
            kwargs["api_url"] = options["api_url"]
        return get_connection(ANYMAIL_BACKENDS[esp], fail_silently=False, **kwargs)

    def send(self, delivery: Delivery) -> SendResult:
        email = self.build(delivery)
        email.connection = self.connection()
        try:
            email.send()
        except AnymailRecipientsRefused as error:
            raise ProviderError(f"anymail: recipient refused: {error}", permanent=True) from error
        except AnymailAPIError as error:
            raise _anymail_error(error) from error
        except AnymailError as error:  # configuration or serialisation: the same send fails again
            raise ProviderError(f"anymail: {error}", permanent=True) from error
        message_id = email.anymail_status.message_id
        return SendResult(provider_message_id=str(message_id or email.extra_headers["Message-ID"]))


def _anymail_error(error: AnymailAPIError) -> ProviderError:
    reason = f"anymail: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    cause = error.__cause__
    if _never_left(cause):
        return ProviderError(reason, permanent=False)
    if isinstance(cause, requests.RequestException | socket.timeout):  # the request left; no answer
        return ProviderError(reason, permanent=False, ambiguous=True)
    status = error.status_code or 0
    retry_after = _retry_after(getattr(error, "response", None))
    if status == 429 or status >= 500:
        return ProviderError(reason, permanent=False, retry_after=retry_after)
    return ProviderError(reason, permanent=400 <= status < 500)


def _never_left(cause: BaseException | None) -> bool:
    """True when the request never reached the ESP: a refused or timed-out connect."""
    if isinstance(cause, requests.ConnectTimeout):
        return True
    if isinstance(cause, requests.ConnectionError) and cause.args:
        return isinstance(getattr(cause.args[0], "reason", None), NewConnectionError)
    return False


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: rare from ESPs; the caller's backoff decides
