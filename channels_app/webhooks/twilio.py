"""Twilio's status callbacks and inbound SMS.

Both are signed: X-Twilio-Signature is an HMAC of the full URL Twilio called plus the
POST parameters, keyed by the account's auth token. The URL is rebuilt from PUBLIC_URL,
never from the Host header (behind a proxy it differs, and a forger controls it). A
request no token verifies gets 403 and changes nothing.

Twilio signs no timestamp, so a replay is recognised by its event id instead: a status
callback is MessageSid + MessageStatus (the same status for the same message twice is
a duplicate), an inbound text is its MessageSid. Duplicates answer 200 and change nothing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from channels_app.models import Message, MessageStatus, ProviderConfig
from channels_app.providers.twilio import TwilioProvider
from channels_app.webhooks import sms_keywords
from channels_app.webhooks.common import apply_receipt, record_provider_event
from customers.consent import do_record_sms_start, do_record_sms_stop, do_set_consent
from customers.enums import Channel, ConsentStatus
from customers.ingestion import TrackCall, do_track
from customers.models import ContactPoint, Customer

PROVIDER = TwilioProvider.name
S = MessageStatus
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
INBOUND_EVENT = "SMS Received"

# Twilio's MessageStatus → our ledger status. queued/accepted/scheduled/sending say
# nothing we do not know; "read" (WhatsApp, RCS) is an open.
STATUS_MAP = {"sent": S.SENT, "delivered": S.DELIVERED, "read": S.OPENED, "undelivered": S.FAILED, "failed": S.FAILED}
# Error codes meaning the number itself cannot receive texts: 30003 unreachable handset,
# 30005 unknown or inactive number, 30006 landline or unreachable carrier. The message
# bounced and the number is marked bounced (for SMS, whatever the category).
BAD_NUMBER_CODES = frozenset({"30003", "30005", "30006"})


# --- signatures ----------------------------------------------------------------------


def twilio_auth_tokens(account_sid: str = "") -> list[str]:
    """The auth tokens that may have signed a request for ``account_sid``.

    Those of the Twilio ProviderConfig rows for that account (disabled ones too: their
    messages in flight still report), else of every Twilio row; then the fallback
    ``settings.TWILIO_AUTH_TOKEN`` or the TWILIO_AUTH_TOKEN environment variable, for an
    installation that configures Twilio outside the admin."""
    rows = [row.secrets() for row in ProviderConfig.objects.filter(provider=PROVIDER)]
    mine = [s for s in rows if account_sid and s.get("account_sid") == account_sid] or rows
    tokens = [s["auth_token"] for s in mine if s.get("auth_token")]
    fallback = getattr(settings, "TWILIO_AUTH_TOKEN", "") or os.environ.get("TWILIO_AUTH_TOKEN", "")
    return tokens + ([fallback] if fallback else [])


def public_url(request: HttpRequest) -> str:
    return f"{settings.PUBLIC_URL}{request.get_full_path()}"


def is_signed(request: HttpRequest) -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    url = public_url(request)
    tokens = twilio_auth_tokens(request.POST.get("AccountSid", ""))
    return any(RequestValidator(token).validate(url, request.POST, signature) for token in tokens)


def _twiml(body: str = EMPTY_TWIML, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/xml")


# --- status callbacks ------------------------------------------------------------------


@csrf_exempt
@require_POST
def status_callback(request: HttpRequest) -> HttpResponse:
    if not is_signed(request):
        return HttpResponse("invalid signature", status=403, content_type="text/plain")
    do_record_twilio_status(request.POST.dict(), public_id=request.GET.get("message", ""))
    return HttpResponse(status=204)


def _find_message(sid: str, public_id: str) -> Message | None:
    messages = Message.objects.select_related("customer").filter(channel=Channel.SMS)
    if public_id:
        found = messages.filter(public_id=public_id).first() if _is_uuid(public_id) else None
        if found is not None:
            return found
    return messages.filter(provider_message_id=sid).first() if sid else None


def _is_uuid(value: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F-]{32,36}", value))


@transaction.atomic
def do_record_twilio_status(params: dict[str, str], *, public_id: str = "") -> None:
    sid, twilio_status = params.get("MessageSid", ""), params.get("MessageStatus", "").lower()
    message = _find_message(sid, public_id)
    if not record_provider_event(PROVIDER, f"{sid}:{twilio_status}", twilio_status, message.pk if message else None):
        return
    status = STATUS_MAP.get(twilio_status)
    if message is None or status is None:
        return
    code = params.get("ErrorCode", "")
    detail = f"twilio {twilio_status}" + (f" (error {code})" if code else "")
    if status == S.FAILED and code in BAD_NUMBER_CODES:
        status = S.BOUNCED
        do_set_consent(message.customer, Channel.SMS, message.category, ConsentStatus.BOUNCED, source=f"Twilio error {code}")
    apply_receipt(message, status, detail=detail, provider=PROVIDER, provider_message_id=sid or None)


# --- inbound SMS -----------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    sid: str
    from_number: str
    to_number: str
    body: str


@csrf_exempt
@require_POST
def inbound_sms(request: HttpRequest) -> HttpResponse:
    if not is_signed(request):
        return HttpResponse("invalid signature", status=403, content_type="text/plain")
    p = request.POST
    reply = do_record_inbound_sms(Inbound(p.get("MessageSid", ""), p.get("From", ""), p.get("To", ""), p.get("Body", "")))
    return _twiml(reply)


def customers_for_number(number: str) -> list[Customer]:
    if not number:
        return []
    ids = set(Customer.objects.filter(phone=number).values_list("pk", flat=True))
    ids |= set(ContactPoint.objects.filter(channel=Channel.SMS, address=number).values_list("customer_id", flat=True))
    return list(Customer.objects.filter(pk__in=ids).order_by("pk"))


@transaction.atomic
def do_record_inbound_sms(sms: Inbound) -> str:
    """Apply an inbound text; answers the TwiML to reply with."""
    intent = sms_keywords.intent(sms.body)
    if not sms.sid or not record_provider_event(PROVIDER, f"inbound:{sms.sid}", f"inbound {intent}"):
        return EMPTY_TWIML
    customers = customers_for_number(sms.from_number)
    source = f"SMS reply: {sms_keywords.normalise(sms.body)[:60]}"
    for customer in customers:
        if intent == sms_keywords.STOP:
            do_record_sms_stop(customer, source=source)
        elif intent == sms_keywords.START:
            do_record_sms_start(customer, source=source)
        _record_event(customer, sms, intent)
    return help_twiml() if intent == sms_keywords.HELP else EMPTY_TWIML


def _record_event(customer: Customer, sms: Inbound, intent: str) -> None:
    """Every inbound text is an event: journeys may wait on it, reports count it."""
    call = TrackCall(
        user_id=customer.external_id, timestamp=timezone.now(), event=INBOUND_EVENT,
        message_id=f"twilio:{sms.sid}:{customer.pk}",
        properties={"body": sms.body[:1600], "from": sms.from_number, "to": sms.to_number, "keyword": intent},
    )
    do_track(call, source="twilio")


def help_twiml() -> str:
    reply = next(
        (row.options.get("help_reply") for row in ProviderConfig.objects.filter(provider=PROVIDER, enabled=True)
         if (row.options or {}).get("help_reply")),
        "",
    )
    if not reply:
        return EMPTY_TWIML
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(str(reply))}</Message></Response>'
