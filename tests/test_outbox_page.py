"""The development outbox page: what the outbox provider recorded, newest first, by channel."""

from __future__ import annotations

import datetime as dt
import html

import pytest
import time_machine
from django.urls import reverse

from channels_app.delivery import deliver
from channels_app.ledger import QueueRequest, do_queue_message
from channels_app.models import OutboxMessage
from customers.models import ContactPoint, Customer
from orchestrator.roles import Role

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
URL = "/outbox/"
EMAIL = {"subject": "Your order <123> shipped", "html": '<p onclick="x()">Hi "Ada"</p><script>alert(1)</script>'}


@pytest.fixture
def ada():
    return Customer.objects.create(
        external_id="ada", email="ada@example.com", phone="+14155550100", traits={"first_name": "Ada", "last_name": "Lovelace"}
    )


def send(customer, channel, content, key, at, **extra):
    request = QueueRequest(
        customer_id=customer.pk, channel=channel, category="marketing", idempotency_key=key, content=content, **extra
    )
    with time_machine.travel(at, tick=False):
        message = do_queue_message(request).message
        deliver(message.pk)
    return message


@pytest.fixture
def outbox(ada):
    ContactPoint.objects.create(customer=ada, channel="push", address="https://push.example/sub/1")
    send(ada, "email", EMAIL, "e1", T0, journey_id=7, node_id="send-email")
    send(ada, "sms", {"body": "Acme: 20% off tonight. Reply STOP to opt out"}, "s1", T0 + dt.timedelta(minutes=1))
    send(ada, "push", {"title": "Back in stock", "body": "Sizes are going fast."}, "p1", T0 + dt.timedelta(minutes=2))
    send(ada, "in_app", {"title": "You're close to Gold", "body": "Two more orders.", "button_label": "See my rewards"}, "i1", T0 + dt.timedelta(minutes=3))


def item_ids(response) -> list[int]:
    return [record.pk for record in response.context["page"].object_list]


def test_url_is_wired():
    assert reverse("channels_app:outbox") == URL


def test_lists_every_recorded_message_newest_first_with_its_content(client, make_user, outbox, ada):
    client.force_login(make_user(Role.MARKETER))

    response = client.get(URL)

    assert response.status_code == 200
    records = list(OutboxMessage.objects.order_by("-recorded_at"))
    assert [r.channel for r in records] == ["in_app", "push", "sms", "email"]
    assert item_ids(response) == [r.pk for r in records]
    page = response.content.decode()
    assert "<h1>Outbox</h1>" in page
    assert f'<a class="recipient" href="{reverse("customers:profile", args=[ada.pk])}">Ada Lovelace</a>' in page
    assert "Acme: 20% off tonight. Reply STOP to opt out" in page
    assert "<h3>Back in stock</h3>" in page
    assert "See my rewards" in page
    assert "Journey #7 · step <span class=\"mono\">send-email</span>" in page
    assert "<h3>Your order &lt;123&gt; shipped</h3>" in page


def test_email_html_is_shown_escaped_in_a_sandboxed_frame(client, make_user, outbox):
    client.force_login(make_user(Role.MARKETER))

    page = client.get(URL).content.decode()

    escaped = html.escape(EMAIL["html"], quote=True).replace("&#x27;", "&#39;")
    assert f'sandbox="" referrerpolicy="no-referrer" loading="lazy" title="Email body: Your order &lt;123&gt; shipped" srcdoc="{escaped}"' in page
    assert "<script>alert(1)</script>" not in page
    assert 'onclick="x()"' not in page


def test_filters_by_channel(client, make_user, outbox):
    client.force_login(make_user(Role.MESSAGING))

    response = client.get(URL, {"channel": "sms"})

    assert item_ids(response) == list(OutboxMessage.objects.filter(channel="sms").values_list("pk", flat=True))
    page = response.content.decode()
    assert "Back in stock" not in page
    assert f'href="{URL}?channel=sms" hx-get="{URL}?channel=sms" hx-target="#results" hx-swap="outerHTML" hx-push-url="true" aria-current="true">SMS</a>' in page


def test_unknown_channel_filter_shows_every_channel(client, make_user, outbox):
    client.force_login(make_user(Role.MARKETER))

    response = client.get(URL, {"channel": "fax"})

    assert len(item_ids(response)) == 4


def test_htmx_request_gets_the_results_fragment_only(client, make_user, outbox):
    client.force_login(make_user(Role.MARKETER))

    response = client.get(URL, {"channel": "push"}, HTTP_HX_REQUEST="true")

    page = response.content.decode()
    assert page.lstrip().startswith('<section id="results"')
    assert "<h1>Outbox</h1>" not in page
    assert "Back in stock" in page
    assert response["Vary"] == "HX-Request, Cookie"


def test_paginates_fifty_per_page_keeping_the_filter(client, make_user, ada):
    for i in range(51):
        send(ada, "sms", {"body": f"message {i}"}, f"k{i}", T0 + dt.timedelta(seconds=i))
    client.force_login(make_user(Role.MARKETER))

    first = client.get(URL, {"channel": "sms"})
    second = client.get(URL, {"channel": "sms", "page": 2})

    assert len(item_ids(first)) == 50
    assert "message 50" in first.content.decode()
    assert 'href="?channel=sms&amp;page=2"' in first.content.decode()
    assert [OutboxMessage.objects.get(pk=pk).content["body"] for pk in item_ids(second)] == ["message 0"]


def test_empty_outbox_says_so(client, make_user):
    client.force_login(make_user(Role.MARKETER))

    page = client.get(URL).content.decode()

    assert "Nothing recorded yet." in page


def test_user_without_a_role_is_refused(client, make_user, outbox):
    client.force_login(make_user(None))

    assert client.get(URL).status_code == 403


def test_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={URL}"
