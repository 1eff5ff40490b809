"""ESP tracking events through django-anymail: delivered, bounced, complained, opened…

One URL per ESP, ``/webhooks/anymail/<esp>/tracking/``. anymail's own view for that ESP
checks the request (HTTP basic auth against the webhook secret, plus the ESP's signature
where anymail supports one: Mailgun's signing key, SendGrid's verification key) and
normalises the payload into AnymailTrackingEvents.

anymail's public hook is its ``tracking`` signal. We call the same two methods its view
calls before sending that signal (``run_validators``, ``parse_events``) and handle the
events here instead, explicitly and in one transaction: no signal, and a validation
failure becomes our 403 rather than a 400.

Secrets: each anymail ProviderConfig for the ESP may hold ``webhook_secret``
("user:password"), ``webhook_signing_key`` (Mailgun) and ``webhook_verification_key``
(SendGrid); without them anymail falls back to settings.ANYMAIL. No basic-auth secret
configured at all → every request is refused: an open tracking endpoint would let
anyone mark addresses bounced.

Replays and retries: each event is recorded under its ESP event id (or, for ESPs that
send none, message id + type + timestamp + recipient), so a retried or replayed event
changes nothing. Events older than MAX_EVENT_AGE are acknowledged and ignored: ESPs
retry for up to about three days, and older receipts say nothing a send decision needs.
Mailgun signs only a timestamp and a token, not the events: see ``signed_token``.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from anymail.exceptions import AnymailConfigurationError, AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from anymail.utils import get_anymail_setting
from anymail.webhooks.brevo import BrevoTrackingWebhookView
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from anymail.webhooks.mailjet import MailjetTrackingWebhookView
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from anymail.webhooks.sparkpost import SparkPostTrackingWebhookView
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from channels_app.models import Message, MessageStatus, ProviderConfig
from channels_app.webhooks.common import apply_receipt, record_provider_event
from customers.consent import do_set_consent
from customers.enums import Category, Channel, ConsentStatus
from customers.models import ContactPoint, Customer

logger = logging.getLogger(__name__)

S = MessageStatus
E = EventType
MAX_EVENT_AGE = timedelta(days=7)
# Mailgun's signed timestamp: a day, in case a retry (Mailgun retries for 8 hours) carries the first signature.
MAX_SIGNATURE_AGE = timedelta(hours=24)
MAX_CLOCK_SKEW = timedelta(minutes=5)

ESP_VIEWS = {
    "brevo": BrevoTrackingWebhookView,
    "mailgun": MailgunTrackingWebhookView,
    "mailjet": MailjetTrackingWebhookView,
    "postmark": PostmarkTrackingWebhookView,
    "sendgrid": SendGridTrackingWebhookView,
    "sparkpost": SparkPostTrackingWebhookView,
}
# Secrets passed to the ESP's view when a ProviderConfig holds them.
ESP_SECRET_KWARGS = ("webhook_signing_key", "webhook_verification_key")

STATUS_FOR_EVENT = {
    E.SENT: S.SENT,
    E.DELIVERED: S.DELIVERED,
    E.OPENED: S.OPENED,
    E.CLICKED: S.CLICKED,
    E.BOUNCED: S.BOUNCED,
    E.FAILED: S.FAILED,
    E.REJECTED: S.FAILED,
}
# Events that change what the person or address allows, whatever the message's fate.
CONSENT_FOR_EVENT = {
    E.BOUNCED: ConsentStatus.BOUNCED,  # anymail's "bounced" is a hard bounce ("deferred" is soft)
    E.COMPLAINED: ConsentStatus.COMPLAINED,
    E.UNSUBSCRIBED: ConsentStatus.UNSUBSCRIBED,
}
SOFT_BOUNCE_TYPES = frozenset({"SoftBounce", "Transient", "DnsError"})  # Postmark's, reported as bounced
CONSENT_FOR_REJECT_REASON = {RejectReason.BOUNCED: ConsentStatus.BOUNCED, RejectReason.SPAM: ConsentStatus.COMPLAINED}


def _rows(esp: str) -> list[dict[str, str]]:
    rows = ProviderConfig.objects.filter(provider="anymail", channel=Channel.EMAIL)
    return [row.secrets() for row in rows if (row.options or {}).get("esp") == esp]


def view_kwargs(esp: str) -> dict:
    """The ESP view's secrets: the ProviderConfig rows' where set, else anymail's settings."""
    secrets = _rows(esp)
    basic = [s["webhook_secret"] for s in secrets if s.get("webhook_secret")]
    basic = basic or get_anymail_setting("webhook_secret", default=[])
    kwargs: dict = {"webhook_secret": [basic] if isinstance(basic, str) else list(basic)}
    for key in ESP_SECRET_KWARGS:
        value = next((s[key] for s in secrets if s.get(key)), None)
        if value:
            kwargs[key] = value
    return kwargs


