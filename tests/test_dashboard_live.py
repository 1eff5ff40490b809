"""Live updates of the cadence dashboard: the ledger announces changes after commit, the
WebSocket relays them to people who may see the dashboard, and nothing is announced on a
channel layer that cannot reach other processes."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group

from channels_app.ledger import (
    QueueRequest,
    claim_many_for_sending,
    do_queue_message,
    record_sent_many,
)
from customers.models import Customer
from orchestrator.asgi import application
from orchestrator.dashboards import live
from orchestrator.roles import Role

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
AT = dt.datetime(2026, 3, 11, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def role_groups(db):
    """A transactional test starts with empty tables: the roles' groups come back here."""
    for role in Role:
        Group.objects.get_or_create(name=role.value)


def socket_for(client) -> WebsocketCommunicator:
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return WebsocketCommunicator(application, "/ws/dashboards/cadence/", headers=[ORIGIN, (b"cookie", cookie)])


def send_one(key: str) -> None:
    customer, _ = Customer.objects.get_or_create(external_id="ada")
    pk = do_queue_message(QueueRequest(customer_id=customer.pk, channel="email", category="marketing",
                                       idempotency_key=key, at=AT)).message.pk
    claim_many_for_sending([pk], at=AT)
    record_sent_many([(pk, "outbox", key)], at=AT)


def test_an_open_dashboard_hears_that_its_numbers_changed(client, make_user, settings):
    settings.CHANNEL_LAYERS = IN_MEMORY  # one process here: the in-memory layer reaches the socket
    client.force_login(make_user(Role.MESSAGING))

    async def watch():
        tab = socket_for(client)
        assert (await tab.connect())[0]
        await get_channel_layer().group_send(live.GROUP, {"type": live.EVENT})
        frame = await tab.receive_json_from(timeout=5)
        await tab.disconnect()
        return frame

    assert async_to_sync(watch)() == {"type": "dirty"}


@pytest.mark.parametrize(("who", "code"), [(Role.MARKETER, 4403), (None, 4401)], ids=["marketer", "anonymous"])
def test_the_socket_closes_for_people_who_may_not_see_the_dashboard(client, make_user, settings, who, code):
    settings.CHANNEL_LAYERS = IN_MEMORY
    if who:
        client.force_login(make_user(who))
    headers = [ORIGIN] if who is None else None

    async def attempt():
        tab = WebsocketCommunicator(application, "/ws/dashboards/cadence/", headers=headers) if headers else socket_for(client)
        connected, _ = await tab.connect()
        closed = await tab.receive_output(timeout=5)
        await tab.wait()
        return connected, closed

    connected, closed = async_to_sync(attempt)()
    assert connected
    assert closed == {"type": "websocket.close", "code": code}


@pytest.mark.django_db  # inside a test transaction, so commit callbacks wait for the capture
def test_a_send_is_announced_after_commit_when_the_layer_crosses_processes(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(live, "pushes_live", lambda: True)
    announced = []
    monkeypatch.setattr(live, "_send", lambda: announced.append("dirty"))
    with django_capture_on_commit_callbacks(execute=True):
        send_one("k1")
        assert announced == []  # not before commit
    assert announced == ["dirty"]


@pytest.mark.django_db
def test_nothing_is_announced_on_the_in_memory_layer(settings, django_capture_on_commit_callbacks):
    settings.CHANNEL_LAYERS = IN_MEMORY
    with django_capture_on_commit_callbacks() as callbacks:
        send_one("k2")
    assert live._send not in callbacks
