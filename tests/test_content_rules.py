"""Channel content rules: SMS segment counting and each channel's checks, as pure functions."""

from __future__ import annotations

import dataclasses
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels_app import content_rules
from channels_app.content_rules import (
    DEFAULT_RULES,
    GSM7_BASIC,
    GSM7_EXTENSION,
    ContentProblem,
    RuleSet,
    SmsSegments,
    check_content,
    sms_segments,
    sms_segments_as_sent,
)
from channels_app.models import ProviderConfig
from channels_app.providers import forget_provider_configs
from customers.enums import Channel

try:
    import gsm0338  # noqa: F401  (importing registers the "gsm03.38" codec)
except ImportError:  # pragma: no cover - the dev dependencies pin it
    gsm0338 = None

CLEAN_MARKETING_SMS = "Chorus: new autumn arrivals are in. Reply STOP to opt out"
CLEAN_TRANSACTIONAL_SMS = "Chorus: your order 1042 has shipped and arrives Thursday."
UNSUBSCRIBE_HTML = '<p>Hello</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'

# A marketing text counts as sent, links shortened unless the SMS account tracks no
# clicks: the account is read from the database (channels_app.sms_text.shortens_links).
pytestmark = pytest.mark.django_db


def problems(channel, category, content, rules=DEFAULT_RULES, **kwargs):
    return [str(p) for p in check_content(channel, category, content, rules, **kwargs)]


# --- SMS segments: hand-checked counts --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsSegments("GSM-7", 0, 0, 160)),
        ("a" * 160, SmsSegments("GSM-7", 160, 1, 160)),
        ("a" * 161, SmsSegments("GSM-7", 161, 2, 153)),
        ("a" * 306, SmsSegments("GSM-7", 306, 2, 153)),
        ("a" * 307, SmsSegments("GSM-7", 307, 3, 153)),
        ("€", SmsSegments("GSM-7", 2, 1, 160)),
        ("a" * 158 + "€", SmsSegments("GSM-7", 160, 1, 160)),
        ("a" * 159 + "€", SmsSegments("GSM-7", 161, 2, 153)),
        ("^{}\\[~]|€\f", SmsSegments("GSM-7", 20, 1, 160)),
        ("Ça coûte 5 €", SmsSegments("UCS-2", 12, 1, 70)),  # 'û' is not GSM-7
        ("Ça va, 5 €", SmsSegments("GSM-7", 11, 1, 160)),
        ("a" * 69 + "😀", SmsSegments("UCS-2", 71, 2, 67)),
        ("a" * 68 + "😀", SmsSegments("UCS-2", 70, 1, 70)),
        ("a" * 70 + "ĉ", SmsSegments("UCS-2", 71, 2, 67)),
        ("ĉ" * 70, SmsSegments("UCS-2", 70, 1, 70)),
        ("ĉ" * 134, SmsSegments("UCS-2", 134, 2, 67)),
        ("ĉ" * 135, SmsSegments("UCS-2", 135, 3, 67)),
    ],
)
def test_counts_sms_segments_as_an_operator_does(text, expected):
    assert sms_segments(text) == expected


def test_capital_c_cedilla_is_gsm7_but_lowercase_and_circumflex_c_are_not():
    # 23.038 prints 'Ç' at 0x09 and the gsm0338 codec maps it there; 'ç' has no slot, so
    # counting it as GSM-7 would undercount what the operator bills.
    assert sms_segments("Ç").encoding == "GSM-7"
    assert sms_segments("ç").encoding == "UCS-2"
    assert sms_segments("ĉ").encoding == "UCS-2"


def test_a_curly_quote_turns_the_whole_message_into_ucs2():
    assert sms_segments("It's here " * 16) == SmsSegments("GSM-7", 160, 1, 160)
    assert sms_segments("It’s here " * 16) == SmsSegments("UCS-2", 160, 3, 67)


def test_an_escape_character_is_not_gsm7_text():
    assert sms_segments("\x1b").encoding == "UCS-2"