@csrf_exempt
@require_POST
def tracking(request: HttpRequest, esp: str) -> HttpResponse:
    view_class = ESP_VIEWS.get(esp)
    if view_class is None:
        raise Http404(f"no tracking webhook for {esp!r}")
    kwargs = view_kwargs(esp)
    if not kwargs["webhook_secret"]:
        logger.warning("anymail %s webhook refused: no webhook secret configured", esp)
        return HttpResponse("webhook secret not configured", status=403, content_type="text/plain")
    try:
        view = view_class(**kwargs)
        view.run_validators(request)
        events = view.parse_events(request)
    except AnymailWebhookValidationFailure:
        return HttpResponse("invalid credentials or signature", status=403, content_type="text/plain")
    except AnymailConfigurationError as error:
        logger.error("anymail %s webhook misconfigured: %s", esp, error)
        return HttpResponse("webhook misconfigured", status=503, content_type="text/plain")
    try:
        token = signed_token(esp, request)
    except ReplayRefused as error:
        return HttpResponse(str(error), status=403, content_type="text/plain")
    do_record_tracking_events(esp, [e for e in events if isinstance(e, AnymailTrackingEvent)], token=token)
    return HttpResponse()


class ReplayRefused(Exception):
    pass


def signed_token(esp: str, request: HttpRequest) -> str:
    """Mailgun signs a timestamp and a one-time token, but not the events: a captured
    request could carry other events under its valid signature. So the signed time must
    be recent and each token is used once (recorded with the events it brought)."""
    if esp != "mailgun":
        return ""
    try:
        block = json.loads(request.body)["signature"] if request.content_type == "application/json" else request.POST
        token, signed_at = str(block["token"]), float(block["timestamp"])
    except (KeyError, ValueError, TypeError) as error:
        raise ReplayRefused("unreadable signature block") from error
    age = timezone.now().timestamp() - signed_at
    if not -MAX_CLOCK_SKEW.total_seconds() <= age <= MAX_SIGNATURE_AGE.total_seconds():
        raise ReplayRefused("signature timestamp out of range")
    return token


def event_id(event: AnymailTrackingEvent) -> str:
    if event.event_id:
        return str(event.event_id)
    stamp = event.timestamp.isoformat() if event.timestamp else ""
    return f"{event.message_id}:{event.event_type}:{stamp}:{event.recipient or ''}"


@transaction.atomic
def do_record_tracking_events(esp: str, events: list[AnymailTrackingEvent], *, token: str = "") -> None:
    if token and not record_provider_event(f"anymail:{esp}:token", token, "signature token"):
        return  # a replayed signature: whatever events it carries now, they change nothing
    oldest = timezone.now() - MAX_EVENT_AGE
    for event in events:
        if event.timestamp and event.timestamp < oldest:
            continue
        message = _message(event)
        if record_provider_event(f"anymail:{esp}", event_id(event), str(event.event_type), message.pk if message else None):
            _apply(event, message, esp)


def _message(event: AnymailTrackingEvent) -> Message | None:
    if not event.message_id:
        return None
    return Message.objects.select_related("customer").filter(
        channel=Channel.EMAIL, provider_message_id=str(event.message_id)
    ).first()


def _apply(event: AnymailTrackingEvent, message: Message | None, esp: str) -> None:
    status = STATUS_FOR_EVENT.get(event.event_type)
    if message is not None and status is not None:
        detail = f"{esp} {event.event_type}" + (f": {event.description}" if event.description else "")
        apply_receipt(message, status, at=event.timestamp, detail=detail[:500])
    consent = CONSENT_FOR_EVENT.get(event.event_type)
    if event.event_type == E.REJECTED:
        consent = CONSENT_FOR_REJECT_REASON.get(event.reject_reason)
    if consent == ConsentStatus.BOUNCED and not _is_hard_bounce(event):
        consent = None
    if consent is not None:
        _record_consent(event, message, consent, esp)


def _is_hard_bounce(event: AnymailTrackingEvent) -> bool:
    """Only a hard bounce condemns the address. anymail reports some soft bounces as
    "bounced" too (Postmark's SoftBounce; a virus notice has reason "other")."""
    if event.reject_reason not in (None, RejectReason.BOUNCED, RejectReason.INVALID):
        return False
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    return esp_event.get("Type") not in SOFT_BOUNCE_TYPES


def _record_consent(event: AnymailTrackingEvent, message: Message | None, status: str, esp: str) -> None:
    """A bounce (about the address) and a complaint or unsubscribe (the person's choice)."""
    category = message.category if message is not None else Category.MARKETING
    if status == ConsentStatus.COMPLAINED:
        category = Category.MARKETING  # a spam report is about the mail they did not want
    for customer in _customers(event, message):
        do_set_consent(customer, Channel.EMAIL, category, status, source=f"{esp}: {event.event_type}", at=event.timestamp)


def _customers(event: AnymailTrackingEvent, message: Message | None) -> list[Customer]:
    if message is not None:
        return [message.customer]
    if not event.recipient:
        return []
    ids = set(Customer.objects.filter(email__iexact=event.recipient).values_list("pk", flat=True))
    ids |= set(
        ContactPoint.objects.filter(channel=Channel.EMAIL, address__iexact=event.recipient).values_list("customer_id", flat=True)
    )
    return list(Customer.objects.filter(pk__in=ids).order_by("pk"))
