"""Our own open and click tracking: a 1×1 pixel and signed redirect links.

SMTP has no webhooks, so an email sent over SMTP reports its opens and clicks here:
``add_tracking(html, public_id)`` rewrites each http(s) link to
``{PUBLIC_URL}/t/c/<token>/`` and appends ``<img src="{PUBLIC_URL}/t/o/<token>.gif">``.
A push notification's url goes through ``track_links`` (the same signed redirect) and
its payload names a ``receipt_url`` for the service worker's receipts (push_receipts).
A marketing SMS's links become ``short_links``: ``{PUBLIC_URL}/s/<message>-<n>-<sig>``,
since every character counts towards the text's segments (channels_app.sms_text, which
the content rules count segments by); the redirect reads the n-th URL from the message's
content. The rewriting happens in the adapter, at send time, so the ledger keeps the
content as rendered.

A click token carries the message's public id and the original URL, signed (a Signer
with its own salt, no timestamp: old emails keep working): the redirect goes only to the
URL signed in the token, so the endpoint is no open redirect.

Every receipt, ours and the providers' webhooks' alike, goes through ``do_record_receipt``:
it moves the message through ``ledger.do_transition_message`` (which never
moves a status backwards); an open or click also records an engagement event (``message_opened`` /
``message_clicked``, once per message, handed to ``customers.hooks.events_stored`` like an
ingested event, so journeys can enter, wait or convert on it) and, after commit, calls the engagement listeners
(``settings.CHORUS_ENGAGEMENT_LISTENERS``, dotted paths): channels_app must not import the
engine, whose ``on_message_engagement`` wakes enrollments waiting on this message.

Known limit: security scanners that follow every link (and image proxies that fetch every
pixel) register as clicks and opens; providers' own tracking has the same blind spot.
"""

from __future__ import annotations

import html as htmllib
import logging
import re
from collections.abc import Callable
from datetime import datetime
from functools import cache

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from channels_app.ledger import IllegalTransition, TransitionResult, do_transition_message
from channels_app.models import Message, MessageStatus
from channels_app.sms_text import TEXT_URL, TRAILING, short_signature, text_urls, trackable
from customers.hooks import StoredEvents, events_stored
from customers.models import Event

logger = logging.getLogger(__name__)

CLICK_SALT = "chorus.tracking.click"
OPEN_SALT = "chorus.tracking.open"
RECEIPT_SALT = "chorus.tracking.push-receipt"
EVENT_SOURCE = "chorus"
# Dotted paths called with (message_id,) after an open or click commits. The engine's is
# the default so a deployment without the setting still wakes engagement waits.
EVENT_NAMES = {MessageStatus.OPENED: "message_opened", MessageStatus.CLICKED: "message_clicked"}
# Receipts that may wake a journey waiting on the message's engagement.
ENGAGEMENT_STATUSES = frozenset({MessageStatus.DELIVERED, MessageStatus.OPENED, MessageStatus.CLICKED})

# A GIF89a, 1×1, transparent.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)


class BadToken(Exception):
    pass


# --- Tokens and URLs -----------------------------------------------------------------------


def click_url(url: str, public_id: str) -> str:
    token = signing.Signer(salt=CLICK_SALT).sign_object({"m": str(public_id), "u": url}, compress=True)
    return f"{settings.PUBLIC_URL}/t/c/{token}/"


def open_url(public_id: str) -> str:
    return f"{settings.PUBLIC_URL}/t/o/{signing.Signer(salt=OPEN_SALT).sign_object({'m': str(public_id)})}.gif"


def read_click(token: str) -> tuple[str, str]:
    """(message public id, URL) from a click token; BadToken unless signed by us, http(s)."""
    payload = _load(token, CLICK_SALT)
    url = payload.get("u")
    if not isinstance(url, str) or not trackable(url):
        raise BadToken("not an http(s) URL")
    return str(payload.get("m")), url


def read_open(token: str) -> str:
    return str(_load(token, OPEN_SALT).get("m"))


def _load(token: str, salt: str) -> dict:
    try:
        payload = signing.Signer(salt=salt).unsign_object(token)
    except signing.BadSignature as error:
        raise BadToken("bad signature") from error
    if not isinstance(payload, dict) or not payload.get("m"):
        raise BadToken("not a payload")
    return payload


# --- Rewriting -----------------------------------------------------------------------------


def add_tracking(html: str, public_id: str, *, clicks: bool = True, opens: bool = True) -> str:
    """The HTML with its links tracked and the open pixel appended (before </body> if any)."""
    if clicks:
        html = _HREF.sub(lambda m: _rewrite_href(m, public_id), html)
    if opens:
        pixel = f'<img src="{open_url(public_id)}" width="1" height="1" alt="" style="display:none">'
        closing = html.lower().rfind("</body>")
        html = html[:closing] + pixel + html[closing:] if closing >= 0 else html + pixel
    return html


def _rewrite_href(match: re.Match, public_id: str) -> str:
    prefix, quote, raw = match.groups()
    url = htmllib.unescape(raw).strip()
    if not trackable(url):
        return match.group(0)
    return f"{prefix}{quote}{htmllib.escape(click_url(url, public_id))}{quote}"


