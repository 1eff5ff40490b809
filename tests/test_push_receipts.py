"""Push receipts: the service worker or app posts "shown", "clicked", "dismissed" for one
message, under a signed per-message token (channels_app.push_receipts)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from channels_app import tracking
from channels_app.ledger import (
    QueueRequest,
    claim_for_sending,
    do_queue_message,
    do_transition_message,
)
from channels_app.models import Message, MessageStatus
from channels_app.providers import Delivery
from channels_app.providers.push_common import notification
from customers.models import Customer, Event

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
PUBLIC = "https://chorus.acme.example"
WOKEN: list[int] = []


def remember(message_id: int) -> None:
    WOKEN.append(message_id)


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.PUBLIC_URL = PUBLIC
    settings.CHORUS_ENGAGEMENT_LISTENERS = ["tests.test_push_receipts.remember"]
    WOKEN.clear()


def queue(channel: str = "push", key: str = "p1") -> Message:
    customer, _ = Customer.objects.get_or_create(external_id="u1")
    message = do_queue_message(QueueRequest(customer_id=customer.pk, channel=channel, category="marketing",
                                            idempotency_key=key, content={"title": "Hi", "body": "There"})).message
    claim_for_sending(message.pk, at=T0)
    do_transition_message(message.pk, MessageStatus.SENT, at=T0)
    return message


def post(client, message: Message, event: str, *, at: dt.datetime = T0 + dt.timedelta(minutes=1)):
    path = tracking.receipt_url(str(message.public_id)).removeprefix(PUBLIC)
    with time_machine.travel(at, tick=False):
        return client.post(f"{path}/{event}/")


def state(message: Message) -> tuple:
    message.refresh_from_db()
    return message.status, message.delivered_at, message.clicked_at, message.dismissed_at


def test_every_push_payload_names_its_signed_receipt_url():
    delivery = Delivery(message_id=1, public_id="0b3d7c9e-0000-4000-8000-000000000001", channel="push",
                        category="marketing", to="https://push.example/sub", content={"title": "Hi", "body": "There"},
                        idempotency_key="k")

    fields = notification(delivery)

    assert fields["receipt_url"].startswith(f"{PUBLIC}/t/p/")
    assert tracking.read_receipt(fields["receipt_url"].removeprefix(f"{PUBLIC}/t/p/")) == delivery.public_id


def test_shown_marks_the_message_delivered(client, django_capture_on_commit_callbacks):
    message = queue()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, message, "shown")

    assert (response.status_code, response["Access-Control-Allow-Origin"]) == (204, "*")
    assert state(message) == ("delivered", T0 + dt.timedelta(minutes=1), None, None)
    assert list(message.transitions.filter(to_status="delivered").values_list("detail", flat=True)) == ["push receipt: shown"]
    assert WOKEN == [message.pk]


def test_clicked_is_an_engagement_event_once_however_often_it_is_posted(client, django_capture_on_commit_callbacks):
    message = queue()
    clicked = T0 + dt.timedelta(minutes=2)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert post(client, message, "clicked", at=clicked).status_code == 204

    assert state(message) == ("clicked", None, clicked, None)
    assert list(Event.objects.values_list("name", "source_message_id")) == [("message_clicked", f"{message.public_id}:clicked")]
    assert message.transitions.filter(to_status="clicked").count() == 1


def test_a_late_shown_after_the_click_records_its_time_and_keeps_clicked(client):
    message = queue()
    post(client, message, "clicked", at=T0 + dt.timedelta(minutes=2))

    assert post(client, message, "shown", at=T0 + dt.timedelta(minutes=3)).status_code == 204

    assert state(message) == ("clicked", T0 + dt.timedelta(minutes=3), T0 + dt.timedelta(minutes=2), None)


def test_dismissed_means_shown_then_stamps_the_dismissal_once(client):
    message = queue()
    post(client, message, "dismissed", at=T0 + dt.timedelta(minutes=5))
    post(client, message, "dismissed", at=T0 + dt.timedelta(minutes=9))

    moment = T0 + dt.timedelta(minutes=5)
    assert state(message) == ("delivered", moment, None, moment)


def test_forged_tokens_unknown_events_and_other_channels_change_nothing(client):
    message, email = queue(), queue("email", key="e1")
    before = (state(message), state(email))
    forged = tracking.receipt_url(str(message.public_id)).removeprefix(PUBLIC)[:-2] + "xx"

    assert client.post(f"{forged}/shown/").status_code == 400
    assert post(client, message, "opened").status_code == 400
    assert post(client, email, "shown").status_code == 404  # a push receipt for an email: no such push message
    assert client.get(tracking.receipt_url(str(message.public_id)).removeprefix(PUBLIC) + "/shown/").status_code == 405
    assert (state(message), state(email)) == before
    assert Event.objects.count() == 0
