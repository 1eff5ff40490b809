"""One-click unsubscribe (RFC 8058): GET confirms and changes nothing; POST unsubscribes, once."""

from __future__ import annotations

import pytest
from django.core import signing
from django.test import Client

from channels_app import unsubscribe
from channels_app.ledger import QueueRequest, do_queue_message
from channels_app.models import Message, MessageTransition
from channels_app.templating import render, template_context
from customers.models import Consent, ConsentChange, Customer, Event, SuppressedIdentifier

pytestmark = pytest.mark.django_db
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


@pytest.fixture
def customer():
    return Customer.objects.create(external_id="u1", email="maya@example.com")


@pytest.fixture
def message(customer):
    request = QueueRequest(customer_id=customer.pk, channel="email", category="marketing", idempotency_key="m1",
                           content={"subject": "Sale", "html": "<p>Hi</p>"}, journey_id=42)
    return do_queue_message(request).message


@pytest.fixture
def client():
    # CSRF checks on, as in production: mail providers' one-click POSTs carry no token.
    return Client(enforce_csrf_checks=True)


def path_of(url: str) -> str:
    return url.removeprefix("https://chorus.acme.example")


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.PUBLIC_URL = "https://chorus.acme.example"


def snapshot() -> tuple:
    return (
        list(Consent.objects.values_list("channel", "category", "status", "source")),
        ConsentChange.objects.count(),
        Event.objects.count(),
        SuppressedIdentifier.objects.count(),
        MessageTransition.objects.count(),
        list(Message.objects.values_list("status", flat=True)),
    )


def test_get_shows_a_confirmation_page_and_changes_nothing(client, message):
    before = snapshot()

    response = client.get(path_of(unsubscribe.message_unsubscribe_url(message.public_id)))

    assert response.status_code == 200
    assert b"Unsubscribe from these emails?" in response.content
    assert b'<form method="post"' in response.content
    assert response["Cache-Control"].startswith("max-age=0")
    assert snapshot() == before


def test_one_click_post_unsubscribes_from_email_marketing(client, customer, message):
    url = path_of(unsubscribe.message_unsubscribe_url(message.public_id))

    response = client.post(url, ONE_CLICK_BODY, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert b"You're unsubscribed" in response.content
    assert list(Consent.objects.values_list("customer", "channel", "category", "status", "source")) == [
        (customer.pk, "email", "marketing", "unsubscribed", "one-click unsubscribe")
    ]
    assert list(ConsentChange.objects.values_list("previous_status", "status", "source")) == [
        ("", "unsubscribed", "one-click unsubscribe")
    ]
    assert SuppressedIdentifier.objects.count() == 2  # address and person: they outlive erasure
    (event,) = Event.objects.all()
    assert (event.customer_id, event.name, event.source) == (customer.pk, "message_unsubscribed", "chorus")
    assert event.properties == {
        "message_id": str(message.public_id), "channel": "email", "category": "marketing", "journey_id": 42,
    }
    # No ledger status means "unsubscribed": the message keeps its own.
    assert Message.objects.get().status == "queued"


def test_repeated_posts_are_idempotent(client, message):
    url = path_of(unsubscribe.message_unsubscribe_url(message.public_id))
    client.post(url, ONE_CLICK_BODY, content_type="application/x-www-form-urlencoded")
    after_first = snapshot()

    response = client.post(url, ONE_CLICK_BODY, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert snapshot() == after_first


def test_the_confirmation_button_posts_back_to_the_same_url(client, message):
    url = path_of(unsubscribe.message_unsubscribe_url(message.public_id))

    response = client.post(url, {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    assert Consent.objects.get().status == "unsubscribed"


@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_token_is_refused_and_changes_nothing(client, message, method):
    token = unsubscribe.message_token(message.public_id)
    payload, _, signature = token.partition(":")
    forged = signing.Signer(salt="another salt").sign_object({"m": str(message.public_id), "x": 1})
    before = snapshot()

    for bad in (payload + ":" + signature[:-2] + "xx", forged, "nonsense"):
        response = getattr(client, method)(f"/u/{bad}/")
        assert response.status_code == 400
        assert b"This link is not valid" in response.content
    assert snapshot() == before


def test_token_for_a_deleted_message_is_refused(client, message):
    url = path_of(unsubscribe.message_unsubscribe_url(message.public_id))
    Message.objects.all().delete()

    assert client.post(url).status_code == 400
    assert Consent.objects.count() == 0


def test_template_unsubscribe_url_names_customer_and_journey(client, customer):
    context = template_context(customer, journey={"id": 7, "name": "Winback"})

    url = render("{{ unsubscribe_url }}", context)

    assert url.startswith("https://chorus.acme.example/u/")
    token = url.removeprefix("https://chorus.acme.example/u/").removesuffix("/")
    assert signing.Signer(salt=unsubscribe.SALT).unsign_object(token) == {"c": customer.pk, "ch": "email", "cat": "marketing", "j": 7}
    response = client.post(path_of(url), ONE_CLICK_BODY, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert Consent.objects.get(customer=customer).status == "unsubscribed"
    assert Event.objects.get().properties == {
        "message_id": None, "channel": "email", "category": "marketing", "journey_id": 7,
    }


def test_other_methods_are_not_allowed(client, message):
    url = path_of(unsubscribe.message_unsubscribe_url(message.public_id))
    before = snapshot()

    assert client.put(url).status_code == 405
    assert snapshot() == before


def test_list_unsubscribe_headers_are_exact(message):
    token = unsubscribe.message_token(message.public_id)

    assert unsubscribe.list_unsubscribe_headers(str(message.public_id)) == {
        "List-Unsubscribe": f"<https://chorus.acme.example/u/{token}/>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_the_pages_name_the_channel_the_link_unsubscribes_from(client, customer):
    token = unsubscribe.customer_token(customer.pk, channel="sms", category="marketing")
    page = client.get(path_of(unsubscribe.url_for_token(token))).content.decode()
    assert "Unsubscribe from these text messages?" in page
    assert "You will no longer\n    receive marketing text messages from us." in page
    assert customer.email not in page  # an SMS link does not show the email address

    done = client.post(path_of(unsubscribe.url_for_token(token))).content.decode()
    assert "no more marketing text messages from us" in done
    assert Consent.objects.get(customer=customer, channel="sms").status == "unsubscribed"