def track_links(text: str, public_id: str) -> str:
    """Plain text (an SMS or push body) with every http(s) URL replaced by a tracked one.

    For the SMS and push adapters, at send time. A tracked URL is longer than most
    originals: an SMS adapter should count segments after calling this.
    """
    def replace(match: re.Match) -> str:
        url = match.group(0)
        kept = url.rstrip(TRAILING)
        tail = url[len(kept):]
        return (click_url(kept, public_id) if trackable(kept) else kept) + tail

    return TEXT_URL.sub(replace, text)


def read_short(code: str) -> tuple[Message, str]:
    """(the message, the URL it links to) for a short link's code; BadToken otherwise."""
    parts = code.split("-", 2)  # the signature itself may contain "-"
    if len(parts) != 3 or not signing.constant_time_compare(parts[2], short_signature(f"{parts[0]}-{parts[1]}")):
        raise BadToken("bad signature")
    message_part, position_part, _ = parts
    message = Message.objects.filter(pk=int(message_part, 36)).first()
    urls = text_urls(str((message.content or {}).get("body") or "")) if message else []
    position = int(position_part, 36)
    if position >= len(urls) or not trackable(urls[position]):
        raise BadToken("no such link")
    return message, urls[position]


# --- Push receipts ---------------------------------------------------------------------------


def receipt_url(public_id: str) -> str:
    """Where a service worker or app posts a push message's receipts: ``<this>/<event>/``."""
    token = signing.Signer(salt=RECEIPT_SALT).sign_object({"m": str(public_id)})
    return f"{settings.PUBLIC_URL}/t/p/{token}"


def read_receipt(token: str) -> str:
    return str(_load(token, RECEIPT_SALT).get("m"))


# --- Recording -----------------------------------------------------------------------------


def do_record_engagement(public_id: str, status: MessageStatus, *, at: datetime | None = None,
                         detail: str = "") -> bool:
    """An open or click of one message (a tracked link, the pixel, the inbox, a push
    receipt), by public id: see do_record_receipt. False when no such message exists."""
    message_id = Message.objects.filter(public_id=public_id).values_list("pk", flat=True).first()
    if message_id is None:
        return False
    do_record_receipt(message_id, status, at=at, detail=detail)
    return True


def do_record_receipt(
    message_id: int, status: str, *, at: datetime | None = None, detail: str = "",
    provider: str | None = None, provider_message_id: str | None = None,
) -> TransitionResult | None:
    """The one place a receipt moves a message and counts as engagement, for our own
    tracking and every provider webhook alike: move the message (never backwards; None when
    the lifecycle refuses, e.g. "delivered" after a bounce), record an open or click as an
    engagement event (once per message, even when the status could not move: it happened),
    and tell the engagement listeners after commit."""
    at = at or timezone.now()
    with transaction.atomic():
        message = Message.objects.filter(pk=message_id).values(
            "pk", "public_id", "customer_id", "channel", "category", "journey_id").first()
        if message is None:
            raise Message.DoesNotExist(f"message {message_id} does not exist")
        try:
            result = do_transition_message(message_id, status, at=at, detail=detail, provider=provider,
                                           provider_message_id=provider_message_id)
        except IllegalTransition as error:
            logger.info("receipt does not move the message: %s", error)
            result = None
        engaged = status in EVENT_NAMES and _record_event(message, MessageStatus(status), at)
        if status in ENGAGEMENT_STATUSES and (result is not None or engaged):
            transaction.on_commit(lambda: notify_engagement(message_id), robust=True)
    return result


def _record_event(message: dict, status: MessageStatus, at: datetime) -> bool:
    public_id = str(message["public_id"])
    return record_engagement_event(
        message["customer_id"], EVENT_NAMES[status], key=f"{public_id}:{status}", at=at,
        properties={"message_id": public_id, "channel": message["channel"],
                    "category": message["category"], "journey_id": message["journey_id"]},
    )


def record_engagement_event(customer_id: int, name: str, *, key: str, at: datetime, properties: dict) -> bool:
    """One engagement Event per key (the unique source + source_message_id): a reloaded
    pixel or a second click does not count twice. True when recorded now."""
    try:
        with transaction.atomic():
            Event.objects.create(
                customer_id=customer_id, name=name, properties=properties, occurred_at=at, received_at=at,
                source=EVENT_SOURCE, source_message_id=key[:255],
            )
    except IntegrityError:
        return False
    # Like an ingested event: a journey may enter, wait or convert on message_clicked.
    events_stored(StoredEvents(EVENT_SOURCE, at, frozenset({customer_id}), frozenset({name})))
    return True


def notify_engagement(message_id: int) -> None:
    """Tell settings.CHORUS_ENGAGEMENT_LISTENERS (the engine) of an engagement; after commit."""
    for path in settings.CHORUS_ENGAGEMENT_LISTENERS:
        _listener(path)(message_id)


@cache
def _listener(path: str) -> Callable[[int], object]:
    return import_string(path)