def test_an_extension_character_is_not_split_across_parts():
    # 152 plain septets then '€': its escape and code cannot straddle parts, so part one
    # carries 152 septets, part two '€' and 151 more, and the last septet needs a third.
    text = "a" * 152 + "€" + "a" * 152
    assert sms_segments(text) == SmsSegments("GSM-7", 306, 3, 153)
    assert sms_segments("a" * 306) == SmsSegments("GSM-7", 306, 2, 153)


def test_an_emoji_is_not_split_across_parts():
    text = "a" * 66 + "😀" + "a" * 66  # 134 units: 66 | 2 + 65 | 1
    assert sms_segments(text) == SmsSegments("UCS-2", 134, 3, 67)
    assert sms_segments("a" * 67 + "😀" + "a" * 65) == SmsSegments("UCS-2", 134, 2, 67)


# --- SMS segments: the gsm0338 codec as an oracle ---------------------------------------

_GSM_CHARS = sorted(GSM7_BASIC | GSM7_EXTENSION)
_OTHER_CHARS = ["ç", "ĉ", "’", "—", "á", "\t", "😀", "🇫🇷", "中"]


def _oracle_parts(costs, single, multi):
    if sum(costs) <= single:
        return 1 if costs else 0
    parts, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            parts, used = parts + 1, 0
        used += cost
    return parts


