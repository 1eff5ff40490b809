"""Live in-app delivery over ws/inbox/<external_id>/, against the real ASGI application.

The consumer reaches the database through database_sync_to_async, which closes the test's
connection between calls: these tests commit for real (transaction=True).
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import override_settings

from channels_app.inbox_tokens import mint_inbox_token
from channels_app.models import Message, MessageTransition
from customers.models import Customer
from orchestrator.asgi import application
from orchestrator.dispatch import SendRequest, dispatch

pytestmark = pytest.mark.django_db(transaction=True)

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(hours=3)
IN_APP = {"CHORUS_PROVIDERS": {"email": "outbox", "sms": "outbox", "push": "outbox", "in_app": "inapp"}}
ORIGIN = [(b"origin", b"http://localhost")]


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(T0, tick=False) as traveller, override_settings(**IN_APP):
        yield traveller


@pytest.fixture
def ada() -> Customer:
    return Customer.objects.create(external_id="ada")


def queue_in_app(customer: Customer, key: str) -> Message:
    """Queued by dispatch, delivered after commit through the in-app provider."""
    request = SendRequest(
        customer_id=customer.pk, channel="in_app", category="marketing", idempotency_key=key,
        content={"title": "Gold is close", "body": "Two more orders."},
    )
    with transaction.atomic():
        dispatch(request)
    return Message.objects.get(idempotency_key=key)


def socket(external_id: str, token: str | None = None) -> WebsocketCommunicator:
    token = mint_inbox_token(external_id).token if token is None else token
    return WebsocketCommunicator(application, f"/ws/inbox/{external_id}/?token={token}", headers=ORIGIN)


def sends(msg: Message) -> list[tuple[str, str]]:
    return list(MessageTransition.objects.filter(message=msg, to_status="sent").values_list("from_status", "detail"))


def test_next_visit_message_arrives_on_connect_and_that_moment_is_the_send(ada, clock):
    msg = queue_in_app(ada, "k1")
    clock.move_to(T1)

    async def visit():
        tab = socket("ada")
        assert (await tab.connect())[0]
        frame = await tab.receive_json_from()
        await tab.disconnect()
        return frame

    frame = async_to_sync(visit)()

    msg.refresh_from_db()
    assert frame["type"] == "inbox"
    assert frame["unread"] == 1
    assert [(m["id"], m["content"]["title"], m["sent_at"]) for m in frame["messages"]] == [
        (str(msg.public_id), "Gold is close", "2026-11-02T12:00:00Z")
    ]
    assert (msg.status, msg.sent_at) == ("sent", T1)


def test_two_tabs_show_the_message_and_the_send_is_recorded_once(ada, clock):
    msg = queue_in_app(ada, "k1")
    clock.move_to(T1)

    async def two_tabs():
        first, second = socket("ada"), socket("ada")
        assert (await first.connect())[0]
        shown_first = await first.receive_json_from()
        clock.move_to(T1 + dt.timedelta(minutes=1))
        assert (await second.connect())[0]
        shown_second = await second.receive_json_from()
        await first.disconnect()
        await second.disconnect()
        return shown_first, shown_second

    shown_first, shown_second = async_to_sync(two_tabs)()

    msg.refresh_from_db()
    assert [m["id"] for m in shown_first["messages"]] == [m["id"] for m in shown_second["messages"]] == [str(msg.public_id)]
    assert msg.sent_at == T1
    assert sends(msg) == [("sending", "shown in the in-app inbox")]


def test_open_apps_get_a_new_message_live_and_it_is_sent_once(ada, clock):
    async def live():
        first, second = socket("ada"), socket("ada")
        for tab in (first, second):
            assert (await tab.connect())[0]
            assert (await tab.receive_json_from())["messages"] == []
        msg = await database_sync_to_async(queue_in_app)(ada, "k2")
        pushed = [await first.receive_json_from(timeout=5), await second.receive_json_from(timeout=5)]
        await first.disconnect()
        await second.disconnect()
        return msg, pushed

    msg, pushed = async_to_sync(live)()

    msg.refresh_from_db()
    assert [(p["type"], p["message"]["id"]) for p in pushed] == [("message", str(msg.public_id))] * 2
    assert (msg.status, msg.sent_at) == ("sent", T0)
    assert len(sends(msg)) == 1


def test_a_push_for_another_customer_is_not_shown(ada):
    bob = Customer.objects.create(external_id="bob")

    async def listen():
        tab = socket("ada")
        assert (await tab.connect())[0]
        await tab.receive_json_from()
        await database_sync_to_async(queue_in_app)(bob, "k3")
        nothing = await tab.receive_nothing(timeout=0.3)
        await tab.disconnect()
        return nothing

    assert async_to_sync(listen)() is True
    assert Message.objects.get().status == "sending"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/ws/inbox/ada/?token={bob}", 4403),  # a token for another customer
        ("/ws/inbox/ada/?token=forged", 4401),
        ("/ws/inbox/ada/", 4401),  # no token
        ("/ws/inbox/ghost/?token={ghost}", 4404),  # a valid token, no such customer
    ],
)
def test_connect_without_a_valid_token_for_this_customer_is_closed_with_the_reason(ada, path, code):
    msg = Message.objects.create(
        customer=ada, channel="in_app", category="marketing", status="sending", idempotency_key="k4"
    )
    url = path.format(bob=mint_inbox_token("bob").token, ghost=mint_inbox_token("ghost").token)

    async def attempt():
        tab = WebsocketCommunicator(application, url, headers=ORIGIN)
        await tab.connect()
        return await tab.receive_output()

    assert async_to_sync(attempt)() == {"type": "websocket.close", "code": code}
    msg.refresh_from_db()
    assert (msg.status, msg.sent_at) == ("sending", None)


def test_expired_token_is_closed_with_4401(ada, clock):
    token = mint_inbox_token("ada").token
    clock.move_to(T0 + dt.timedelta(hours=24, seconds=1))

    async def attempt():
        tab = socket("ada", token)
        await tab.connect()
        return await tab.receive_output()

    assert async_to_sync(attempt)() == {"type": "websocket.close", "code": 4401}


def test_app_marks_read_clicked_and_dismissed_over_the_socket_forward_only(ada):
    msg = queue_in_app(ada, "k1")

    async def act():
        tab = socket("ada")
        assert (await tab.connect())[0]
        await tab.receive_json_from()
        answers = []
        for action in ("clicked", "read", "dismissed", "dismissed"):
            await tab.send_json_to({"type": action, "id": str(msg.public_id)})
            answers.append(await tab.receive_json_from())
        await tab.send_json_to({"type": "archive", "id": str(msg.public_id)})
        answers.append(await tab.receive_json_from())
        await tab.send_to(text_data="not json")
        answers.append(await tab.receive_json_from())
        await tab.disconnect()
        return answers

    answers = async_to_sync(act)()

    msg.refresh_from_db()
    assert [(a["type"], a.get("action")) for a in answers] == [
        ("marked", "clicked"), ("marked", "read"), ("marked", "dismissed"), ("marked", "dismissed"),
        ("error", None), ("error", None),
    ]
    assert (msg.status, msg.clicked_at, msg.opened_at, msg.dismissed_at) == ("clicked", T0, T0, T0)
