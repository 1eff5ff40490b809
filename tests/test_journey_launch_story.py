"""The launch story: cart recovery across SMS and push, ending in a $415 conversion.

A loyal customer abandons a cart with a $280 dress at 21:14 on a Tuesday, her time. The
live journey "Cart recovery" enters her on the event, waits 45 minutes, sends an SMS
personalised from the event, waits for an order until 09:00 her time, sends a push, and
waits again. She orders the next evening: the journey credits the $415 order to the
touch sequence SMS → push and she exits. Nothing more is sent. Time moves with
time-machine; the engine runs as operators run it (`manage.py run_due_steps`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command

from channels_app.models import Message, MessageStatus, OutboxMessage
from customers.enums import Channel, PushPlatform
from customers.models import ContactPoint, Customer
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, ExitReason
from tests.api_factories import opted_in
from tests.journey_factories import make_live_journey, node

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
TUESDAY_2114 = dt.datetime(2026, 11, 24, 21, 14, tzinfo=NEW_YORK)
SMS_BODY = (
    "Hi {{ customer.first_name }}, your {{ event.product_name }} (${{ event.price }}) "
    "is waiting. It pairs beautifully with {{ event.accessories | join: ' and ' }}."
)


def cart_recovery_graph() -> dict:
    nodes = [
        node("entry", "entry", trigger="event", event="Cart Abandoned",
             filters=[{"property": "cart_value", "op": "gte", "value": 100}]),
        node("wait45", "delay", mode="duration", amount=45, unit="minutes"),
        node("sms", "send", channel="sms", content={"sms": {"body": SMS_BODY}}),
        node("until_morning", "wait_for_event", mode="event", event="Order Completed",
             timeout={"until": {"time": "09:00"}}),
        node("push", "send", channel="push",
             content={"push": {"title": "Still thinking it over?", "body": "Your {{ event.product_name }} is still in your bag."}}),
        node("after_push", "wait_for_event", mode="event", event="Order Completed",
             timeout={"amount": 3, "unit": "days"}),
        node("done", "exit"),
    ]
    edges = [
        {"from": "entry", "port": "out", "to": "wait45"},
        {"from": "wait45", "port": "out", "to": "sms"},
        {"from": "sms", "port": "out", "to": "until_morning"},
        {"from": "until_morning", "port": "happened", "to": "done"},
        {"from": "until_morning", "port": "timed_out", "to": "push"},
        {"from": "push", "port": "out", "to": "after_push"},
        {"from": "after_push", "port": "happened", "to": "done"},
        {"from": "after_push", "port": "timed_out", "to": "done"},
    ]
    return {"nodes": nodes, "edges": edges}


@pytest.fixture
def maya(db):
    customer = Customer.objects.create(
        external_id="maya-17", email="maya@example.com", phone="+12125550117",
        timezone="America/New_York", traits={"first_name": "Maya", "loyalty_tier": "gold"},
    )
    ContactPoint.objects.create(customer=customer, channel=Channel.SMS, address="+12125550117")
    ContactPoint.objects.create(
        customer=customer, channel=Channel.PUSH, platform=PushPlatform.IOS, address="fcm-token-maya"
    )
    return opted_in(customer)


@pytest.fixture
def cart_recovery(db):
    return make_live_journey(
        cart_recovery_graph(), name="Cart recovery", goal_event="Order Completed",
        goal_window_seconds=7 * 24 * 3600, goal_value_property="revenue", exit_on_conversion=True,
    )


def track(client, event: str, properties: dict, message_id: str):
    response = client.post(
        "/api/v1/track",
        {"userId": "maya-17", "event": event, "properties": properties, "messageId": message_id},
        format="json",
    )
    assert response.status_code == 200, response.content


def run_due_steps(capture):
    with capture(execute=True):
        call_command("run_due_steps", stdout=open("/dev/null", "w"))


def steps_of(enrollment) -> list[tuple[str, str]]:
    return list(EnrollmentStep.objects.filter(enrollment=enrollment).values_list("node_id", "outcome"))


def test_cart_recovery_sends_sms_then_push_and_credits_the_order_to_both(
    settings, ingest_client, maya, cart_recovery, django_capture_on_commit_callbacks
):
    settings.CHORUS_ENGINE_INLINE = True
    capture = django_capture_on_commit_callbacks
    with time_machine.travel(TUESDAY_2114, tick=False) as clock:
        # 21:14 Tuesday: the cart is abandoned; she enters and starts the 45-minute delay.
        with capture(execute=True):
            track(ingest_client, "Cart Abandoned", {
                "cart_value": 280, "product_name": "Silk wrap dress", "price": 280,
                "accessories": ["the gold hoops", "the suede clutch"],
            }, "cart-1")
        enrollment = Enrollment.objects.get(journey=cart_recovery, customer=maya)
        assert (enrollment.current_node, enrollment.state) == ("wait45", EnrollmentState.ACTIVE)
        assert enrollment.due_at == TUESDAY_2114 + dt.timedelta(minutes=45)
        assert Message.objects.count() == 0

        # 21:58:59: not yet.
        clock.move_to(dt.datetime(2026, 11, 24, 21, 58, 59, tzinfo=NEW_YORK))
        run_due_steps(capture)
        assert Message.objects.count() == 0

        # 21:59: the SMS goes out, personalised from the event.
        clock.move_to(dt.datetime(2026, 11, 24, 21, 59, tzinfo=NEW_YORK))
        run_due_steps(capture)
        sms = Message.objects.get()
        assert (sms.channel, sms.status, sms.category) == (Channel.SMS, MessageStatus.SENT, "marketing")
        assert sms.content == {
            "body": "Hi Maya, your Silk wrap dress ($280) is waiting. "
                    "It pairs beautifully with the gold hoops and the suede clutch."
        }
        assert OutboxMessage.objects.get(message=sms).to == "+12125550117"
        enrollment.refresh_from_db()
        assert (enrollment.current_node, enrollment.state) == ("until_morning", EnrollmentState.WAITING)
        # Waits for the order until 09:00 Wednesday, her time.
        assert enrollment.due_at == dt.datetime(2026, 11, 25, 9, 0, tzinfo=NEW_YORK)

        # 08:59:59 Wednesday: still waiting; 09:00: the push.
        clock.move_to(dt.datetime(2026, 11, 25, 8, 59, 59, tzinfo=NEW_YORK))
        run_due_steps(capture)
        assert Message.objects.count() == 1
        clock.move_to(dt.datetime(2026, 11, 25, 9, 0, 0, tzinfo=NEW_YORK))
        run_due_steps(capture)
        push = Message.objects.get(channel=Channel.PUSH)
        assert push.status == MessageStatus.SENT
        assert push.content == {"title": "Still thinking it over?", "body": "Your Silk wrap dress is still in your bag."}
        assert push.sent_at == dt.datetime(2026, 11, 25, 9, 0, tzinfo=NEW_YORK)

        # Wednesday 19:42: she orders. The journey converts and she exits at once.
        clock.move_to(dt.datetime(2026, 11, 25, 19, 42, tzinfo=NEW_YORK))
        with capture(execute=True):
            track(ingest_client, "Order Completed", {"revenue": 415, "order_id": "A-1009"}, "order-1")
        enrollment.refresh_from_db()
        assert enrollment.state == EnrollmentState.EXITED
        assert enrollment.exit_reason == ExitReason.CONVERTED
        assert enrollment.converted_at == dt.datetime(2026, 11, 25, 19, 42, tzinfo=NEW_YORK)
        assert enrollment.conversion_value == Decimal("415.00")
        assert [t["channel"] for t in enrollment.touch_sequence] == ["sms", "push"]
        assert [t["message_id"] for t in enrollment.touch_sequence] == [sms.pk, push.pk]
        assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.CONVERTED}

        # Days later: nothing else is ever sent.
        clock.move_to(dt.datetime(2026, 12, 1, 12, 0, tzinfo=NEW_YORK))
        run_due_steps(capture)
        assert Message.objects.count() == 2
        assert OutboxMessage.objects.count() == 2

    assert steps_of(enrollment) == [
        ("entry", "entered"),
        ("wait45", "delayed"),
        ("sms", "sent"),
        ("until_morning", "waiting"),
        ("until_morning", "timed_out"),
        ("push", "sent"),
        ("after_push", "waiting"),
        ("after_push", "converted"),
        ("after_push", "exited"),
    ]