def _oracle(text):
    try:
        encoded = text.encode("gsm03.38")
    except UnicodeEncodeError:
        utf16 = text.encode("utf-16-be")
        costs = [len(c.encode("utf-16-be")) // 2 for c in text]
        return "UCS-2", len(utf16) // 2, _oracle_parts(costs, 70, 67)
    # Each character's septets as the codec writes them: ESC + code, or one code.
    costs = [len(c.encode("gsm03.38")) for c in text]
    assert sum(costs) == len(encoded)
    return "GSM-7", len(encoded), _oracle_parts(costs, 160, 153)


@pytest.mark.skipif(gsm0338 is None, reason="gsm0338 (the test oracle) is not installed")
@given(
    st.lists(
        st.one_of(st.sampled_from(_GSM_CHARS), st.sampled_from(_GSM_CHARS),
                  st.sampled_from(_OTHER_CHARS)),
        max_size=480,
    ).map("".join)
    | st.text(st.sampled_from(_GSM_CHARS), max_size=480)
)
def test_agrees_with_the_gsm0338_codec(text):
    count = sms_segments(text)
    assert (count.encoding, count.units, count.segments) == _oracle(text)


@pytest.mark.skipif(gsm0338 is None, reason="gsm0338 (the test oracle) is not installed")
def test_alphabet_matches_the_gsm0338_codec_exactly():
    from gsm0338.charset import BASIC_CHARACTER_SET, BASIC_CHARACTER_SET_EXTENSION

    basic = {unicodedata.lookup(name) for name in BASIC_CHARACTER_SET.values()}
    extension = {unicodedata.lookup(name) for name in BASIC_CHARACTER_SET_EXTENSION.values()}
    assert basic - {"\x1b"} == GSM7_BASIC  # ESC introduces the extension table
    assert extension == GSM7_EXTENSION


# --- SMS rules -------------------------------------------------------------------------


def test_clean_sms_messages_have_no_problems():
    assert problems("sms", "marketing", {"body": CLEAN_MARKETING_SMS}) == []
    assert problems("sms", "transactional", {"body": CLEAN_TRANSACTIONAL_SMS}) == []


def test_marketing_sms_over_three_segments_is_an_error():
    body = "a" * 590 + " Reply STOP to opt out"  # 612 characters
    assert check_content("sms", "marketing", {"body": body}) == [
        ContentProblem(
            "sms.body", "error",
            "4 segments (GSM-7, 612 characters); marketing SMS may use at most 3",
        )
    ]


def test_segment_error_names_the_characters_that_forced_ucs2():
    body = "It’s here — " * 20 + "Reply STOP"  # 250 characters, each under 0xFFFF
    assert problems("sms", "marketing", {"body": body}) == [
        "sms.body: 4 segments (UCS-2 because of '’' '—', 250 characters); "
        "marketing SMS may use at most 3"
    ]


def test_segment_error_says_when_extension_characters_count_twice():
    body = "€" * 240 + " Reply STOP"  # 251 characters, 491 septets
    assert problems("sms", "marketing", {"body": body}) == [
        "sms.body: 4 segments (GSM-7, 251 characters counted as 491); "
        "marketing SMS may use at most 3"
    ]


def test_transactional_sms_has_its_own_segment_limit():
    assert problems("sms", "transactional", {"body": "a" * 1530}) == []
    assert problems("sms", "transactional", {"body": "a" * 1531}) == [
        "sms.body: 11 segments (GSM-7, 1531 characters); transactional SMS may use at most 10"
    ]


def test_marketing_sms_without_opt_out_language_is_an_error():
    assert check_content("sms", "marketing", {"body": "New arrivals are in!"}) == [
        ContentProblem(
            "sms.body", "error",
            "marketing SMS must tell people how to opt out, e.g. 'Reply STOP to opt out'",
        )
    ]


@pytest.mark.parametrize(
    "opt_out",
    ["Reply STOP to opt out", "reply stop", "Reply 'STOP' to end.", "Text STOP to quit",
     "Txt\nSTOP to cancel", "STOP2END", "Send STOP to unsubscribe", "STOP to opt-out"],
)
def test_recognises_opt_out_language_whatever_its_case_and_punctuation(opt_out):
    assert problems("sms", "marketing", {"body": f"New arrivals are in! {opt_out}"}) == []


def test_stop_alone_is_not_opt_out_language():
    body = "Don't stop now: new arrivals are in"
    assert problems("sms", "marketing", {"body": body}) == [
        "sms.body: marketing SMS must tell people how to opt out, e.g. 'Reply STOP to opt out'"
    ]


def test_transactional_sms_that_reads_as_marketing_is_an_error():
    body = "Your order shipped! Get 20% off your next one with code SAVE20."
    assert check_content("sms", "transactional", {"body": body}) == [
        ContentProblem(
            "sms.body", "error",
            "labelled transactional but reads as marketing ('20% off', 'code SAVE20')",
        )
    ]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("Summer SALE ends tonight", "'SALE'"),
        ("Use promo code SPRING25 today", "'promo code SPRING25'"),
        ("Save $10 on your next order", "'Save $10'"),
        ("Limited   time: free shipping!", "'Limited   time', 'free shipping'"),
        ("Buy now while stocks last", "'Buy now'"),
        ("Your coupon is attached", "'coupon'"),
        ("An exclusive offer for you", "'exclusive offer'"),
        ("Enjoy a 15.5% off treat", "'15.5% off'"),
        ("Thanks! Next time use Code:WELCOME10", "'Code:WELCOME10'"),
    ],
)
def test_finds_each_promotional_term_in_transactional_sms(body, found):
    assert problems("sms", "transactional", {"body": body}) == [
        f"sms.body: labelled transactional but reads as marketing ({found})"
    ]


@pytest.mark.parametrize(
    "body",
    [
        "Your Chorus code 482913. It expires in 10 minutes.",
        "Your verification code: 4829",
        "Your code is ready",  # 'is' is no code
        "Your wholesale invoice is ready",  # 'sale' inside a word
        "The dealer confirmed your booking",  # 'deal' inside a word
        "Your order 20 off the shelf has shipped",
        "Your saved items are waiting",  # 'save $' needs the '$'
    ],
)
def test_transactional_wording_is_not_taken_for_marketing(body):
    assert problems("sms", "transactional", {"body": body}) == []


def test_marketing_sms_may_use_promotional_terms():
    body = "20% off everything with code SAVE20. Reply STOP to opt out"
    assert problems("sms", "marketing", {"body": body}) == []


