"""POST /api/v1/messages: one message now, through consent, the governor and the ledger."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection
from django_q.models import Schedule
from rest_framework.test import APIClient

from channels_app.models import Message, OutboxMessage
from customers.consent import do_erase_customer
from customers.models import Customer
from orchestrator.api.idempotency import IdempotentRequest
from orchestrator.api.messages import release_held_send
from orchestrator.roles import Role
from tests.api_factories import customer, opted_in

URL = "/api/v1/messages"
T0 = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
ORDER = {
    "customer": "ada",
    "channel": "sms",
    "category": "transactional",
    "content": {"sms": {"body": "Order {{ trigger.order }} shipped, {{ customer.first_name }}"}},
    "data": {"order": "A-17"},
}


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(T0, tick=False):
        yield


@pytest.fixture
def ada(db):
    return customer("ada", traits={"first_name": "Ada"}, phone="+14155550100", email="ada@example.com")


def post(client: APIClient, body: dict, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(URL, body, format="json", **headers)


def fields_of(response) -> dict:
    return {f["field"]: f["reason"] for f in response.json()["error"].get("fields", [])}


def test_sends_a_rendered_transactional_sms_now(api_client, ada, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api_client, ORDER)

    assert response.status_code == 201
    message = Message.objects.get()
    # The response is written as the transaction commits; delivery runs right after.
    assert response.json() == {
        "id": str(message.public_id), "channel": "sms", "status": "queued", "refusals": {}, "fallbacks": [],
        "held_until": None,
    }
    assert message.status == "sent"
    assert (message.category, message.content) == ("transactional", {"body": "Order A-17 shipped, Ada"})
    assert OutboxMessage.objects.get().to == "+14155550100"


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"category": "promo"}, "category", '"promo" is not a valid choice.'),
        ({"channel": "fax"}, "channel", '"fax" is not a valid choice.'),
        ({"channels": ["sms"]}, "channel", "Give exactly one of channel or channels."),
        ({"content": {"email": {"subject": "Hi", "body": "x"}}}, "content.sms", "Content is required for this channel."),
        ({"customer": ""}, "customer", "This field may not be blank."),
    ],
)
def test_invalid_fields_are_400_naming_the_field_and_nothing_is_sent(api_client, ada, change, field, reason):
    response = post(api_client, {**ORDER, **change})

    assert response.status_code == 400
    assert fields_of(response)[field] == reason
    assert Message.objects.count() == 0


def test_a_template_error_names_the_channel_content(api_client, ada):
    response = post(api_client, {**ORDER, "content": {"sms": {"body": "Hi {{ customer.first_name "}}})

    assert response.status_code == 400
    assert list(fields_of(response)) == ["content.sms"]
    assert Message.objects.count() == 0


def test_an_unknown_customer_is_404(api_client, db):
    response = post(api_client, {**ORDER, "customer": "nobody"})

    assert (response.status_code, Message.objects.count()) == (404, 0)


def test_a_channel_without_consent_falls_back_to_the_next(api_client, ada, django_capture_on_commit_callbacks):
    opted_in(ada, "email")
    body = {
        "customer": "ada", "channels": ["sms", "email"], "category": "marketing",
        "content": {"sms": {"body": "20% off"}, "email": {"subject": "Sale", "body": "20% off"}},
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = post(api_client, body)

    assert response.status_code == 201
    data = response.json()
    assert (data["channel"], data["status"], list(data["refusals"])) == ("email", "queued", ["sms"])
    assert sorted(Message.objects.values_list("channel", "status")) == [("email", "sent"), ("sms", "suppressed")]


def test_a_repeated_idempotency_key_replays_the_first_response_and_sends_nothing(api_client, ada, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = post(api_client, ORDER, key="order-A-17")
    with django_capture_on_commit_callbacks(execute=True):
        again = post(api_client, ORDER, key="order-A-17")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert (Message.objects.count(), OutboxMessage.objects.count()) == (1, 1)


def test_a_key_of_255_characters_is_accepted_and_replays(api_client, ada):
    key = "k" * 255

    first, again = post(api_client, ORDER, key=key), post(api_client, ORDER, key=key)

    assert (first.status_code, again.status_code, Message.objects.count()) == (201, 200, 1)
    assert len(Message.objects.get().idempotency_key) <= 255  # the key is hashed into the message's


def test_the_same_key_with_another_body_is_409(api_client, ada):
    post(api_client, ORDER, key="order-A-17")

    response = post(api_client, {**ORDER, "data": {"order": "A-18"}}, key="order-A-17")

    assert response.status_code == 409
    assert response.json()["error"]["message"] == "This Idempotency-Key was already used with a different request body."
    assert Message.objects.count() == 1


def test_keys_are_per_api_key(api_client, make_api_key, ada):
    _, clear = make_api_key(("manage",), name="other")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")

    assert post(api_client, ORDER, key="k1").status_code == 201
    assert post(other, ORDER, key="k1").status_code == 201
    assert Message.objects.count() == 2


def test_keys_without_the_manage_scope_are_refused(make_api_key, ada):
    _, clear = make_api_key(("ingest", "read"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")

    response = post(client, ORDER)

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This API key lacks the 'manage' scope this endpoint needs."
    assert Message.objects.count() == 0


def test_signed_in_people_need_journeys_edit(make_user, ada):
    messaging, marketer = APIClient(), APIClient()
    messaging.force_login(make_user(Role.MESSAGING))
    marketer.force_login(make_user(Role.MARKETER))

    assert post(messaging, ORDER).status_code == 403
    assert post(marketer, ORDER).status_code == 201


@pytest.mark.governed
def test_the_governor_holds_back_marketing_but_not_transactional(api_client, ada):
    opted_in(ada, "sms")
    promo = {**ORDER, "category": "marketing", "content": {"sms": {"body": "20% off. Reply STOP to opt out"}}}

    first = post(api_client, {**promo, "data": {"n": 1}})
    second = post(api_client, {**promo, "data": {"n": 2}})
    receipt = post(api_client, ORDER)

    assert (first.json()["status"], second.json()["status"], receipt.json()["status"]) == ("queued", "suppressed", "queued")
    assert list(second.json()["refusals"]) == ["sms"]


@pytest.mark.governed
def test_a_send_held_by_quiet_hours_goes_when_they_end_and_the_response_then_shows_it(
    api_client, ada, django_capture_on_commit_callbacks
):
    """21:00 in Tokyo at T0: the marketing SMS waits for 08:00 there (the default policy's
    quiet hours) instead of being dropped, and goes once."""
    Customer.objects.filter(pk=ada.pk).update(timezone="Asia/Tokyo")
    opted_in(ada, "sms")
    promo = {**ORDER, "category": "marketing", "content": {"sms": {"body": "20% off. Reply STOP to opt out"}}}
    response = post(api_client, promo, key="promo-1")
    morning = dt.datetime(2026, 11, 2, 23, 0, tzinfo=dt.UTC)  # 08:00 in Tokyo
    assert response.status_code == 201
    assert response.json() == {"id": None, "channel": "sms", "status": "deferred", "held_until": morning.isoformat(),
                               "refusals": {"sms": response.json()["refusals"]["sms"]}, "fallbacks": []}
    assert "quiet hours" in response.json()["refusals"]["sms"]
    assert not Message.objects.exists()
    (schedule,) = Schedule.objects.filter(func="orchestrator.api.messages.release_held_send")
    assert schedule.next_run == morning

    with time_machine.travel(morning, tick=False):
        for _ in range(2):  # django-q2 runs it; a duplicated run sends nothing more
            with django_capture_on_commit_callbacks(execute=True):
                release_held_send(*eval(schedule.args))
        replay = post(api_client, promo, key="promo-1")

    message = Message.objects.get()
    assert (message.channel, message.status, OutboxMessage.objects.count()) == ("sms", "sent", 1)
    assert replay.status_code == 200
    assert {k: replay.json()[k] for k in ("id", "status", "held_until")} == {
        "id": str(message.public_id), "status": "queued", "held_until": None}


@pytest.mark.governed
def test_a_held_send_of_a_customer_erased_meanwhile_sends_nothing(api_client, ada):
    Customer.objects.filter(pk=ada.pk).update(timezone="Asia/Tokyo")
    opted_in(ada, "sms")
    promo = {**ORDER, "category": "marketing", "content": {"sms": {"body": "20% off. Reply STOP to opt out"}}}
    assert post(api_client, promo, key="promo-1").json()["status"] == "deferred"
    (schedule,) = Schedule.objects.filter(func="orchestrator.api.messages.release_held_send")
    do_erase_customer(ada)
    assert IdempotentRequest.objects.get().send == {}  # their rendered text went with them
    with time_machine.travel(schedule.next_run, tick=False):
        assert release_held_send(*eval(schedule.args)) == "nothing to do"
    assert not Message.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent connections")
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_send_once(make_api_key):
    customer("ada", traits={"first_name": "Ada"}, phone="+14155550100")
    _, clear = make_api_key(("manage",), name="racer")
    barrier, codes = threading.Barrier(2), []

    def race():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
        barrier.wait()
        response = post(client, ORDER, key="order-A-17")
        codes.append((response.status_code, response.json()))
        connection.close()

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(code for code, _ in codes) == [200, 201], codes
    assert (Message.objects.count(), IdempotentRequest.objects.count()) == (1, 1)
