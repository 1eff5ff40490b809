"""The customer profile: header, contact points, consent grid and edits, the unified timeline."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import customers.views
from channels_app.models import Message, MessageStatus
from customers.consent import do_set_consent
from customers.enums import Category, Channel, ConsentStatus
from customers.models import Consent, ConsentChange, ContactPoint, Customer, Event, ProfileUpdate
from customers.profiles import do_save_customer
from orchestrator.roles import Role

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
HTMX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def ada():
    return Customer.objects.create(
        external_id="u-ada",
        email="ada@example.com",
        phone="+14155550101",
        timezone="Asia/Tokyo",
        traits={"first_name": "Ada", "last_name": "Lovelace", "plan": "pro", "tags": ["beta", "vip"]},
    )


def url(customer, **params) -> str:
    base = reverse("customers:profile", args=[customer.pk])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


@pytest.fixture
def marketer(client, make_user):
    client.force_login(make_user(Role.MARKETER))
    return client


@pytest.fixture
def messaging(client, make_user):
    user = make_user(Role.MESSAGING, username="milo")
    client.force_login(user)
    client.user = user
    return client


_keys = iter(range(10**6))


def message(customer, at, channel=Channel.EMAIL, status=MessageStatus.DELIVERED, **fields):
    return Message.objects.create(
        customer=customer, channel=channel, category=Category.MARKETING, status=status, queued_at=at,
        idempotency_key=f"key-{next(_keys)}", **fields,
    )


def event(customer, at, name="Viewed", **properties):
    return Event.objects.create(customer=customer, name=name, occurred_at=at, properties=properties, source="test")


def consent_change(customer, at, channel=Channel.EMAIL, status=ConsentStatus.UNSUBSCRIBED, previous=""):
    return ConsentChange.objects.create(
        customer=customer, channel=channel, category=Category.MARKETING, previous_status=previous, status=status,
        source="unsubscribe link", changed_at=at,
    )


def profile_update(customer, at, **changes):
    return ProfileUpdate.objects.create(customer=customer, changes=changes, occurred_at=at, source="test")


KIND = {Event: "event", ProfileUpdate: "profile", Message: "message", ConsentChange: "consent"}


def entry(obj) -> tuple[str, int]:
    return (KIND[type(obj)], obj.id)


def shown(response) -> list[tuple[str, int]]:
    """Timeline entries as rendered (pages and htmx fragments alike)."""
    return [(kind, int(pk)) for kind, pk in re.findall(r'data-kind="(\w+)" data-id="(\d+)"', response.content.decode())]


def days(response) -> list[str]:
    return re.findall(r'<li class="tl-day"><h3>([^<]*)</h3></li>', response.content.decode())


def next_url(response) -> str:
    found = re.search(r'<button type="button" class="btn" hx-get="([^"]+)"', response.content.decode())
    return found.group(1).replace("&amp;", "&") if found else ""


# --- Header, contact points, traits ------------------------------------------------------


def test_header_shows_name_external_id_and_local_time_in_their_zone(marketer, ada):
    html = marketer.get(url(ada)).content.decode()
    assert "<h1>Ada Lovelace</h1>" in html
    assert '<dd class="mono">u-ada</dd>' in html
    # 12:00 UTC is 21:00 in Tokyo; UTC on hover.
    assert 'title="2026-06-15 12:00 UTC">21:00, Mon 15 Jun</time>' in html
    assert "· Asia/Tokyo</span>" in html


def test_header_says_when_the_customer_has_no_time_zone(marketer):
    customer = Customer.objects.create(external_id="no-zone")
    html = marketer.get(url(customer)).content.decode()
    assert "no time zone, showing UTC" in html
    assert ">12:00, Mon 15 Jun</time>" in html


def test_push_endpoints_are_shortened_and_keys_never_shown(marketer, ada):
    endpoint = "https://fcm.googleapis.com/fcm/send/" + "x" * 120 + "TAIL1234"
    ContactPoint.objects.create(
        customer=ada, channel=Channel.PUSH, platform="web", address=endpoint, label="Chrome on macOS",
        keys={"p256dh": "SECRET-P256DH-VALUE", "auth": "SECRET-AUTH-VALUE"},
    )
    ContactPoint.objects.create(customer=ada, channel=Channel.PUSH, platform="android", address="A" * 40 + "devtoken", label="Pixel 8")
    html = marketer.get(url(ada)).content.decode()
    assert "fcm.googleapis.com/…TAIL1234" in html
    assert "AAAAAAAA…devtoken" in html
    assert endpoint not in html
    assert "SECRET-P256DH-VALUE" not in html and "SECRET-AUTH-VALUE" not in html
    assert "Chrome on macOS" in html and "Pixel 8" in html


def test_profile_email_and_phone_are_listed_as_contact_points(marketer, ada):
    html = marketer.get(url(ada)).content.decode()
    assert '<div class="contact-address">ada@example.com</div>' in html
    assert '<div class="contact-address mono">+14155550101</div>' in html


def test_an_address_listed_as_a_contact_point_is_not_listed_twice(marketer, ada):
    ContactPoint.objects.create(customer=ada, channel=Channel.EMAIL, address="ADA@example.com", label="Work")
    html = marketer.get(url(ada)).content.decode()
    assert "Profile email" not in html
    assert '<div class="contact-address">ADA@example.com</div>' in html
    assert "Profile phone" in html


def test_traits_are_a_sorted_key_value_table(marketer, ada):
    response = marketer.get(url(ada))
    assert response.context["trait_rows"] == [
        ("first_name", "Ada"), ("last_name", "Lovelace"), ("plan", "pro"), ("tags", '["beta", "vip"]'),
    ]
    assert '<tr><th scope="row">plan</th><td>pro</td></tr>' in response.content.decode()


# --- Consent grid ------------------------------------------------------------------------


def test_consent_grid_has_every_channel_and_category_with_not_set_where_missing(marketer, ada):
    do_set_consent(ada, Channel.EMAIL, Category.MARKETING, ConsentStatus.UNSUBSCRIBED, source="unsubscribe link")
    do_set_consent(ada, Channel.SMS, Category.TRANSACTIONAL, ConsentStatus.OPTED_IN, source="api")
    rows = marketer.get(url(ada)).context["consent_rows"]
    grid = {(cell.channel, cell.category): cell.status_label for row in rows for cell in row.cells}
    assert grid == {
        ("email", "marketing"): "Unsubscribed",
        ("email", "transactional"): "Not set",
        ("sms", "marketing"): "Not set",
        ("sms", "transactional"): "Opted in",
        ("push", "marketing"): "Not set",
        ("push", "transactional"): "Not set",
        ("in_app", "marketing"): "Not set",
        ("in_app", "transactional"): "Not set",
    }
    assert [row.channel for row in rows] == ["email", "sms", "push", "in_app"]


def test_marketers_see_consent_read_only(marketer, ada):
    html = marketer.get(url(ada)).content.decode()
    assert "hx-post" not in html
    assert "Read-only for your role." in html


def test_messaging_team_gets_a_change_form_in_every_consent_cell(messaging, ada):
    html = messaging.get(url(ada)).content.decode()
    assert html.count(f'hx-post="{url(ada)}" hx-target="closest .consent-cell" hx-swap="outerHTML"') == 8


# --- Changing consent ----------------------------------------------------------------------


def test_messaging_user_changes_consent_and_the_change_is_recorded(messaging, ada):
    response = messaging.post(url(ada), {"channel": "sms", "category": "marketing", "status": "opted_out"}, **HTMX)
    assert response.status_code == 200
    consent = Consent.objects.get(customer=ada, channel="sms", category="marketing")
    assert (consent.status, consent.source) == ("opted_out", "web: milo")
    change = ConsentChange.objects.get(customer=ada)
    assert (change.channel, change.category, change.previous_status, change.status) == ("sms", "marketing", "", "opted_out")
    assert (change.source, change.actor) == ("web: milo", messaging.user)
    html = response.content.decode()
    assert html.lstrip().startswith('<div class="consent-cell" id="consent-sms-marketing">')
    assert '<span class="badge badge-opted_out">Opted out</span>' in html
    assert "Saved" in html
    assert response["HX-Trigger"] == '{"consentChanged": {}}'


def test_setting_the_same_consent_again_records_nothing_new(messaging, ada):
    do_set_consent(ada, Channel.EMAIL, Category.MARKETING, ConsentStatus.OPTED_IN, source="api")
    response = messaging.post(url(ada), {"channel": "email", "category": "marketing", "status": "opted_in"}, **HTMX)
    assert response.status_code == 200
    assert "No change" in response.content.decode()
    assert "HX-Trigger" not in response
    assert ConsentChange.objects.filter(customer=ada).count() == 1


def test_consent_change_without_htmx_redirects_back_with_a_message(messaging, ada):
    response = messaging.post(url(ada), {"channel": "email", "category": "transactional", "status": "opted_in"})
    assert response.status_code == 302
    assert response["Location"] == f"{url(ada)}#consent"
    page = messaging.get(response["Location"])
    assert "Email transactional consent: Opted in." in page.content.decode()


def test_marketer_gets_403_on_the_consent_post_and_nothing_changes(marketer, ada):
    do_set_consent(ada, Channel.EMAIL, Category.MARKETING, ConsentStatus.OPTED_IN, source="api")
    response = marketer.post(url(ada), {"channel": "email", "category": "marketing", "status": "unsubscribed"}, **HTMX)
    assert response.status_code == 403
    assert Consent.objects.get(customer=ada).status == "opted_in"
    assert ConsentChange.objects.filter(customer=ada).count() == 1


@pytest.mark.parametrize(
    ("posted", "error"),
    [
        ({"channel": "email", "category": "marketing", "status": "maybe"}, "Select a valid choice. maybe is not one of the available choices."),
        ({"channel": "email", "category": "marketing"}, "This field is required."),
        ({"channel": "fax", "category": "marketing", "status": "opted_in"}, "Select a valid choice. fax is not one of the available choices."),
        ({"channel": "email", "category": "marketing", "status": "stopped"}, "&#x27;Replied STOP&#x27; applies only to SMS, where an inbound STOP reply sets it"),
    ],
)
def test_invalid_consent_change_is_422_with_the_cell_rerendered_and_nothing_changes(messaging, ada, posted, error):
    do_set_consent(ada, Channel.EMAIL, Category.MARKETING, ConsentStatus.OPTED_IN, source="api")
    response = messaging.post(url(ada), posted, **HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert html.lstrip().startswith('<div class="consent-cell"')
    assert f"<p>{error}</p>" in html
    assert '<details class="consent-edit" open>' in html
    assert Consent.objects.get(customer=ada).status == "opted_in"
    assert ConsentChange.objects.filter(customer=ada).count() == 1


def test_replied_stop_is_offered_only_in_the_sms_cells(messaging, ada):
    html = messaging.get(url(ada)).content.decode()
    offered = {cell: "stopped" in body for cell, body in re.findall(r'id="consent-(\w+-\w+)"(.*?)</form>', html, re.S)}
    assert offered == {
        f"{channel}-{category}": channel == "sms" for channel in Channel.values for category in Category.values
    }


def test_invalid_consent_change_without_htmx_is_a_422_page_with_the_error_in_its_cell(messaging, ada):
    response = messaging.post(url(ada), {"channel": "push", "category": "marketing", "status": "maybe"})
    assert response.status_code == 422
    html = response.content.decode()
    assert "<html" in html
    assert "Select a valid choice. maybe is not one of the available choices." in html
    assert not Consent.objects.filter(customer=ada).exists()


# --- Timeline ----------------------------------------------------------------------------


@pytest.fixture
def history(ada):
    """One of each kind, and two at the same instant, over three Tokyo days."""
    t = NOW - timedelta(hours=1)  # 20:00 Tokyo, 15 June
    items = {
        "signup": profile_update(ada, NOW - timedelta(days=2), plan="pro"),  # 13 June
        "viewed": event(ada, NOW - timedelta(days=1, hours=2), "Product Viewed", sku="SKU-1"),  # 14 June
        "email": message(ada, NOW - timedelta(hours=5), Channel.EMAIL, content={"subject": "Your cart"}, journey_id=7, node_id="send-1"),
        "sms": message(ada, t, Channel.SMS, status=MessageStatus.FAILED, content={"body": "Hi"}, error="Carrier rejected"),
        "unsub": consent_change(ada, t, Channel.EMAIL, ConsentStatus.UNSUBSCRIBED, previous="opted_in"),
        "ordered": event(ada, NOW - timedelta(minutes=10), "Order Completed", total=42),
    }
    return items


def test_timeline_merges_all_four_kinds_newest_first(marketer, history):
    response = marketer.get(url(history["signup"].customer))
    assert shown(response) == [
        entry(history["ordered"]),
        entry(history["unsub"]),  # same instant as the SMS: consent ranks first
        entry(history["sms"]),
        entry(history["email"]),
        entry(history["viewed"]),
        entry(history["signup"]),
    ]
    assert days(response) == ["Today", "Yesterday", "Saturday, 13 June 2026"]
    assert next_url(response) == ""


def test_timeline_entries_show_what_happened_in_local_time_with_utc_on_hover(marketer, history):
    html = marketer.get(url(history["signup"].customer)).content.decode()
    assert '<span class="tl-title">Order Completed</span>\n      <span class="tl-source">via test</span>' in html
    assert '<li><span class="prop-key">total</span> 42</li>' in html
    assert 'datetime="2026-06-15T11:50:00+00:00" title="2026-06-15 11:50:00 UTC">20:50</time>' in html
    assert '<span class="tl-title">Email marketing consent</span>' in html
    assert '<span class="badge badge-opted_in badge-faded">Opted in</span>' in html
    assert "Source: unsubscribe link" in html
    assert '<span class="tl-title">SMS message</span>' in html
    assert '<span class="badge badge-failed">Failed</span>' in html
    assert '<span class="text-danger">Carrier rejected</span>' in html
    assert '<p class="tl-text">Your cart</p>' in html
    assert 'Journey #7 · step <span class="mono">send-1</span>' in html
    assert '<span class="tl-title">Profile updated</span>' in html
    assert '<li><span class="prop-key">plan</span> pro</li>' in html


def test_events_show_four_properties_and_the_rest_behind_more(marketer, ada):
    event(ada, NOW, "Order Completed", **{f"p{n}": n for n in range(6)})
    html = marketer.get(url(ada)).content.decode()
    first, rest = html.split('<details class="props-more">')
    assert [f"p{n}" for n in range(4)] == re.findall(r'<span class="prop-key">(p\d)</span>', first)
    assert "<summary>2 more</summary>" in rest
    assert ["p4", "p5"] == re.findall(r'<span class="prop-key">(p\d)</span>', rest)


def test_consent_changes_made_on_the_web_show_who_made_them(messaging, ada):
    messaging.post(url(ada), {"channel": "sms", "category": "marketing", "status": "opted_out"}, **HTMX)
    html = messaging.get(url(ada), **HTMX).content.decode()
    assert "<span>Source: web: milo</span><span>by milo</span>" in html


def test_a_bounce_lifted_by_a_new_address_shows_as_bounced_to_not_set(marketer, ada):
    do_set_consent(ada, "email", "transactional", "bounced", source="hard bounce")
    ada.email = "ada@new.example.com"
    do_save_customer(ada)

    html = marketer.get(url(ada, kind="consent")).content.decode()

    assert re.search(
        r'<span class="badge badge-bounced badge-faded">Bounced</span><span class="arrow" aria-label="changed to">→</span>\s*'
        r'<span class="badge badge-none">Not set</span>',
        html,
    )
    assert "<span>Source: address changed: bounce lifted</span>" in html


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": "events"}, ["ordered", "viewed"]),
        ({"kind": "messages"}, ["sms", "email"]),
        ({"kind": "consent"}, ["unsub"]),
        ({"kind": "profile"}, ["signup"]),
        ({"channel": "email"}, ["unsub", "email"]),  # events and profile updates have no channel
        ({"kind": "messages", "channel": "sms"}, ["sms"]),
        ({"kind": "consent", "channel": "sms"}, []),
        ({"kind": "bogus"}, ["ordered", "unsub", "sms", "email", "viewed", "signup"]),
    ],
)
def test_timeline_filters(marketer, history, params, expected):
    response = marketer.get(url(history["signup"].customer, **params))
    assert shown(response) == [entry(history[name]) for name in expected]


def test_filter_requests_from_htmx_get_the_timeline_fragment(marketer, history):
    response = marketer.get(url(history["signup"].customer, kind="messages"), **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="card timeline-card" id="timeline"')
    assert "<html" not in html and "consent-grid" not in html
    assert '<a class="seg-item" href="{0}?kind=messages" hx-get="{0}?kind=messages"'.format(url(history["signup"].customer)) in html
    assert 'aria-current="true">Messages</a>' in html
    assert "HX-Request" in response["Vary"]


def test_empty_filter_says_nothing_matches(marketer, history):
    html = marketer.get(url(history["signup"].customer, kind="consent", channel="push"), **HTMX).content.decode()
    assert "Nothing matches this filter." in html


def verdict(customer, at, *, decision="suppress", channel=Channel.SMS, **fields):
    from orchestrator.governor.models import GovernorVerdict

    values = {"rule": "one marketing message a day", "reason": "cap 'one marketing message a day': 1 of 1 in the last 24 h",
              "counts": {"count": 1, "max": 1}, "category": Category.MARKETING}
    return GovernorVerdict.objects.create(customer=customer, decision=decision, channel=channel, at=at, **(values | fields))


def test_governor_verdicts_are_their_own_kind_above_the_message_they_suppressed(marketer, ada):
    from journeys.models import Journey

    journey = Journey.objects.create(name="Cart recovery")
    at = NOW - timedelta(hours=2)
    suppressed = message(ada, at, Channel.SMS, status=MessageStatus.SUPPRESSED, journey_id=journey.pk)
    held = verdict(ada, at, message_id=suppressed.pk, journey_id=journey.pk, node_id="sms-1", enrollment_id=5)
    deferred = verdict(ada, NOW - timedelta(hours=1), decision="defer", channel=Channel.PUSH, rule="quiet hours push",
                       reason="quiet hours for push (21:00–08:00 Asia/Tokyo) until 08:00", until=NOW + timedelta(hours=11))

    response = marketer.get(url(ada))

    assert shown(response) == [("governor", deferred.pk), ("governor", held.pk), ("message", suppressed.pk)]
    html = response.content.decode()
    assert "SMS marketing send held back" in html
    assert '<span class="badge badge-suppress">Suppressed</span>' in html
    assert "cap &#x27;one marketing message a day&#x27;: 1 of 1 in the last 24 h" in html
    assert "Cart recovery · step <span class=\"mono\">sms-1</span>" in html
    assert '<span class="badge badge-defer">Deferred</span>' in html
    assert "until <time datetime=\"2026-06-15T23:00:00+00:00\">Tue 16 Jun, 08:00</time>" in html  # Tokyo time


def test_the_held_back_filter_shows_only_verdicts_and_the_channel_filter_applies_to_them(marketer, ada):
    sms = verdict(ada, NOW - timedelta(hours=1))
    push = verdict(ada, NOW - timedelta(hours=2), channel=Channel.PUSH)
    message(ada, NOW - timedelta(hours=3))

    assert shown(marketer.get(url(ada, kind="governor"))) == [("governor", sms.pk), ("governor", push.pk)]
    assert shown(marketer.get(url(ada, kind="governor", channel="push"))) == [("governor", push.pk)]
    assert f'href="{url(ada)}?kind=governor"' in marketer.get(url(ada)).content.decode()


def test_load_older_pages_by_keyset_without_gaps_or_repeats(marketer, ada, monkeypatch):
    monkeypatch.setattr(customers.views, "TIMELINE_PAGE_SIZE", 4)
    same = NOW - timedelta(hours=3)
    # Eleven entries, seven of them at one instant across all kinds, to stress the cursor.
    newest = event(ada, NOW - timedelta(minutes=1))
    e1, e2 = event(ada, same), event(ada, same)
    p1 = profile_update(ada, same, plan="team")
    m1, m2 = message(ada, same), message(ada, same, Channel.PUSH)
    c1, c2 = consent_change(ada, same), consent_change(ada, same, Channel.SMS)
    older = [message(ada, NOW - timedelta(days=3)), event(ada, NOW - timedelta(days=4)), profile_update(ada, NOW - timedelta(days=5))]
    # At one instant: consent, then messages, profile updates, events; higher id first.
    expected = [entry(o) for o in (newest, c2, c1, m2, m1, p1, e2, e1, *older)]

    seen, pages = [], 0
    response = marketer.get(url(ada))
    while True:
        pages += 1
        seen += shown(response)
        older = next_url(response)
        if not older:
            break
        response = marketer.get(older, **HTMX)
        assert "<section" not in response.content.decode()  # only list items are appended
    assert seen == expected
    assert pages == 3


def test_load_older_does_not_repeat_the_day_heading(marketer, ada, monkeypatch):
    monkeypatch.setattr(customers.views, "TIMELINE_PAGE_SIZE", 2)
    for minutes in (10, 20, 30):
        event(ada, NOW - timedelta(minutes=minutes))
    event(ada, NOW - timedelta(days=1))
    first = marketer.get(url(ada))
    assert days(first) == ["Today"]
    older = marketer.get(next_url(first), **HTMX)
    assert days(older) == ["Yesterday"]
    html = older.content.decode()
    assert html.lstrip().startswith('<li class="tl-item tl-event"')
    assert "Load older" not in html


def test_load_older_button_appends_in_place(marketer, ada, monkeypatch):
    monkeypatch.setattr(customers.views, "TIMELINE_PAGE_SIZE", 1)
    event(ada, NOW - timedelta(minutes=1))
    event(ada, NOW - timedelta(minutes=2))
    html = marketer.get(url(ada)).content.decode()
    assert 'hx-target="closest li" hx-swap="outerHTML">Load older</button>' in html


def test_malformed_cursor_is_a_bad_request(marketer, ada):
    assert marketer.get(url(ada, before="yesterday")).status_code == 400
    assert marketer.get(url(ada, before="1.alien.2")).status_code == 400


def test_unknown_customer_is_404(marketer):
    assert marketer.get(reverse("customers:profile", args=[999999])).status_code == 404


def test_timeline_refreshes_itself_when_consent_changes(messaging, ada):
    html = messaging.get(url(ada)).content.decode()
    assert f'hx-get="{url(ada)}" hx-trigger="consentChanged from:body" hx-swap="outerHTML"' in html


# --- Query count -------------------------------------------------------------------------------


def _count_queries(client, customer) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url(customer)).status_code == 200
    return len(queries)


def test_profile_query_count_does_not_grow_with_history(messaging, ada, django_assert_max_num_queries):
    event(ada, NOW)
    few = _count_queries(messaging, ada)
    for n in range(80):
        at = NOW - timedelta(hours=n)
        event(ada, at, "Viewed", n=n)
        message(ada, at, list(Channel)[n % 4])
        consent_change(ada, at, list(Channel)[n % 4])
        profile_update(ada, at, n=n)
    for n in range(4):
        ContactPoint.objects.create(customer=ada, channel=Channel.PUSH, address=f"https://push.example/{n}")
    for channel in Channel:
        do_set_consent(ada, channel, Category.MARKETING, ConsentStatus.OPTED_IN, source="api")
    assert _count_queries(messaging, ada) == few
    # session, user, roles, customer, contact points, consents, five timeline sources
    with django_assert_max_num_queries(11):
        messaging.get(url(ada))


# --- Malformed "load older" cursors ------------------------------------------------------------


@pytest.mark.parametrize(
    "before",
    [
        "99999999999999999999.event.1",  # more microseconds than a timedelta holds
        "999999999999999999.event.1",  # a time past year 9999
        "-1.event.1",  # negative time
        "1781481600000000.event.-1",  # negative id
        "1781481600000000.event",  # missing the id
        "1781481600000000",  # missing kind and id
        "1781481600000000.event.1.2",  # a part too many
        "soon.event.1",  # non-numeric time
        "1781481600000000.event.one",  # non-numeric id
        "1_781_481_600_000_000.event.1",  # digits int() would accept, str() never writes
        "1781481600000000.alien.1",  # unknown kind
    ],
)
def test_load_older_with_a_malformed_cursor_is_a_bad_request(marketer, ada, before):
    event(ada, NOW - timedelta(minutes=1))
    response = marketer.get(url(ada, before=before), **HTMX)
    assert response.status_code == 400
    assert response.content == b"Malformed timeline cursor."


@pytest.mark.parametrize("text", ["99999999999999999999.event.1", "999999999999999999.event.1", "-1.event.1", "1.alien.1"])
def test_cursor_parse_raises_only_value_error(text):
    from orchestrator.timeline import Cursor

    with pytest.raises(ValueError):
        Cursor.parse(text)


def test_cursor_parse_reads_back_what_str_writes():
    from orchestrator.timeline import Cursor, Kind

    cursor = Cursor(NOW, Kind.CONSENT, 42)
    assert str(cursor) == "1781524800000000.consent.42"
    assert Cursor.parse(str(cursor)) == cursor