def test_rules_run_on_raw_liquid_as_written():
    # Braces are GSM-7 extension characters: each costs two septets in the raw template.
    assert sms_segments("Hi {{ name }}") == SmsSegments("GSM-7", 17, 1, 160)
    body = "Hi {{ first_name }}, {{ offer }}. Reply STOP to opt out"
    assert problems("sms", "marketing", {"body": body}) == []


def test_a_length_counted_on_raw_liquid_says_so():
    body = "Hi {{ customer.first_name }}, " + "a" * 440 + " Reply STOP"
    assert problems("sms", "marketing", {"body": body}) == [
        "sms.body: 4 segments (GSM-7, 481 characters counted as 485); marketing SMS may use at most 3 "
        "(Liquid such as {{ … }} counted as written; the rendered text is checked again when sent)"
    ]
    assert problems("push", "marketing", {"title": "{{ event.name }} " + "t" * 40, "body": "b"}) == [
        "push.title: 57 characters; push titles are cut after about 50 "
        "(Liquid such as {{ … }} counted as written; the rendered text is checked again when sent)"
    ]


def test_rendered_text_carries_no_liquid_note():
    body = "Hi Maya, " + "a" * 440 + " Reply STOP"
    assert problems("sms", "marketing", {"body": body}) == [
        "sms.body: 4 segments (GSM-7, 460 characters); marketing SMS may use at most 3"
    ]


@pytest.mark.parametrize(
    "body",
    [
        "Your order {{ event.deal }} has shipped",
        "Your {{ customer.coupon | default: 'order' }} has shipped",
        "{% if event.sale %}Your order{% endif %} has shipped",
    ],
)
def test_variable_names_in_a_raw_template_are_not_promotional_wording(body):
    assert problems("sms", "transactional", {"body": body}) == []


# --- push --------------------------------------------------------------------------------


def test_clean_push_has_no_problems():
    content = {"title": "a" * 50, "body": "b" * 120, "url": "https://example.com/a"}
    assert problems("push", "marketing", content) == []


def test_push_title_over_50_characters_is_an_error():
    assert check_content("push", "transactional", {"title": "a" * 51, "body": "b"}) == [
        ContentProblem("push.title", "error", "51 characters; push titles are cut after about 50")
    ]


def test_push_body_longer_than_a_lock_screen_shows_is_an_error():
    assert problems("push", "marketing", {"title": "Hi", "body": "b" * 142}) == [
        "push.body: 142 characters; a lock screen shows about 120"
    ]


def test_push_with_more_than_one_action_is_an_error():
    content = {"title": "Hi", "body": "b", "url": "https://a.example https://b.example"}
    assert problems("push", "marketing", content) == [
        "push.url: 2 links; a push notification carries at most 1 action"
    ]


# --- email -------------------------------------------------------------------------------


def test_clean_marketing_email_has_no_problems():
    content = {"subject": "s" * 60, "html": UNSUBSCRIBE_HTML}
    assert problems("email", "marketing", content) == []


def test_marketing_email_without_an_unsubscribe_link_is_an_error():
    content = {"subject": "Autumn", "html": "<p>New arrivals</p>"}
    assert check_content("email", "marketing", content) == [
        ContentProblem("email.html", "error", "marketing email needs an unsubscribe link")
    ]


@pytest.mark.parametrize(
    "html",
    [
        '<a href="{{ unsubscribe_url }}">Manage preferences</a>',
        "Not for you? {{unsubscribe_url | default: ''}}",
        '<a href="https://example.com/Unsubscribe?u=1">Leave</a>',
        '<a href="https://example.com/prefs">Click to <b>UNSUBSCRIBE</b></a>',
    ],
)
def test_recognises_an_unsubscribe_link(html):
    assert problems("email", "marketing", {"subject": "Hi", "html": html}) == []


def test_unsubscribe_text_outside_a_link_is_not_a_link():
    html = "<p>To unsubscribe, write to us.</p>"
    assert problems("email", "marketing", {"subject": "Hi", "html": html}) == [
        "email.html: marketing email needs an unsubscribe link"
    ]


def test_transactional_email_needs_no_unsubscribe_link():
    content = {"subject": "Your receipt", "html": "<p>Thanks</p>"}
    assert problems("email", "transactional", content) == []


