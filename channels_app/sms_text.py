"""An SMS body as it will be sent: a marketing text's links become short tracked links.

Every character of a text counts towards its segments, so the segments a customer is
billed for are those of the body after this rewriting, not of the body as written. This
module is the one place that knows the rewriting: the Twilio adapter sends
``short_links(body, message_id)``, and the content rules (the editor's checks and the
send-time check) count ``as_sent(body, category)`` (content_rules.sms_segments_as_sent), the same text with each short link's
place held by as many characters (a short link has a fixed length, so no message id is
needed to count it).

A short link is ``{PUBLIC_URL}/s/<message>-<n>-<sig>``: the message id in base 36, padded
to ``ID_WIDTH`` digits so every link has the same length (a longer id only past 36**7
messages), the URL's position in the body, and 10 characters of an HMAC. The redirect
(channels_app.tracking.read_short) reads the URL from the message in the ledger. Links to
Chorus itself (the unsubscribe page, already tracked) are left as they are.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping

from django.conf import settings
from django.core import signing

from customers.enums import Category

SHORT_SALT = "chorus.tracking.short"
ID_WIDTH = 7
SIGNATURE_LENGTH = 10  # 60 bits of the HMAC: unguessable online, and short
TEXT_URL = re.compile(r"""https?://[^\s<>"']+""", re.IGNORECASE)
# Trailing punctuation ends a sentence, not a URL ("see https://x.example/a.").
TRAILING = ".,;:!?)]}"


OFF = {"0", "false", "no", "off"}


def shortens_links(category: str, options: Mapping | None = None) -> bool:
    """Whether a text of this category has its links shortened when sent: marketing ones
    (transactional texts keep their links, which their readers may need to see whole),
    unless the SMS account's ``track_clicks`` option is off. ``options``: that account's
    options; by default those of the account tried first for SMS (cached per process)."""
    if category != Category.MARKETING:
        return False
    if options is None:
        from channels_app.providers import get_provider  # the providers send through this module

        options = get_provider("sms").config.options
    return str(options.get("track_clicks", "true")).strip().lower() not in OFF


def as_sent(body: str, category: str) -> str:
    """The body with each link that will be shortened replaced by as many characters as
    its short link has (GSM-7 ones, like the link's), for counting segments."""
    if not shortens_links(category):
        return body
    placeholder = "x" * short_link_length()
    return replace_links(body, lambda _position: placeholder)


def short_link_length() -> int:
    return len(short_url(0, 0))


def short_links(text: str, message_id: int) -> str:
    """An SMS body with every trackable URL replaced by its short tracked link."""
    return replace_links(text, lambda position: short_url(message_id, position))


def replace_links(text: str, link_for: Callable[[int], str]) -> str:
    """Each trackable URL in ``text`` replaced by ``link_for(position)``, its position
    counting every URL of the body from 0 (as read_short counts them)."""
    positions = itertools.count()

    def replace(match: re.Match) -> str:
        url = match.group(0)
        kept = url.rstrip(TRAILING)
        position = next(positions)
        return (link_for(position) if trackable(kept) else kept) + url[len(kept):]

    return TEXT_URL.sub(replace, text)


def short_url(message_id: int, position: int) -> str:
    """The message's ``position``-th URL as a short signed link (see the module's note)."""
    code = f"{base36(message_id).rjust(ID_WIDTH, '0')}-{base36(position)}"
    return f"{settings.PUBLIC_URL}/s/{code}-{short_signature(code)}"


def short_signature(code: str) -> str:
    return signing.Signer(salt=SHORT_SALT).signature(code)[:SIGNATURE_LENGTH]


def text_urls(text: str) -> list[str]:
    """The http(s) URLs in plain text, in order, without sentence punctuation."""
    return [match.group(0).rstrip(TRAILING) for match in TEXT_URL.finditer(text)]


def trackable(url: str) -> bool:
    # Our own links (unsubscribe, already tracked) stay as they are.
    return url.lower().startswith(("http://", "https://")) and not url.startswith(settings.PUBLIC_URL + "/")


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out
