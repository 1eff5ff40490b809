"""Each channel's personality, as pure checks on message content.

`check_content()` is the one entry point: it takes a channel, a category and the
channel's content fields (see `templating.CHANNEL_FIELDS`) and returns the problems
found, each with a severity. It is pure (no database; of the settings only the public
URL, whose length is a short SMS link's: see sms_segments_as_sent), so the same call
serves the three moments the rules apply: when a journey's draft is saved and when it is
published (on the raw template text), and at send time (on the rendered text). On raw
text, Liquid markup is counted as written for lengths and segments (`{{ first_name }}` is
16 characters, and its braces are GSM-7 extension characters), and those messages say
so; wording checks (promotional terms, discount codes) skip the markup, since a variable's
name is not what the customer reads.

The thresholds and word lists are data: a `RuleSet` with sensible defaults, which admins'
stored settings (`channels_app.models.ContentRuleSettings`, read through
`channels_app.content_rules_loading.load_rules`) override through `RuleSet.from_mapping()`;
`rule_errors()` is the one validator of such data.

Some rules are not about content and live elsewhere: whether a journey has a moment when
the customer is in the app is known from the journey (`journeys.content`), so the caller
passes it in as `customer_can_be_in_app`. The `List-Unsubscribe` and
`List-Unsubscribe-Post` headers (RFC 8058) need a signed one-click unsubscribe URL, which
does not exist yet: nothing adds them today.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, Literal

from channels_app.sms_text import as_sent
from customers.enums import Category, Channel

# --- SMS segments ------------------------------------------------------------------------
#
# 3GPP TS 23.038 §6.2.1: the GSM 7-bit default alphabet and its extension table. An
# extension character is sent as ESC + character, so it costs two septets. 0x09 is the
# capital 'Ç' (as the table prints it and as the gsm0338 codec maps it); a lowercase 'ç'
# is not in the default alphabet, so we count it as UCS-2 rather than risk undercounting
# what the operator bills. ESC (0x1B) itself is not a character anyone can write.

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

# (single-part capacity, per-part capacity once the message is split): a concatenated
# message spends 7 septets / 3 UTF-16 units of every part on its User Data Header.
_CAPACITY = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True)
class SmsSegments:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int  # 0 for an empty text
    per_segment: int  # 160 / 70 for a single part, 153 / 67 once split


def sms_segments(text: str) -> SmsSegments:
    """How many SMS parts `text` takes, as an operator counts them.

    Any character outside the GSM-7 alphabet turns the whole message into UCS-2 (UTF-16
    code units: an emoji is 2). Once split, a part never ends halfway through an
    extension character's escape or an emoji's surrogate pair, so a part may carry 152
    septets or 66 units: the parts are packed as a sender packs them, not by division.
    """
    encoding: Literal["GSM-7", "UCS-2"] = "GSM-7" if not non_gsm_characters(text) else "UCS-2"
    costs = [_unit_cost(char, encoding) for char in text]
    single, multi = _CAPACITY[encoding]
    units = sum(costs)
    if units <= single:
        return SmsSegments(encoding, units, 1 if units else 0, single)
    return SmsSegments(encoding, units, _packed_parts(costs, multi), multi)


def sms_segments_as_sent(body: str, category: str) -> SmsSegments:
    """The segments of ``body`` as it will be sent: a marketing text's links shortened
    (channels_app.sms_text), which is what the customer is billed for."""
    return sms_segments(as_sent(body, category))


def non_gsm_characters(text: str) -> list[str]:
    """The distinct characters, in order of first appearance, that force UCS-2."""
    return list(dict.fromkeys(c for c in text if c not in GSM7_BASIC and c not in GSM7_EXTENSION))


def _unit_cost(char: str, encoding: str) -> int:
    if encoding == "GSM-7":
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1  # a surrogate pair in UTF-16


def _packed_parts(costs: list[int], capacity: int) -> int:
    parts, used = 1, 0
    for cost in costs:
        if used + cost > capacity:
            parts, used = parts + 1, 0
        used += cost
    return parts


# --- the rule set (data) -----------------------------------------------------------------


@dataclass(frozen=True)
class RuleSet:
    """Thresholds and word lists; every phrase and term is matched case-insensitively."""

    push_title_max_chars: int = 50
    push_body_max_chars: int = 120  # about what a lock screen shows
    push_max_actions: int = 1
    sms_max_segments_marketing: int = 3
    sms_max_segments_transactional: int = 10  # carriers and Twilio stop at about 10 parts
    sms_opt_out_phrases: tuple[str, ...] = (
        "reply stop", "text stop", "txt stop", "send stop", "stop to opt out",
        "stop to end", "stop to unsubscribe", "stop to cancel", "stop to quit", "stop2end",
    )
    sms_promotional_terms: tuple[str, ...] = (
        "% off", "sale", "discount", "promo code", "coupon", "limited time", "free shipping",
        "deal", "deals", "save $", "buy now", "shop now", "exclusive offer", "clearance",
    )
    # "code" then a code in capitals with at least one letter, so a numeric one-time
    # passcode ("Your code 482913") is not taken for a discount code.
    sms_discount_code_pattern: str = r"\b(?i:code)(?:\s*:\s*|\s+)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{4,}\b"
    email_subject_max_chars: int = 60  # warning only
    in_app_requires_app_presence: bool = True
    # Events that mean the customer is in the app as they happen: what page and screen
    # calls are stored as, and the Segment spec's app-opened event (journeys.content).
    in_app_presence_events: tuple[str, ...] = ("Screen Viewed", "Page Viewed", "Application Opened")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RuleSet:
        """Defaults overridden by `data` (e.g. admins' stored settings).

        A given word list replaces the default list rather than extending it. Unknown
        keys and ill-typed values raise ValueError naming the key, so a typo in stored
        settings fails loudly instead of silently keeping a default.
        """
        unknown = sorted(set(data) - set(RULE_NAMES))
        if unknown:
            raise ValueError(f"unknown content rule(s): {', '.join(unknown)}")
        return cls(**{key: _coerce(key, _DEFAULTS[key], value) for key, value in data.items()})


RULE_NAMES: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(RuleSet))
_DEFAULTS: dict[str, Any] = {field.name: field.default for field in dataclasses.fields(RuleSet)}


def rule_errors(data: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with each of `data`'s rules, by name; {} when from_mapping accepts it.

    The one validator of stored rules: the admin form shows each message on its field.
    """
    errors = {str(key): f"{key} is not a content rule" for key in data if key not in _DEFAULTS}
    for key, value in data.items():
        if key in _DEFAULTS:
            try:
                _coerce(key, _DEFAULTS[key], value)
            except ValueError as error:
                errors[key] = str(error)
    return errors


def _coerce(key: str, default: Any, value: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a whole number of at least 1")
        return value
    if isinstance(default, tuple):
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ValueError(f"{key} must be a list of phrases")
        phrases = tuple(value)
        if not all(isinstance(p, str) and p.strip() for p in phrases):
            raise ValueError(f"{key} must hold only non-empty phrases")
        if not phrases:
            # An empty opt-out list would refuse every marketing SMS; keep lists explicit.
            raise ValueError(f"{key} must hold at least one phrase")
        return phrases
    return _checked_pattern(key, value)


def _checked_pattern(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a regular expression")
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"{key} is not a valid regular expression: {error}") from None
    return value


DEFAULT_RULES = RuleSet()


# --- problems ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ContentProblem:
    field: str  # channel.field, e.g. "sms.body"
    severity: Literal["error", "warning"]
    message: str  # plain words, without the field; str() puts them together

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def check_content(
    channel: str,
    category: str,
    content: Mapping[str, Any],
    rules: RuleSet = DEFAULT_RULES,
    *,
    customer_can_be_in_app: bool = True,
) -> list[ContentProblem]:
    """The channel's content rules applied to `content` (its fields, e.g. {"body": ...}).

    Fields that are missing or not text are skipped: reporting them is the job of the
    send node's validator. An unknown channel or category is a programming error.
    """
    if category not in Category.values:
        raise ValueError(f"unknown message category: {category!r}")
    try:
        check = _CHECKS[Channel(channel)]
    except ValueError:
        raise ValueError(f"unknown channel: {channel!r}") from None
    texts = {key: value for key, value in content.items() if isinstance(value, str)}
    context = _Context(channel, category, texts, rules, customer_can_be_in_app)
    return list(check(context))


@dataclass(frozen=True)
class _Context:
    channel: str
    category: str
    texts: Mapping[str, str]
    rules: RuleSet
    customer_can_be_in_app: bool

    @property
    def marketing(self) -> bool:
        return self.category == Category.MARKETING

    def error(self, key: str, message: str) -> ContentProblem:
        return ContentProblem(_field(self.channel, key), "error", message)

    def warning(self, key: str, message: str) -> ContentProblem:
        return ContentProblem(_field(self.channel, key), "warning", message)


def _field(channel: str, key: str) -> str:
    return f"{channel}.{key}" if key else channel


# --- push --------------------------------------------------------------------------------


def _check_push(ctx: _Context) -> Iterator[ContentProblem]:
    title, body, url = (ctx.texts.get(key) for key in ("title", "body", "url"))
    if title is not None and len(title) > ctx.rules.push_title_max_chars:
        yield ctx.error("title", f"{len(title)} characters; push titles are cut after "
                                 f"about {ctx.rules.push_title_max_chars}{_as_written(title)}")
    if body is not None and len(body) > ctx.rules.push_body_max_chars:
        yield ctx.error("body", f"{len(body)} characters; a lock screen shows "
                                f"about {ctx.rules.push_body_max_chars}{_as_written(body)}")
    links = url.split() if url else []
    if len(links) > ctx.rules.push_max_actions:
        yield ctx.error("url", f"{len(links)} links; a push notification carries at most "
                               f"{_count(ctx.rules.push_max_actions, 'action')}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --- raw templates -----------------------------------------------------------------------

_LIQUID = re.compile(r"{{.*?}}|{%.*?%}", re.DOTALL)


def _as_written(text: str) -> str:
    """The note a length problem carries when `text` is a template, not what will be sent."""
    if not _LIQUID.search(text):
        return ""
    return " (Liquid such as {{ … }} counted as written; the rendered text is checked again when sent)"


def _without_liquid(text: str) -> str:
    # A space, not nothing: the words either side of a tag stay apart.
    return _LIQUID.sub(" ", text)


# --- SMS ---------------------------------------------------------------------------------


def _check_sms(ctx: _Context) -> Iterator[ContentProblem]:
    body = ctx.texts.get("body")
    if body is None:
        return
    yield from _sms_length(ctx, body)
    if ctx.marketing and not _contains_phrase(body, ctx.rules.sms_opt_out_phrases):
        yield ctx.error("body", "marketing SMS must tell people how to opt out, "
                                "e.g. 'Reply STOP to opt out'")
    if not ctx.marketing:
        promotional = _promotional_snippets(_without_liquid(body), ctx.rules)
        if promotional:
            quoted = ", ".join(f"'{snippet}'" for snippet in promotional)
            yield ctx.error("body", f"labelled transactional but reads as marketing ({quoted})")


def _sms_length(ctx: _Context, body: str) -> Iterator[ContentProblem]:
    limit = (ctx.rules.sms_max_segments_marketing if ctx.marketing
             else ctx.rules.sms_max_segments_transactional)
    sent = as_sent(body, ctx.category)
    count = sms_segments(sent)
    if count.segments > limit:
        shortened = ", links shortened as sent" if sent != body else ""
        yield ctx.error("body", f"{count.segments} segments ({_describe(sent, count)}{shortened}); "
                                f"{ctx.category} SMS may use at most {limit}{_as_written(body)}")


def _describe(body: str, count: SmsSegments) -> str:
    """E.g. "GSM-7, 612 characters" or "UCS-2 because of '’', 150 characters counted as 151"."""
    why = ""
    if count.encoding == "UCS-2":
        culprits = non_gsm_characters(body)
        why = " because of " + " ".join(f"'{c}'" for c in culprits[:3])
        why += " and others" if len(culprits) > 3 else ""
    counted = f" counted as {count.units}" if count.units != len(body) else ""
    return f"{count.encoding}{why}, {len(body)} characters{counted}"


def _words(text: str) -> str:
    # Quotes, punctuation and line breaks do not matter: "Reply 'STOP'." says "reply stop".
    return " " + " ".join(re.findall(r"[^\W_]+", text.lower())) + " "


def _contains_phrase(text: str, phrases: Iterable[str]) -> bool:
    words = _words(text)
    return any(_words(phrase) in words for phrase in phrases)


def _promotional_snippets(text: str, rules: RuleSet) -> list[str]:
    """The promotional wording in `text`, overlapping matches merged, in reading order."""
    spans = [m.span() for m in _promotional_regex(rules.sms_promotional_terms).finditer(text)]
    spans += [m.span() for m in _compiled(rules.sms_discount_code_pattern).finditer(text)]
    snippets = (text[start:end].strip(" \t\n.,;:!?()'\"") for start, end in _merged(spans))
    return list(dict.fromkeys(s for s in snippets if s))


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


@lru_cache(maxsize=32)
def _promotional_regex(terms: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(_term_pattern(term) for term in terms), re.IGNORECASE)


def _term_pattern(term: str) -> str:
    """A term as whole words; an end that is a symbol takes in its number ("20% off", "save $10")."""
    term = term.strip()
    body = r"\s+".join(re.escape(word) for word in term.split())
    start = r"\b" if _is_word_char(term[0]) else r"[\d.,]*"
    end = r"\b" if _is_word_char(term[-1]) else r"[\d.,]*"
    return f"(?:{start}{body}{end})"


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


@lru_cache(maxsize=32)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# --- email -------------------------------------------------------------------------------


def _check_email(ctx: _Context) -> Iterator[ContentProblem]:
    subject, html = ctx.texts.get("subject"), ctx.texts.get("html")
    if subject is not None and len(subject) > ctx.rules.email_subject_max_chars:
        yield ctx.warning("subject", f"{len(subject)} characters; inboxes cut subjects "
                                     f"after about {ctx.rules.email_subject_max_chars}{_as_written(subject)}")
    if ctx.marketing and html is not None and not has_unsubscribe_link(html):
        yield ctx.error("html", "marketing email needs an unsubscribe link")


_UNSUBSCRIBE_VARIABLE = re.compile(r"{{-?\s*unsubscribe_url\b")


def has_unsubscribe_link(html: str) -> bool:
    """A link whose href or text mentions "unsubscribe", or the `{{ unsubscribe_url }}` variable."""
    if _UNSUBSCRIBE_VARIABLE.search(html):
        return True
    finder = _UnsubscribeLinkFinder()
    finder.feed(html)
    finder.close()
    return finder.found


class _UnsubscribeLinkFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found = False
        self._in_link = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        self._in_link = True
        href = dict(attrs).get("href") or ""
        self.found = self.found or "unsubscribe" in href.lower()

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_link = False

    def handle_data(self, data: str) -> None:
        self.found = self.found or (self._in_link and "unsubscribe" in data.lower())


# --- in-app ------------------------------------------------------------------------------


def _check_in_app(ctx: _Context) -> Iterator[ContentProblem]:
    if ctx.rules.in_app_requires_app_presence and not ctx.customer_can_be_in_app:
        events = ", ".join(ctx.rules.in_app_presence_events)
        yield ctx.error("", "in-app messages are only seen in the app, and people can reach this "
                            "step when they are not in it: send it straight after an app event "
                            f"({events}) at the entry or a wait, with no delay in between")


_CHECKS = {
    Channel.PUSH: _check_push,
    Channel.SMS: _check_sms,
    Channel.EMAIL: _check_email,
    Channel.IN_APP: _check_in_app,
}