def test_long_email_subject_is_a_warning():
    content = {"subject": "s" * 72, "html": "<p>Thanks</p>"}
    assert check_content("email", "transactional", content) == [
        ContentProblem("email.subject", "warning", "72 characters; inboxes cut subjects after about 60")
    ]


# --- in-app ------------------------------------------------------------------------------


def test_in_app_is_an_error_where_the_customer_cannot_be_in_the_app():
    content = {"title": "Hi", "body": "Welcome back"}
    assert problems("in_app", "marketing", content) == []
    assert check_content("in_app", "marketing", content, customer_can_be_in_app=False) == [
        ContentProblem(
            "in_app", "error",
            "in-app messages are only seen in the app, and people can reach this step when they "
            "are not in it: send it straight after an app event (Screen Viewed, Page Viewed, "
            "Application Opened) at the entry or a wait, with no delay in between",
        )
    ]


# --- inputs and the registry -------------------------------------------------------------


def test_missing_or_non_text_fields_are_left_to_the_send_validator():
    assert problems("sms", "marketing", {}) == []
    assert problems("email", "marketing", {"subject": 3, "html": None}) == []
    assert problems("push", "marketing", {"title": ["a" * 80]}) == []


def test_unknown_channel_or_category_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown channel: 'fax'"):
        check_content("fax", "marketing", {})
    with pytest.raises(ValueError, match="unknown message category: 'bulk'"):
        check_content("sms", "bulk", {})


def test_every_channel_has_its_rules():
    assert set(content_rules._CHECKS) == set(Channel)


# --- the rule set as data ----------------------------------------------------------------


def test_from_mapping_overrides_thresholds_and_keeps_other_defaults():
    rules = RuleSet.from_mapping({"sms_max_segments_marketing": 1, "push_body_max_chars": 200})
    assert rules == RuleSet(sms_max_segments_marketing=1, push_body_max_chars=200)
    assert RuleSet.from_mapping({}) == DEFAULT_RULES
    body = "a" * 150 + " Reply STOP"
    assert problems("sms", "marketing", {"body": body}, rules) == [
        "sms.body: 2 segments (GSM-7, 161 characters); marketing SMS may use at most 1"
    ]
    assert problems("push", "marketing", {"title": "Hi", "body": "b" * 200}, rules) == []


def test_from_mapping_replaces_word_lists_and_the_code_pattern():
    rules = RuleSet.from_mapping({
        "sms_opt_out_phrases": ["reply arret"],
        "sms_promotional_terms": ["soldes"],
        "sms_discount_code_pattern": r"\bCODE-\d+\b",
    })
    assert rules.sms_opt_out_phrases == ("reply arret",)
    assert problems("sms", "marketing", {"body": "Nouveautés. Reply ARRET"}, rules) == []
    assert problems("sms", "marketing", {"body": "New. Reply STOP"}, rules) == [
        "sms.body: marketing SMS must tell people how to opt out, e.g. 'Reply STOP to opt out'"
    ]
    assert problems("sms", "transactional", {"body": "Soldes! CODE-12, 20% off"}, rules) == [
        "sms.body: labelled transactional but reads as marketing ('Soldes', 'CODE-12')"
    ]


def test_from_mapping_overrides_the_in_app_flag_and_subject_length():
    rules = RuleSet.from_mapping({"in_app_requires_app_presence": False, "email_subject_max_chars": 80})
    assert problems("in_app", "marketing", {"title": "Hi"}, rules, customer_can_be_in_app=False) == []
    assert problems("email", "transactional", {"subject": "s" * 72}, rules) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sms_max_segment": 2}, "unknown content rule\\(s\\): sms_max_segment"),
        ({"sms_max_segments_marketing": "3"}, "sms_max_segments_marketing must be a whole number"),
        ({"sms_max_segments_marketing": 0}, "sms_max_segments_marketing must be a whole number"),
        ({"push_title_max_chars": True}, "push_title_max_chars must be a whole number"),
        ({"sms_promotional_terms": "sale"}, "sms_promotional_terms must be a list"),
        ({"sms_opt_out_phrases": ["reply stop", " "]}, "sms_opt_out_phrases must hold only"),
        ({"sms_discount_code_pattern": "code ("}, "sms_discount_code_pattern is not a valid"),
        ({"in_app_requires_app_presence": "no"}, "in_app_requires_app_presence must be true or false"),
    ],
)
def test_from_mapping_rejects_bad_admin_data_naming_the_key(data, message):
    with pytest.raises(ValueError, match=message):
        RuleSet.from_mapping(data)


