"""Our own open and click tracking: a 1×1 pixel and signed redirect links.

SMTP has no webhooks, so an email sent over SMTP reports its opens and clicks here:
``add_tracking(html, public_id)`` rewrites each http(s) link to
``{PUBLIC_URL}/t/c/<token>/`` and appends ``<img src="{PUBLIC_URL}/t/o/<token>.gif">``.
SMS and push bodies are plain text: their adapters call ``track_links(text, public_id)``
at send time to get the same click tracking. The rewriting happens in the adapter, so the
ledger keeps the content as rendered.

A click token carries the message's public id and the original URL, signed (a Signer
with its own salt, no timestamp: old emails keep working): the redirect goes only to the
URL signed in the token, so the endpoint is no open redirect.

Each open or click moves the message through ``ledger.do_transition_message`` (which never
moves a status backwards), records an engagement event (``message_opened`` /
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

from channels_app.ledger import IllegalTransition, do_transition_message
from channels_app.models import Message, MessageStatus
from customers.hooks import StoredEvents, events_stored
from customers.models import Event

logger = logging.getLogger(__name__)

CLICK_SALT = "chorus.tracking.click"
OPEN_SALT = "chorus.tracking.open"
EVENT_SOURCE = "chorus"
# Dotted paths called with (message_id,) after an open or click commits. The engine's is
# the default so a deployment without the setting still wakes engagement waits.
EVENT_NAMES = {MessageStatus.OPENED: "message_opened", MessageStatus.CLICKED: "message_clicked"}

# A GIF89a, 1×1, transparent.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_TEXT_URL = re.compile(r"""https?://[^\s<>"']+""", re.IGNORECASE)
# Trailing punctuation ends a sentence, not a URL ("see https://x.example/a.").
_TRAILING = ".,;:!?)]}"


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
    if not isinstance(url, str) or not _trackable(url):
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


def _trackable(url: str) -> bool:
    # Our own links (unsubscribe, already tracked) stay as they are.
    return url.lower().startswith(("http://", "https://")) and not url.startswith(settings.PUBLIC_URL + "/")


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
    if not _trackable(url):
        return match.group(0)
    return f"{prefix}{quote}{htmllib.escape(click_url(url, public_id))}{quote}"


def track_links(text: str, public_id: str) -> str:
    """Plain text (an SMS or push body) with every http(s) URL replaced by a tracked one.

    For the SMS and push adapters, at send time. A tracked URL is longer than most
    originals: an SMS adapter should count segments after calling this.
    """
    def replace(match: re.Match) -> str:
        url = match.group(0)
        kept = url.rstrip(_TRAILING)
        tail = url[len(kept):]
        return (click_url(kept, public_id) if _trackable(kept) else kept) + tail

    return _TEXT_URL.sub(replace, text)


# --- Recording -----------------------------------------------------------------------------


def do_record_engagement(public_id: str, status: MessageStatus, *, at: datetime | None = None,
                         detail: str = "") -> bool:
    """An open or click of one message: move it (never backwards), record the event, then
    tell the listeners after commit. False when no such message exists."""
    at = at or timezone.now()
    with transaction.atomic():
        message = Message.objects.filter(public_id=public_id).values("pk", "customer_id", "channel", "category",
                                                                     "journey_id").first()
        if message is None:
            return False
        try:
            do_transition_message(message["pk"], status, at=at, detail=detail)
        except IllegalTransition as error:  # e.g. bounced or failed: the receipt changes nothing
            logger.info("%s; engagement recorded as an event only", error)
        record_engagement_event(
            message["customer_id"], EVENT_NAMES[status], key=f"{public_id}:{status}", at=at,
            properties={"message_id": str(public_id), "channel": message["channel"],
                        "category": message["category"], "journey_id": message["journey_id"]},
        )
        transaction.on_commit(lambda: notify_engagement(message["pk"]), robust=True)
    return True


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
