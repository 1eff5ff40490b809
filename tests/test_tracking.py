"""Our own open and click tracking: signed links and pixel, never backwards, no open redirect."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import signing
from django.test import Client
from django.utils import timezone

from channels_app import sms_text, tracking
from channels_app.content_rules import sms_segments, sms_segments_as_sent
from channels_app.ledger import QueueRequest, do_queue_message, do_transition_message
from channels_app.models import Message, MessageStatus
from customers.models import Customer, Event
from journeys.models import Journey
from orchestrator.engine.control import trigger
from orchestrator.engine.models import Enrollment, EnrollmentState
from tests.api_factories import opted_in
from tests.journey_factories import make_live_journey, node

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
PUBLIC = "https://chorus.acme.example"
ENGAGEMENTS: list[int] = []


def remember_engagement(message_id: int) -> None:
    """A test engagement listener (settings.CHORUS_ENGAGEMENT_LISTENERS)."""
    ENGAGEMENTS.append(message_id)


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.PUBLIC_URL = PUBLIC
    ENGAGEMENTS.clear()


@pytest.fixture
def listener(settings):
    settings.CHORUS_ENGAGEMENT_LISTENERS = ["tests.test_tracking.remember_engagement"]


@pytest.fixture
def sent(db) -> Message:
    customer = Customer.objects.create(external_id="u1", email="maya@example.com")
    request = QueueRequest(customer_id=customer.pk, channel="email", category="marketing", idempotency_key="m1",
                           content={"subject": "Sale", "html": "<p>Hi</p>"}, journey_id=42)
    message = do_queue_message(request).message
    do_transition_message(message.pk, MessageStatus.SENDING, at=T0)
    do_transition_message(message.pk, MessageStatus.SENT, at=T0)
    return message


def path_of(url: str) -> str:
    return url.removeprefix(PUBLIC)


def state(message: Message) -> tuple:
    message.refresh_from_db()
    return message.status, message.opened_at, message.clicked_at


def events() -> list[tuple[str, dict]]:
    return list(Event.objects.order_by("id").values_list("name", "source_message_id"))


# --- Rewriting -----------------------------------------------------------------------------


def test_add_tracking_rewrites_http_links_only_and_appends_the_pixel():
    html = (
        '<html><body><a href="https://shop.example/a?x=1&amp;y=2">A</a> <a class="b" href=\'http://b.example\'>B</a>'
        ' <a href="mailto:help@acme.example">mail</a> <a href="#top">top</a> <a href="/relative">rel</a>'
        f' <a href="{PUBLIC}/u/tok/">unsubscribe</a></body></html>'
    )

    tracked = tracking.add_tracking(html, "pid")

    assert tracked == (
        f'<html><body><a href="{tracking.click_url("https://shop.example/a?x=1&y=2", "pid")}">A</a>'
        f" <a class=\"b\" href='{tracking.click_url('http://b.example', 'pid')}'>B</a>"
        ' <a href="mailto:help@acme.example">mail</a> <a href="#top">top</a> <a href="/relative">rel</a>'
        f' <a href="{PUBLIC}/u/tok/">unsubscribe</a>'
        f'<img src="{tracking.open_url("pid")}" width="1" height="1" alt="" style="display:none"></body></html>'
    )


def test_add_tracking_without_body_tag_appends_the_pixel_at_the_end():
    assert tracking.add_tracking("<p>Hi</p>", "pid", clicks=False).startswith("<p>Hi</p><img src=")
    assert tracking.add_tracking("<p>Hi</p>", "pid", clicks=False, opens=False) == "<p>Hi</p>"


def test_track_links_in_plain_text_keeps_sentence_punctuation():
    text = "Acme: 20% off at https://shop.example/sale. Or http://b.example/x?y=1, reply STOP to opt out"

    assert tracking.track_links(text, "pid") == (
        f"Acme: 20% off at {tracking.click_url('https://shop.example/sale', 'pid')}."
        f" Or {tracking.click_url('http://b.example/x?y=1', 'pid')}, reply STOP to opt out"
    )


def test_click_token_carries_message_and_url_signed():
    url = tracking.click_url("https://shop.example/sale", "pid")
    token = url.removeprefix(f"{PUBLIC}/t/c/").removesuffix("/")

    assert tracking.read_click(token) == ("pid", "https://shop.example/sale")


# --- Clicks --------------------------------------------------------------------------------


def test_click_records_and_redirects_to_the_signed_url(client: Client, sent, listener, django_capture_on_commit_callbacks):
    url = tracking.click_url("https://shop.example/sale?a=1&b=2", str(sent.public_id))

    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False), django_capture_on_commit_callbacks(execute=True):
        response = client.get(path_of(url))

    assert (response.status_code, response["Location"]) == (302, "https://shop.example/sale?a=1&b=2")
    clicked = T0 + dt.timedelta(hours=1)
    assert state(sent) == (MessageStatus.CLICKED, clicked, clicked)  # a click implies the open
    assert list(sent.transitions.filter(to_status="clicked").values_list("from_status", "detail")) == [
        ("sent", "tracked link")
    ]
    assert events() == [("message_clicked", f"{sent.public_id}:clicked")]
    assert Event.objects.get().properties == {
        "message_id": str(sent.public_id), "channel": "email", "category": "marketing", "journey_id": 42,
    }
    assert ENGAGEMENTS == [sent.pk]


def test_second_click_redirects_and_counts_once(client, sent, listener, django_capture_on_commit_callbacks):
    url = path_of(tracking.click_url("https://shop.example/sale", str(sent.public_id)))
    client.get(url)
    before = (state(sent), events(), sent.transitions.count())

    response = client.get(url)

    assert response.status_code == 302
    assert (state(sent), events(), sent.transitions.count()) == before


def test_tampered_click_token_is_refused_and_changes_nothing(client, sent, listener):
    token = path_of(tracking.click_url("https://shop.example/sale", str(sent.public_id)))[len("/t/c/"):-1]
    evil = signing.Signer(salt="some other salt").sign_object({"m": str(sent.public_id), "u": "https://evil.example/"})
    javascript = signing.Signer(salt=tracking.CLICK_SALT).sign_object({"m": str(sent.public_id), "u": "javascript:alert(1)"})
    open_token = signing.Signer(salt=tracking.OPEN_SALT).sign_object({"m": str(sent.public_id)})
    before = (state(sent), events())

    for bad in (token[:-3] + "abc", evil, javascript, open_token, "nonsense"):
        response = client.get(f"/t/c/{bad}/")
        assert response.status_code == 400
        assert "Location" not in response
    assert (state(sent), events(), ENGAGEMENTS) == (*before, [])


def test_click_on_a_bounced_message_still_redirects_and_keeps_bounced(client, sent, listener):
    do_transition_message(sent.pk, MessageStatus.BOUNCED, at=T0)
    url = path_of(tracking.click_url("https://shop.example/sale", str(sent.public_id)))

    response = client.get(url)

    assert response.status_code == 302
    assert state(sent)[0] == MessageStatus.BOUNCED
    assert events() == [("message_clicked", f"{sent.public_id}:clicked")]


def test_click_for_a_deleted_message_still_redirects(client, sent):
    url = path_of(tracking.click_url("https://shop.example/sale", str(sent.public_id)))
    Message.objects.all().delete()

    response = client.get(url)

    assert (response.status_code, response["Location"]) == (302, "https://shop.example/sale")
    assert events() == []


# --- Opens ---------------------------------------------------------------------------------


def test_open_pixel_records_an_open_and_answers_a_gif(client, sent, listener, django_capture_on_commit_callbacks):
    with time_machine.travel(T0 + dt.timedelta(minutes=5), tick=False), django_capture_on_commit_callbacks(execute=True):
        response = client.get(path_of(tracking.open_url(str(sent.public_id))))

    assert (response.status_code, response["Content-Type"]) == (200, "image/gif")
    assert response.content == tracking.PIXEL_GIF
    assert "no-cache" in response["Cache-Control"]
    assert state(sent) == (MessageStatus.OPENED, T0 + dt.timedelta(minutes=5), None)
    assert events() == [("message_opened", f"{sent.public_id}:opened")]
    assert ENGAGEMENTS == [sent.pk]


def test_open_after_click_never_moves_the_status_back(client, sent):
    client.get(path_of(tracking.click_url("https://shop.example/", str(sent.public_id))))
    clicked = state(sent)

    client.get(path_of(tracking.open_url(str(sent.public_id))))

    assert state(sent) == clicked
    assert [name for name, _ in events()] == ["message_clicked", "message_opened"]


def test_tampered_open_token_is_refused(client, sent):
    token = path_of(tracking.open_url(str(sent.public_id)))[len("/t/o/"):-len(".gif")]

    response = client.get(f"/t/o/{token[:-2]}zz.gif")

    assert response.status_code == 404
    assert (state(sent), events()) == ((MessageStatus.SENT, None, None), [])


# --- Engagement wakes a waiting journey ---------------------------------------------------------


def clicked_journey() -> Journey:
    email = node("email", "send", channel="email", content={"email": {"subject": "New in", "html": "<p>Look</p>"}})
    wait = node("wait", "wait_for_event", mode="engagement", engagement="clicked", timeout={"amount": 1, "unit": "days"})
    engaged = node("engaged", "send", channel="sms", content={"sms": {"body": "engaged"}})
    ignored = node("ignored", "send", channel="sms", content={"sms": {"body": "ignored"}})
    edges = [("entry", "out", "email"), ("email", "out", "wait"), ("wait", "happened", "engaged"),
             ("wait", "timed_out", "ignored")]
    return make_live_journey({
        "nodes": [node("entry", "entry", trigger="api"), email, wait, engaged, ignored],
        "edges": [{"from": a, "port": p, "to": b} for a, p, b in edges],
    })


def test_tracked_click_wakes_an_enrollment_waiting_for_it(client, db, django_capture_on_commit_callbacks):
    ada = opted_in(Customer.objects.create(external_id="ada", email="ada@example.com", phone="+12125550100"))
    journey = clicked_journey()
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        result = trigger(journey, ada, properties={}, key=f"ada-{timezone.now().isoformat()}")
    email = Message.objects.get(channel="email")
    enrollment = Enrollment.objects.get(pk=result.enrollment_id)
    assert (email.status, enrollment.state) == (MessageStatus.SENT, EnrollmentState.WAITING)

    with time_machine.travel(T0 + dt.timedelta(hours=2), tick=False), django_capture_on_commit_callbacks(execute=True):
        client.get(path_of(tracking.click_url("https://shop.example/", str(email.public_id))))

    assert list(Message.objects.filter(channel="sms").values_list("content__body", flat=True)) == ["engaged"]


# --- Short links (SMS) ---------------------------------------------------------------------


@pytest.fixture
def text(db) -> Message:
    customer = Customer.objects.create(external_id="u2", phone="+14155550199")
    body = "Acme: 20% off at https://shop.example/sale/spring-collection?utm_source=sms. Terms: https://shop.example/t Reply STOP to opt out"
    request = QueueRequest(customer_id=customer.pk, channel="sms", category="marketing", idempotency_key="s1",
                           content={"body": body})
    message = do_queue_message(request).message
    do_transition_message(message.pk, MessageStatus.SENDING, at=T0)
    do_transition_message(message.pk, MessageStatus.SENT, at=T0)
    return message


def test_short_links_replace_each_url_by_a_short_signed_link(text):
    body = sms_text.short_links(text.content["body"], text.pk)

    first, second = sms_text.short_url(text.pk, 0), sms_text.short_url(text.pk, 1)
    assert body == f"Acme: 20% off at {first}. Terms: {second} Reply STOP to opt out"
    # The public URL and 22 characters, whatever the original's length or the message's id.
    code = sms_text.base36(text.pk).rjust(7, "0")
    assert first.startswith(f"{PUBLIC}/s/{code}-0-") and len(first) == len(PUBLIC) + len("/s/0000000-0-") + 10
    assert len(sms_text.short_url(36**7 - 1, 0)) == len(first) == sms_text.short_link_length()


def test_the_text_counted_by_the_content_rules_is_as_long_as_the_text_sent(text):
    long = "Acme: 20% off at https://shop.example/spring/" + "a" * 150 + " Reply STOP to opt out"

    sent = sms_text.short_links(long, text.pk)

    short = len(PUBLIC) + len("/s/0000000-0-") + 10
    assert len(sent) == len(sms_text.as_sent(long, "marketing")) == len("Acme: 20% off at ") + short + len(" Reply STOP to opt out")
    assert (sms_segments(long).segments, sms_segments_as_sent(long, "marketing"), sms_segments(sent).segments) == (
        2, sms_segments(sent), 1)


def test_a_short_link_records_the_click_and_redirects_to_the_url_in_the_ledger(client, text, listener, django_capture_on_commit_callbacks):
    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False), django_capture_on_commit_callbacks(execute=True):
        response = client.get(path_of(sms_text.short_url(text.pk, 0)))

    assert (response.status_code, response["Location"]) == (302, "https://shop.example/sale/spring-collection?utm_source=sms")
    clicked = T0 + dt.timedelta(hours=1)
    assert state(text) == (MessageStatus.CLICKED, clicked, clicked)
    assert events() == [("message_clicked", f"{text.public_id}:clicked")]
    assert ENGAGEMENTS == [text.pk]
    assert client.get(path_of(sms_text.short_url(text.pk, 1)))["Location"] == "https://shop.example/t"
    assert events() == [("message_clicked", f"{text.public_id}:clicked")]  # once per message


def test_a_short_link_sent_before_ids_were_padded_still_redirects(client, text):
    code = f"{sms_text.base36(text.pk)}-1"  # as links were made before: the id unpadded

    response = client.get(f"/s/{code}-{sms_text.short_signature(code)}")

    assert (response.status_code, response["Location"]) == (302, "https://shop.example/t")


def test_a_forged_or_out_of_range_short_link_is_refused_and_changes_nothing(client, text):
    genuine = path_of(sms_text.short_url(text.pk, 0))
    forged = genuine[:-1] + ("A" if genuine[-1] != "A" else "B")
    code = sms_text.base36(text.pk).rjust(7, "0")
    other_message = genuine.replace(f"/s/{code}-", f"/s/{sms_text.base36(text.pk + 1).rjust(7, '0')}-")
    for path in (forged, other_message, path_of(sms_text.short_url(text.pk, 2)), "/s/garbage"):
        response = client.get(path)
        assert (response.status_code, response.content) == (400, b"This link is not valid."), path
    assert state(text) == (MessageStatus.SENT, None, None)
    assert events() == []