def test_rule_errors_names_every_bad_rule_at_once():
    assert content_rules.rule_errors({
        "push_max_actions": 0,
        "sms_opt_out_phrases": [],
        "in_app_presence_events": ["Screen Viewed", 3],
        "email_subject_max_chars": 70,
        "colour": "red",
    }) == {
        "push_max_actions": "push_max_actions must be a whole number of at least 1",
        "sms_opt_out_phrases": "sms_opt_out_phrases must hold at least one phrase",
        "in_app_presence_events": "in_app_presence_events must hold only non-empty phrases",
        "colour": "colour is not a content rule",
    }
    assert content_rules.rule_errors(dataclasses.asdict(DEFAULT_RULES)) == {}


def test_rule_names_are_the_rule_set_fields():
    assert content_rules.RULE_NAMES == tuple(f.name for f in dataclasses.fields(RuleSet))


# --- SMS segments as sent: a marketing text's links are shortened ------------------------

LONG_LINK_SMS = "Acme: 20% off at https://shop.example/spring/" + "a" * 150 + " Reply STOP to opt out"  # 217 characters


@pytest.fixture
def public_url(settings):
    settings.PUBLIC_URL = "https://chorus.example"  # a short link is 22 + 23 = 45 characters


def test_a_long_link_in_a_marketing_sms_counts_as_its_short_link(public_url):
    assert sms_segments(LONG_LINK_SMS) == SmsSegments("GSM-7", 217, 2, 153)
    # 17 + 45 + 22 characters once the link is shortened: one part.
    assert sms_segments_as_sent(LONG_LINK_SMS, "marketing") == SmsSegments("GSM-7", 84, 1, 160)


def test_with_click_tracking_off_on_the_sms_account_links_count_whole(public_url):
    account = ProviderConfig(channel="sms", provider="twilio", label="Twilio", is_primary=True,
                             options={"from_number": "+14155550100", "track_clicks": "false"})
    account.set_secrets({"account_sid": "AC" + "1" * 32, "auth_token": "secret"})
    account.save()
    forget_provider_configs()
    try:
        assert sms_segments_as_sent(LONG_LINK_SMS, "marketing") == SmsSegments("GSM-7", 217, 2, 153)
    finally:
        forget_provider_configs()


def test_a_transactional_sms_keeps_its_links_and_counts_them_whole(public_url):
    assert sms_segments_as_sent(LONG_LINK_SMS, "transactional") == SmsSegments("GSM-7", 217, 2, 153)


def test_links_to_chorus_itself_are_not_shortened_so_count_as_written(public_url):
    body = "Acme: unsubscribe at https://chorus.example/u/" + "a" * 150 + " Reply STOP to opt out"

    assert sms_segments_as_sent(body, "marketing") == sms_segments(body)


def test_the_segment_limit_applies_to_the_marketing_text_as_sent(public_url):
    fits = "a" * 300 + " https://shop.example/" + "b" * 200 + " Reply STOP to opt out"  # 4 parts as written
    over = "a" * 440 + " https://shop.example/" + "b" * 200 + " Reply STOP to opt out"

    assert problems("sms", "marketing", {"body": fits}) == []  # 368 characters as sent: 3 parts
    assert problems("sms", "marketing", {"body": over}) == [
        "sms.body: 4 segments (GSM-7, 508 characters, links shortened as sent); marketing SMS may use at most 3"
    ]
