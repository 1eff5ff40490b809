"""A send node's fallback after its message failed for good, asynchronously (orchestrator.engine.fallback).

End to end against local peers: a Web Push service that answers 410 (the subscription is
gone), Twilio's Messages API, both configured as provider accounts. The journey engine
queues the push and moves on; the delivery worker's push fails; the SMS peer receives the
fallback, once, whatever the worker does twice. A message sent by POST /api/v1/messages
with an ordered channel list falls back the same way.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs

import pytest
import time_machine
from django.utils import timezone
from django_q.models import Schedule
from py_vapid import Vapid02

from channels_app.delivery import deliver
from channels_app.ledger import do_transition_message
from channels_app.models import Message, ProviderConfig
from channels_app.providers import forget_provider_configs
from channels_app.providers.webpush import vapid_public_key
from customers.consent import do_set_consent
from customers.hooks import MessageMove
from customers.models import ContactPoint, Customer
from journeys.models import Journey
from orchestrator.api.idempotency import IdempotentRequest
from orchestrator.api.messages import release_held_send
from orchestrator.engine.control import trigger
from orchestrator.engine.fallback import fall_back, on_messages_moved, retry_fallback
from orchestrator.engine.models import Enrollment, EnrollmentStep
from orchestrator.governor.loading import forget_policy
from orchestrator.governor.models import FrequencyRule, GovernorSettings, QuietHoursRule
from orchestrator.roles import Role
from tests.api_factories import opted_in
from tests.journey_factories import linear_graph, make_live_journey, node
from tests.push_peers import Browser, Reply, StubServer, b64url

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 4, 15, 0, tzinfo=dt.UTC)
SID, TOKEN = "AC" + "1" * 32, "secret-token"
TWILIO_PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"
CONTENT = {
    "push": {"title": "Back in stock", "body": "The blue kettle is back, {{ customer.first_name }}."},
    "sms": {"body": "Acme: the blue kettle is back, {{ customer.first_name }}. Reply STOP to opt out"},
    "email": {"subject": "Back in stock", "html": '<p>The blue kettle is back.</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>'},
}


@pytest.fixture
def push_service():
    with StubServer(Reply(410, body="gone")) as server:
        yield server


@pytest.fixture
def twilio_api():
    with StubServer(Reply(201, {"Content-Type": "application/json"}, {"sid": "SM" + "a" * 32, "status": "queued"})) as server:
        yield server


@pytest.fixture(autouse=True)
def accounts(db, push_service, twilio_api):
    vapid = Vapid02()
    vapid.generate_keys()
    raw = vapid.private_key.private_numbers().private_value.to_bytes(32, "big")
    push = ProviderConfig(channel="push", provider="webpush", label="Web Push", is_primary=True,
                          options={"vapid_subject": "mailto:ops@shop.example"})
    push.set_secrets({"vapid_private_key": b64url(raw), "vapid_public_key": vapid_public_key(vapid)})
    sms = ProviderConfig(channel="sms", provider="twilio", label="Twilio", is_primary=True,
                         options={"from_number": "+14155550100", "api_base_url": twilio_api.url})
    sms.set_secrets({"account_sid": SID, "auth_token": TOKEN})
    ProviderConfig.objects.bulk_create([push, sms])
    forget_provider_configs()
    yield
    forget_provider_configs()


@pytest.fixture
def ada(push_service):
    customer = opted_in(Customer.objects.create(external_id="ada", traits={"first_name": "Ada"}, phone="+14155550199",
                                                email="ada@example.com"))
    ContactPoint.objects.create(customer=customer, channel="push", platform="web",
                                address=f"{push_service.url}/push/sub-1", keys=Browser().keys)
    return customer


def journey(channel="push", fallback=("sms", "email"), **config):
    send = node("nudge", "send", channel=channel, fallback=list(fallback),
                content={c: CONTENT[c] for c in {channel, *fallback} if c in CONTENT}, **config)
    return make_live_journey(linear_graph(node("entry", "entry", trigger="api"), send, node("done", "exit")))


def start(customer: Customer, graph_journey) -> Enrollment:
    result = trigger(graph_journey, customer, properties={}, key=f"{customer.external_id}-{timezone.now().isoformat()}")
    return Enrollment.objects.get(pk=result.enrollment_id)


def texts(twilio_api) -> list[dict]:
    return [{k: v[0] for k, v in parse_qs(r.body.decode()).items()} for r in twilio_api.to(TWILIO_PATH)]


def fallback_steps(enrollment: Enrollment) -> list[tuple[str, str]]:
    rows = EnrollmentStep.objects.filter(enrollment=enrollment, detail__contains="failed permanently")
    return list(rows.values_list("outcome", "detail"))


def test_a_push_the_service_says_is_gone_falls_back_to_sms(ada, push_service, twilio_api, django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False):
        enrollment = start(ada, journey())
        push = Message.objects.get(customer=ada)
        assert (push.channel, push.status) == ("push", "queued")
        assert Enrollment.objects.get(pk=enrollment.pk).state == "exited"  # the journey moved on

        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(push.pk) == "failed"

    assert [r.path for r in push_service.requests] == ["/push/sub-1"]
    assert ContactPoint.objects.get(customer=ada, channel="push").enabled is False
    sms = Message.objects.get(customer=ada, channel="sms")
    assert (sms.status, sms.idempotency_key, sms.node_id, sms.enrollment_id) == (
        "sent", f"enrollment:{enrollment.pk}:step:2:sms", "nudge", enrollment.pk)
    (text,) = texts(twilio_api)
    assert (text["To"], text["Body"]) == ("+14155550199", "Acme: the blue kettle is back, Ada. Reply STOP to opt out")
    assert fallback_steps(enrollment) == [
        ("sent", "push failed permanently (push subscription gone (410 Gone); disabled) → sms"),
    ]
    # The message's own history says why it was written.
    assert sms.transitions.order_by("pk").first().detail == fallback_steps(enrollment)[0][1]
    assert not Message.objects.filter(customer=ada, channel="email").exists()


def test_a_duplicated_or_replayed_fallback_never_sends_twice(ada, twilio_api, django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False):
        start(ada, journey())
        push = Message.objects.get(customer=ada)
        with django_capture_on_commit_callbacks(execute=True):
            deliver(push.pk)
            # A second worker, or a replay after a crash, handles the same failure again.
            assert fall_back(push.pk) is None
            assert fall_back(push.pk) is None

    assert len(texts(twilio_api)) == 1
    assert list(Message.objects.filter(customer=ada).order_by("pk").values_list("channel", flat=True)) == ["push", "sms"]


def test_a_failed_fallback_falls_back_again_in_the_nodes_order(ada, twilio_api, django_capture_on_commit_callbacks):
    twilio_api.default = Reply(400, {"Content-Type": "application/json"},
                               {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400})
    with time_machine.travel(T0, tick=False):
        enrollment = start(ada, journey())
        with django_capture_on_commit_callbacks(execute=True):
            deliver(Message.objects.get(customer=ada).pk)

    channels = list(Message.objects.filter(customer=ada).order_by("pk").values_list("channel", "status"))
    assert channels == [("push", "failed"), ("sms", "failed"), ("email", "sent")]
    outcomes = fallback_steps(enrollment)
    assert [o for o, _ in outcomes] == ["sent", "sent"]
    assert outcomes[1][1].startswith("sms failed permanently (twilio: 400 code 21211") and outcomes[1][1].endswith("→ email")


def test_a_fallback_channel_the_customer_cannot_get_is_skipped(ada, twilio_api, django_capture_on_commit_callbacks):
    do_set_consent(ada, "sms", "marketing", "opted_out", source="test")
    with time_machine.travel(T0, tick=False):
        start(ada, journey())
        with django_capture_on_commit_callbacks(execute=True):
            deliver(Message.objects.get(customer=ada).pk)

    assert texts(twilio_api) == []
    assert list(Message.objects.filter(customer=ada).order_by("pk").values_list("channel", "status")) == [
        ("push", "failed"), ("email", "sent")]


def test_with_no_channel_available_the_suppression_and_its_reason_are_recorded(ada, django_capture_on_commit_callbacks):
    do_set_consent(ada, "sms", "marketing", "opted_out", source="test")
    with time_machine.travel(T0, tick=False):
        enrollment = start(ada, journey(fallback=("sms",)))
        with django_capture_on_commit_callbacks(execute=True):
            deliver(Message.objects.get(customer=ada).pk)

    sms = Message.objects.get(customer=ada, channel="sms")
    assert sms.status == "suppressed"
    ((outcome, detail),) = fallback_steps(enrollment)
    assert outcome == "suppressed"
    assert detail.startswith("push failed permanently (push subscription gone (410 Gone); disabled) → sms: suppressed (")


def test_a_send_without_a_fallback_list_does_nothing_more(ada, twilio_api, django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False):
        start(ada, journey(fallback=()))
        with django_capture_on_commit_callbacks(execute=True):
            deliver(Message.objects.get(customer=ada).pk)

    assert list(Message.objects.filter(customer=ada).values_list("channel", "status")) == [("push", "failed")]
    assert texts(twilio_api) == []


def test_an_undelivered_receipt_after_sending_also_falls_back(ada, twilio_api, django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False):
        start(ada, journey(channel="sms", fallback=("email",)))
        sms = Message.objects.get(customer=ada)
        deliver(sms.pk)
        with django_capture_on_commit_callbacks(execute=True):
            do_transition_message(sms.pk, "failed", detail="twilio: undelivered (30003 unreachable handset)")

    assert list(Message.objects.filter(customer=ada).order_by("pk").values_list("channel", "status")) == [
        ("sms", "failed"), ("email", "sent")]


def sms_quiet_hours_from_14_to_18_utc() -> None:
    """Nothing but SMS quiet hours, 14:00-18:00 UTC: T0 (15:00) is inside them."""
    GovernorSettings.objects.update_or_create(
        pk=GovernorSettings.SINGLETON_PK, defaults={"min_spacing_minutes": 0, "fallback_timezone": "UTC"})
    FrequencyRule.objects.all().delete()
    QuietHoursRule.objects.all().delete()
    QuietHoursRule.objects.create(channel="sms", start=dt.time(14, 0), end=dt.time(18, 0))
    forget_policy()


@pytest.mark.governed
def test_a_fallback_held_by_quiet_hours_is_tried_again_when_they_end(ada, twilio_api, django_capture_on_commit_callbacks):
    sms_quiet_hours_from_14_to_18_utc()
    with time_machine.travel(T0, tick=False):
        enrollment = start(ada, journey())
        with django_capture_on_commit_callbacks(execute=True):
            deliver(Message.objects.get(customer=ada).pk)
        assert not Message.objects.filter(customer=ada, channel="sms").exists()
        (schedule,) = Schedule.objects.filter(func="orchestrator.engine.fallback.retry_fallback")
        assert schedule.next_run == dt.datetime(2026, 3, 4, 18, 0, tzinfo=dt.UTC)
    with time_machine.travel(schedule.next_run, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert retry_fallback(*eval(schedule.args)) == "queued"  # what django-q2 runs then

    assert len(texts(twilio_api)) == 1
    assert [o for o, _ in fallback_steps(enrollment)] == ["deferred", "sent"]



@pytest.mark.parametrize("change", ["paused", "converted"])
def test_a_paused_journey_or_a_converted_customer_gets_no_fallback(ada, twilio_api, change, django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False):
        enrollment = start(ada, journey())
        if change == "paused":
            Journey.objects.filter(pk=enrollment.journey_id).update(status="paused")
        else:
            Enrollment.objects.filter(pk=enrollment.pk).update(exit_reason="converted")
        with django_capture_on_commit_callbacks(execute=True):
            deliver(Message.objects.get(customer=ada).pk)

    assert list(Message.objects.filter(customer=ada).values_list("channel", "status")) == [("push", "failed")]
    assert texts(twilio_api) == [] and fallback_steps(enrollment) == []


def test_a_best_channel_send_falls_back_by_the_same_choice_among_the_channels_left(ada, twilio_api, django_capture_on_commit_callbacks):
    Customer.objects.filter(pk=ada.pk).update(phone="")  # when the node chooses, push is all there is
    best = node("nudge", "send", channel="best", fallback=["push", "sms"], explore=0,
                content={c: CONTENT[c] for c in ("push", "sms")})
    graph_journey = make_live_journey(linear_graph(node("entry", "entry", trigger="api"), best))
    with time_machine.travel(T0, tick=False):
        enrollment = start(ada, graph_journey)
        push = Message.objects.get(customer=ada)
        Customer.objects.filter(pk=ada.pk).update(phone="+14155550199")  # added before the worker sends
        with django_capture_on_commit_callbacks(execute=True):
            deliver(push.pk)

    assert list(Message.objects.filter(customer=ada).order_by("pk").values_list("channel", "status")) == [
        ("push", "failed"), ("sms", "sent")]
    assert [o for o, _ in fallback_steps(enrollment)] == ["sent"]
    assert len(texts(twilio_api)) == 1


# --- Sends by the API (POST /api/v1/messages with an ordered channel list) ---------------

ORDER = {
    "customer": "ada", "channels": ["push", "sms", "email"], "category": "transactional",
    "content": {
        "push": {"title": "Order A-17", "body": "Your order shipped, {{ customer.first_name }}."},
        "sms": {"body": "Acme: order A-17 shipped, {{ customer.first_name }}."},
        "email": {"subject": "Order A-17 shipped", "body": "It is on its way."},
    },
}


def post_order(api_client, key: str | None, body: dict = ORDER):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api_client.post("/api/v1/messages", body, format="json", **headers)


@pytest.mark.parametrize("key", ["order-A-17", None])
def test_an_api_send_whose_push_is_gone_falls_back_to_sms_once(
    api_client, ada, twilio_api, key, django_capture_on_commit_callbacks
):
    with time_machine.travel(T0, tick=False):
        with django_capture_on_commit_callbacks(execute=True):  # the push is delivered after commit: 410
            response = post_order(api_client, key)
        push = Message.objects.get(customer=ada, channel="push")
        # The failure handled again: a second worker, a replayed receipt.
        assert fall_back(push.pk) is None
        with django_capture_on_commit_callbacks(execute=True):
            on_messages_moved([MessageMove(push.pk, "sending", "failed", T0)])

    assert response.status_code == 201
    assert (response.json()["channel"], response.json()["refusals"]) == ("push", {})
    (text,) = texts(twilio_api)
    assert (text["To"], text["Body"]) == ("+14155550199", "Acme: order A-17 shipped, Ada.")
    sms = Message.objects.get(customer=ada, channel="sms")
    assert list(Message.objects.filter(customer=ada).order_by("pk").values_list("channel", "status")) == [
        ("push", "failed"), ("sms", "sent")]
    reason = "push subscription gone (410 Gone); disabled"
    assert sms.transitions.order_by("pk").first().detail == f"push failed permanently ({reason}) → sms"
    assert IdempotentRequest.objects.get().fallbacks == [{
        "failed": {"id": str(push.public_id), "channel": "push", "reason": reason},
        "id": str(sms.public_id), "channel": "sms", "status": "queued", "refusals": {}, "at": T0.isoformat(),
        "held_until": None,
    }]


def test_a_replay_and_the_customers_message_history_show_the_fallback(
    api_client, ada, client, make_user, django_capture_on_commit_callbacks
):
    with time_machine.travel(T0, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            first = post_order(api_client, "order-A-17")
        again = post_order(api_client, "order-A-17")
        history = api_client.get("/api/v1/customers/ada/messages").json()

    push, sms = Message.objects.filter(customer=ada).order_by("pk")
    assert again.status_code == 200
    assert again.json() == {
        "id": str(push.public_id), "channel": "push", "status": "queued", "refusals": {}, "held_until": None,
        "fallbacks": [{
            "failed": {"id": str(push.public_id), "channel": "push", "reason": "push subscription gone (410 Gone); disabled"},
            "id": str(sms.public_id), "channel": "sms", "status": "queued", "refusals": {}, "at": T0.isoformat(),
            "held_until": None,
        }],
    }
    assert first.json()["fallbacks"] == []  # in this test, delivery runs after the response
    shown = {m["id"]: m for m in history["results"]}[str(sms.public_id)]
    assert shown["transitions"][0]["detail"] == "push failed permanently (push subscription gone (410 Gone); disabled) → sms"
    # …and so does the profile's timeline, on the message itself.
    client.force_login(make_user(Role.MESSAGING))
    page = client.get(f"/customers/{ada.pk}/").content.decode()
    assert '<p class="tl-why">Push failed permanently (push subscription gone (410 Gone); disabled) → sms</p>' in page


def test_an_api_fallback_skips_a_channel_the_customer_cannot_get(api_client, ada, twilio_api, django_capture_on_commit_callbacks):
    Customer.objects.filter(pk=ada.pk).update(phone="")
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        post_order(api_client, "order-A-17")

    assert texts(twilio_api) == []
    assert list(Message.objects.filter(customer=ada).order_by("pk").values_list("channel", "status")) == [
        ("push", "failed"), ("sms", "suppressed"), ("email", "sent")]
    (entry,) = IdempotentRequest.objects.get().fallbacks
    assert (entry["channel"], list(entry["refusals"])) == ("email", ["sms"])


def test_an_api_send_on_one_channel_has_nothing_to_fall_back_to(api_client, ada, twilio_api, django_capture_on_commit_callbacks):
    body = {**ORDER, "channels": ["push"]}
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        post_order(api_client, "order-A-17", body)

    assert list(Message.objects.filter(customer=ada).values_list("channel", "status")) == [("push", "failed")]
    assert (texts(twilio_api), IdempotentRequest.objects.get().fallbacks) == ([], [])


@pytest.mark.governed
def test_an_api_fallback_held_by_quiet_hours_is_sent_when_they_end_once(
    api_client, ada, twilio_api, django_capture_on_commit_callbacks
):
    sms_quiet_hours_from_14_to_18_utc()
    promo = {"customer": "ada", "channels": ["push", "sms"], "category": "marketing",
             "content": {"push": CONTENT["push"], "sms": CONTENT["sms"]}}
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        post_order(api_client, "promo-1", promo)  # the push answers 410; the SMS is in quiet hours
    assert not Message.objects.filter(customer=ada, channel="sms").exists()
    (entry,) = IdempotentRequest.objects.get().fallbacks
    assert (entry["id"], entry["channel"], entry["status"], entry["held_until"]) == (
        None, "sms", "deferred", "2026-03-04T18:00:00+00:00")
    (schedule,) = Schedule.objects.filter(func="orchestrator.api.messages.release_held_send")
    assert schedule.next_run == dt.datetime(2026, 3, 4, 18, 0, tzinfo=dt.UTC)

    for _ in range(2):  # what django-q2 runs then; a second run (a duplicated task) sends nothing
        with time_machine.travel(schedule.next_run, tick=False), django_capture_on_commit_callbacks(execute=True):
            release_held_send(*eval(schedule.args))

    (text,) = texts(twilio_api)
    assert text["Body"] == "Acme: the blue kettle is back, Ada. Reply STOP to opt out"
    sms = Message.objects.get(customer=ada, channel="sms")
    assert sms.transitions.order_by("pk").first().detail == "held back by the frequency governor, released"
    (entry,) = IdempotentRequest.objects.get().fallbacks
    assert (entry["id"], entry["channel"], entry["status"], entry["held_until"]) == (str(sms.public_id), "sms", "queued", None)
    replay = post_order(api_client, "promo-1", promo).json()
    assert replay["fallbacks"][0]["id"] == str(sms.public_id)
