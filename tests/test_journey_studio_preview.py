"""Studio preview: a send step's messages rendered for one real customer, per channel.

The launch story's SMS is rendered for Maya from her latest "Cart Abandoned" event; a
best-channel step shows every channel's content and the channel the engine would pick for
her now, without sending or recording anything; a template that cannot render says why
on its channel, with a 200, not a server error.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from channels_app.models import Message
from customers.enums import Channel, PushPlatform
from customers.models import ContactPoint, Customer
from orchestrator.governor.models import GovernorVerdict
from orchestrator.roles import Role
from tests.api_factories import event, opted_in
from tests.journey_factories import linear_graph, make_live_journey, node
from tests.test_journey_launch_story import cart_recovery_graph

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
HTMX = {"HTTP_HX_REQUEST": "true"}
CART = {"cart_value": 280, "product_name": "Silk wrap dress", "price": 280, "accessories": ["the gold hoops", "the suede clutch"]}
SMS_TEXT = (
    "Hi Maya, your Silk wrap dress ($280) is waiting. "
    "It pairs beautifully with the gold hoops and the suede clutch."
)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def marketer(client, make_user):
    client.force_login(make_user(Role.MARKETER, username="mara"))
    return client


@pytest.fixture
def maya(db):
    customer = Customer.objects.create(
        external_id="maya-17", email="maya@example.com", phone="+12125550117", timezone="America/New_York",
        traits={"first_name": "Maya", "last_name": "Okafor"},
    )
    ContactPoint.objects.create(customer=customer, channel=Channel.PUSH, platform=PushPlatform.IOS, address="fcm-maya")
    return opted_in(customer)


def every_channel_graph() -> dict:
    content = {
        "sms": {"body": "Hi {{ customer.first_name }} 🎉 your bag is waiting"},
        "email": {
            "subject": "{{ customer.first_name }}, your bag",
            "html": "<p>Hi <b>{{ customer.first_name }}</b> & welcome</p>",
            "preheader": "Saved for you",
        },
        "push": {"title": "Still thinking, {{ customer.first_name }}?", "body": "Your bag is saved."},
        "in_app": {"title": "Welcome back", "body": "Pick up where you left off.", "button_label": "Open bag"},
    }
    return linear_graph(
        node("entry", "entry", trigger="api"),
        node("nudge", "send", channel="best", fallback=["sms", "email", "push", "in_app"], content=content),
        node("done", "exit"),
    )


def preview_url(journey, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{reverse('journeys:studio-preview', args=[journey.pk])}?{query}"


def article(body: str, channel: str) -> str:
    match = re.search(rf'<article class="preview preview-{channel}[^"]*".*?</article>', body, re.S)
    assert match, f"no {channel} preview"
    return match.group(0)


def text(fragment: str) -> str:
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())
    return re.sub(r" ([.,])", r"\1", words)


def test_sms_preview_renders_the_launch_story_text_from_her_latest_cart_event(marketer, maya):
    journey = make_live_journey(cart_recovery_graph(), name="Cart recovery")
    event(maya, "Cart Abandoned", at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC), properties={**CART, "product_name": "Old coat"})
    event(maya, "Cart Abandoned", at=datetime(2026, 11, 25, 2, 14, tzinfo=UTC), properties=CART)
    # Newer, but under the entry filter's cart value of 100: it would not have entered her.
    event(maya, "Cart Abandoned", at=datetime(2026, 11, 25, 2, 50, tzinfo=UTC), properties={**CART, "cart_value": 20})

    response = marketer.get(preview_url(journey, node="sms", customer=maya.pk), **HTMX)

    assert response.status_code == 200
    body = response.content.decode()
    sms = article(body, "sms")
    assert f'<p class="sms-bubble">{html.escape(SMS_TEXT)}</p>' in sms
    assert text(re.search(r'<p class="sms-meta.*?</p>', sms, re.S).group(0)) == (
        "1 segment · GSM-7 · 111 septets, 160 per segment"
    )
    assert text(re.search(r'<p class="muted small" id="preview-sample">.*?</p>', body, re.S).group(0)) == (
        "Event variables from their latest “Cart Abandoned”, 2026-11-25 02:14 UTC."
    )
    assert 'id="preview-choice"' not in body  # a plain SMS step has nothing to choose
    assert "<html" not in body  # the panel fragment, not the page


def test_best_channel_preview_renders_every_channel_and_names_the_engines_choice(marketer, make_user):
    ada = opted_in(Customer.objects.create(external_id="ada-1", email="ada@example.com", traits={"first_name": "Ada"}))
    journey = make_live_journey(every_channel_graph(), name="Every channel")

    response = marketer.get(preview_url(journey, node="nudge", customer=ada.pk), **HTMX)

    body = response.content.decode()
    assert [m for m in re.findall(r'<article class="preview preview-(\w+)', body)] == ["sms", "email", "push", "in_app"]
    sms = article(body, "sms")
    assert "Hi Ada 🎉 your bag is waiting" in sms
    assert text(re.search(r'<p class="sms-meta.*?</p>', sms, re.S).group(0)) == (
        "1 segment · UCS-2 · 29 UTF-16 units, 70 per segment (UCS-2 because of “🎉”)"
    )
    assert text(re.search(r'<p class="preview-refusal.*?</p>', sms, re.S).group(0)) == "Not reachable: no phone number"
    email = article(body, "email")
    assert '<dd class="email-subject">Ada, your bag</dd>' in email
    assert "<dd>none set (outbox provider)</dd>" in email  # no email account configured
    # The body goes into a sandboxed frame, attribute-escaped; the name was HTML-escaped by Liquid.
    assert 'sandbox="" ' in email
    assert 'srcdoc="&lt;p&gt;Hi &lt;b&gt;Ada&lt;/b&gt; &amp; welcome&lt;/p&gt;"' in email
    push = article(body, "push")
    assert '<p class="push-title">Still thinking, Ada?</p>' in push and '<p class="push-body">Your bag is saved.</p>' in push
    assert text(re.search(r'<p class="preview-refusal.*?</p>', push, re.S).group(0)) == "Not reachable: no enabled push subscription"
    in_app = article(body, "in_app")
    assert '<p class="inapp-title">Welcome back</p>' in in_app and ">Open bag</span>" in in_app
    # Email and in-app are open to her; with no history the population's best of them wins.
    choice = re.search(r'<div class="studio-choice" id="preview-choice" data-channel="(\w+)">(.*?)</div>', body, re.S)
    assert choice.group(1) == "email"
    assert re.findall(r'<article class="preview preview-\w+ is-chosen"', body) == ['<article class="preview preview-email is-chosen"']
    assert text(choice.group(2)).startswith(
        "The engine would send email now. No engagement history: email, the population's best available channel"
    )
    assert Message.objects.count() == 0 and GovernorVerdict.objects.count() == 0


def test_the_only_available_channel_is_the_choice_and_says_so(marketer):
    graph = every_channel_graph()
    graph["nodes"][1]["config"] |= {"fallback": ["sms", "email"]}
    graph["nodes"][1]["config"]["content"] = {k: v for k, v in graph["nodes"][1]["config"]["content"].items() if k in ("sms", "email")}
    journey = make_live_journey(graph, name="Two channels")
    ada = opted_in(Customer.objects.create(external_id="ada-1", email="ada@example.com", traits={"first_name": "Ada"}))

    body = marketer.get(preview_url(journey, node="nudge", customer=ada.pk), **HTMX).content.decode()

    choice = re.search(r'<div class="studio-choice" id="preview-choice" data-channel="(\w+)">(.*?)</div>', body, re.S)
    assert choice.group(1) == "email"
    assert text(choice.group(2)).startswith("The engine would send email now. Email: the only available channel")


def test_a_template_error_is_shown_on_its_channel_not_as_a_server_error(marketer, maya):
    graph = cart_recovery_graph()
    graph["nodes"][2]["config"]["content"]["sms"]["body"] = "Hi {{ customer.nickname }}, {{ event.product_name }}"
    journey = make_live_journey(graph, name="Broken")
    event(maya, "Cart Abandoned", properties=CART)

    response = marketer.get(preview_url(journey, node="sms", customer=maya.pk), **HTMX)

    assert response.status_code == 200
    error = re.search(r'<div class="preview-error" role="alert">(.*?)</div>', article(response.content.decode(), "sms"), re.S)
    assert text(error.group(1)) == "Template error sms.body: undefined variable 'customer.nickname' (line 1)"


def test_without_the_entry_event_event_variables_are_empty_and_the_sms_fails_as_it_would(marketer, maya):
    journey = make_live_journey(cart_recovery_graph(), name="Cart recovery")

    body = marketer.get(preview_url(journey, node="sms", customer=maya.pk), **HTMX).content.decode()

    assert text(re.search(r'<p class="form-note" id="preview-sample">.*?</p>', body, re.S).group(0)).startswith(
        "Maya Okafor has no “Cart Abandoned” event that passes the entry filters: the event variables are empty"
    )
    assert "undefined variable &#x27;event.product_name&#x27;" in article(body, "sms")


def test_the_customer_picker_finds_customers_by_name_email_or_external_id(marketer, maya):
    Customer.objects.create(external_id="bob-2", email="bob@example.com", traits={"first_name": "Bob"})
    journey = make_live_journey(cart_recovery_graph(), name="Cart recovery")

    for query in ("okafor", "maya@example", "maya-17"):
        body = marketer.get(preview_url(journey, q=query, node="sms"), **HTMX).content.decode()
        assert re.findall(r'data-customer="(\d+)"', body) == [str(maya.pk)], query
    assert f"customer={maya.pk}" in body and "node=sms" in body

    body = marketer.get(preview_url(journey, q="nobody-at-all", node="sms"), **HTMX).content.decode()
    assert "No customer matches “nobody-at-all”." in body


def test_the_standalone_page_defaults_to_the_first_send_step_and_asks_for_a_customer(marketer):
    journey = make_live_journey(cart_recovery_graph(), name="Cart recovery")

    response = marketer.get(reverse("journeys:studio-preview", args=[journey.pk]))

    body = response.content.decode()
    assert response.status_code == 200 and "<html" in body
    assert re.findall(r'<option value="(\w+)"( selected)?>', body) == [("sms", " selected"), ("push", "")]
    assert "Find a customer to see this step's messages" in body


def test_an_unknown_step_is_named_and_another_kind_of_step_previews_the_first_send(marketer, maya):
    journey = make_live_journey(cart_recovery_graph(), name="Cart recovery")

    body = marketer.get(preview_url(journey, node="nope", customer=maya.pk), **HTMX).content.decode()
    assert "Version 1 has no step “nope”." in body

    body = marketer.get(preview_url(journey, node="wait45", customer=maya.pk), **HTMX).content.decode()
    assert '<h2 class="card-title" id="preview-title">Preview · sms</h2>' in body
