"""Journeys on the customer profile: the steps their journeys took, merged into the timeline
with its own filter, and a small section listing their enrollments."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import customers.views
from channels_app.models import Message, MessageStatus
from customers.enums import Category, Channel, ConsentStatus
from customers.models import ConsentChange, Customer, Event, ProfileUpdate
from orchestrator.engine.control import trigger
from orchestrator.engine.events import handle_events
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, ExitReason
from orchestrator.roles import Role
from orchestrator.timeline import FILTERS, Cursor, Kind
from tests.api_factories import opted_in
from tests.journey_factories import make_live_journey, node

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False) as clock:
        yield clock


@pytest.fixture
def marketer(client, make_user):
    client.force_login(make_user(Role.MARKETER))
    return client


@pytest.fixture
def ada():
    return opted_in(Customer.objects.create(
        external_id="u-ada", phone="+14155550101", timezone="Asia/Tokyo", traits={"first_name": "Ada"}
    ))


def cart_graph() -> dict:
    nodes = [
        node("entry", "entry", trigger="api"),
        node("sms", "send", channel="sms", content={"sms": {"body": "Hi {{ customer.first_name }}"}}),
        node("bought", "wait_for_event", mode="event", event="Order Completed", timeout={"amount": 1, "unit": "days"}),
        node("done", "exit"),
    ]
    nodes[2]["label"] = "Ordered?"
    edges = [
        {"from": "entry", "port": "out", "to": "sms"},
        {"from": "sms", "port": "out", "to": "bought"},
        {"from": "bought", "port": "happened", "to": "done"},
        {"from": "bought", "port": "timed_out", "to": "done"},
    ]
    return {"nodes": nodes, "edges": edges}


@pytest.fixture
def cart(db):
    return make_live_journey(cart_graph(), name="Cart recovery", goal_event="Order Completed")


def url(customer, **params) -> str:
    base = reverse("customers:profile", args=[customer.pk])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def shown(response) -> list[tuple[str, int]]:
    return [(kind, int(pk)) for kind, pk in re.findall(r'data-kind="(\w+)" data-id="(\d+)"', response.content.decode())]


def next_url(response) -> str:
    found = re.search(r'<button type="button" class="btn" hx-get="([^"]+)"', response.content.decode())
    return found.group(1).replace("&amp;", "&") if found else ""


def enter(journey, customer, capture) -> Enrollment:
    with capture(execute=True):
        result = trigger(journey, customer, properties={}, key=f"k-{customer.pk}")
    return Enrollment.objects.get(pk=result.enrollment_id)


def steps(enrollment) -> list[tuple[str, int]]:
    return [("journey", pk) for pk in enrollment.steps.order_by("-at", "-id").values_list("pk", flat=True)]


_keys = iter(range(10**6))


def bare_enrollment(journey, customer) -> Enrollment:
    return Enrollment.objects.create(
        journey=journey, version=journey.live_version, customer=customer, current_node="entry", trigger_key=f"t-{next(_keys)}"
    )


def step(enrollment, at, node_id="sms", outcome="sent", **fields) -> EnrollmentStep:
    return EnrollmentStep.objects.create(
        enrollment=enrollment, journey_id=enrollment.journey_id, version_id=enrollment.version_id,
        node_id=node_id, kind="send", outcome=outcome, at=at, **fields,
    )


# --- In the merged timeline -----------------------------------------------------------------


def test_journey_steps_are_merged_into_the_timeline_newest_first(marketer, ada, cart, django_capture_on_commit_callbacks):
    viewed = Event.objects.create(customer=ada, name="Product Viewed", occurred_at=NOW - timedelta(minutes=5), source="test")
    enrollment = enter(cart, ada, django_capture_on_commit_callbacks)
    sms = Message.objects.get(customer=ada)
    entered, sent, waiting = enrollment.steps.order_by("id")

    response = marketer.get(url(ada))

    # One instant for the three steps and the SMS: the message they caused comes first,
    # then the steps, newest step first.
    assert shown(response) == [
        ("message", sms.pk), ("journey", waiting.pk), ("journey", sent.pk), ("journey", entered.pk), ("event", viewed.pk),
    ]


def test_a_journey_step_reads_journey_node_and_outcome(marketer, ada, cart, django_capture_on_commit_callbacks):
    enrollment = enter(cart, ada, django_capture_on_commit_callbacks)
    html = marketer.get(url(ada, kind="journeys")).content.decode()
    assert re.search(
        r'<span class="tl-title">Cart recovery</span>\s*<span class="tl-step-node mono">sms</span>\s*'
        r'<span class="badge badge-sent">Message queued</span>',
        html,
    )
    assert '<span class="badge badge-waiting">Waiting</span>' in html
    assert "<span>for Order Completed until 2026-06-16 12:00 UTC</span>" in html
    assert '<span>left by <span class="mono">out</span></span>' in html
    assert f'<a href="{reverse("journeys:enrollment", args=[cart.pk, enrollment.pk])}">Path</a>' in html
    assert 'datetime="2026-06-15T12:00:00+00:00" title="2026-06-15 12:00:00 UTC">21:00</time>' in html  # Tokyo


def test_the_journeys_filter_shows_only_journey_steps(marketer, ada, cart, django_capture_on_commit_callbacks):
    Event.objects.create(customer=ada, name="Product Viewed", occurred_at=NOW - timedelta(minutes=5), source="test")
    enrollment = enter(cart, ada, django_capture_on_commit_callbacks)
    response = marketer.get(url(ada, kind="journeys"), **HTMX)
    assert shown(response) == steps(enrollment)
    assert 'aria-current="true">Journeys</a>' in response.content.decode()


def test_a_channel_filter_leaves_journey_steps_out(marketer, ada, cart, django_capture_on_commit_callbacks):
    enter(cart, ada, django_capture_on_commit_callbacks)
    sms = Message.objects.get(customer=ada)
    assert shown(marketer.get(url(ada, channel="sms"))) == [("message", sms.pk)]
    assert shown(marketer.get(url(ada, kind="journeys", channel="sms"))) == []


def test_journeys_is_one_of_the_filters():
    assert FILTERS["journeys"] == frozenset({Kind.JOURNEY})
    assert Kind.JOURNEY in FILTERS["all"]


def test_at_one_instant_a_step_sits_between_the_event_and_what_it_caused(marketer, ada, cart):
    enrollment = bare_enrollment(cart, ada)
    t = NOW - timedelta(hours=1)
    e = Event.objects.create(customer=ada, name="Order Completed", occurred_at=t, source="test")
    s = step(enrollment, t, outcome="converted")
    p = ProfileUpdate.objects.create(customer=ada, changes={"tier": "gold"}, occurred_at=t, source="journey")
    m = Message.objects.create(
        customer=ada, channel=Channel.SMS, category=Category.MARKETING, status=MessageStatus.SENT, queued_at=t,
        idempotency_key="k-1",
    )
    c = ConsentChange.objects.create(
        customer=ada, channel=Channel.SMS, category=Category.MARKETING, status=ConsentStatus.OPTED_OUT, source="STOP",
        changed_at=t,
    )
    assert shown(marketer.get(url(ada))) == [
        ("consent", c.pk), ("message", m.pk), ("profile", p.pk), ("journey", s.pk), ("event", e.pk),
    ]


def test_load_older_pages_through_steps_without_gaps_or_repeats(marketer, ada, cart, monkeypatch):
    monkeypatch.setattr(customers.views, "TIMELINE_PAGE_SIZE", 3)
    enrollment = bare_enrollment(cart, ada)
    same = NOW - timedelta(hours=2)
    newest = step(enrollment, NOW - timedelta(minutes=1))
    s1, s2, s3 = (step(enrollment, same, node_id=f"n{i}") for i in range(3))
    e1 = Event.objects.create(customer=ada, name="Viewed", occurred_at=same, source="test")
    p1 = ProfileUpdate.objects.create(customer=ada, changes={"a": 1}, occurred_at=same, source="test")
    older = step(enrollment, NOW - timedelta(days=2))
    expected = [("journey", newest.pk), ("profile", p1.pk), ("journey", s3.pk), ("journey", s2.pk),
                ("journey", s1.pk), ("event", e1.pk), ("journey", older.pk)]

    seen, response = [], marketer.get(url(ada))
    while True:
        seen += shown(response)
        if not next_url(response):
            break
        response = marketer.get(next_url(response), **HTMX)
    assert seen == expected


def test_cursor_names_journey_steps():
    cursor = Cursor(NOW, Kind.JOURNEY, 42)
    assert str(cursor) == "1781524800000000.journey.42"
    assert Cursor.parse(str(cursor)) == cursor


# --- The profile's journeys section -----------------------------------------------------------


def test_profile_lists_the_customers_enrollments(marketer, ada, cart, django_capture_on_commit_callbacks, frozen_clock):
    enrollment = enter(cart, ada, django_capture_on_commit_callbacks)
    frozen_clock.move_to(NOW + timedelta(hours=3))
    order = Event.objects.create(
        customer=ada, name="Order Completed", occurred_at=NOW + timedelta(hours=3), properties={"revenue": 99}, source="test"
    )
    with django_capture_on_commit_callbacks(execute=True):
        handle_events([order.pk])
    enrollment.refresh_from_db()
    assert (enrollment.exit_reason, enrollment.conversion_value) == (ExitReason.CONVERTED, Decimal("99.00"))
    second = make_live_journey(cart_graph(), name="Welcome")
    enter(second, ada, django_capture_on_commit_callbacks)

    html = marketer.get(url(ada)).content.decode()

    section = html.split('<section class="card" id="journeys"', 1)[1].split("</section>", 1)[0]
    names = re.findall(r'title="This customer.s path through the journey">([^<]+)</a>', section)
    assert names == ["Welcome", "Cart recovery"]  # newest first
    assert '<span class="badge en-waiting">Waiting</span>' in section
    assert '<span class="badge en-exited en-converted" title="Converted (goal reached)">Converted</span>' in section
    assert 'At <span title="bought">Ordered?</span>' in section
    assert 'Ended at <span title="bought">Ordered?</span>' in section
    path = reverse("journeys:conversion_path", args=[cart.pk, enrollment.pk])
    assert f'just now</time> · 99.00 · <a href="{path}">Path to conversion</a></div>' in section
    assert f'href="{reverse("journeys:enrollment", args=[cart.pk, enrollment.pk])}"' in section


def test_profile_lists_the_newest_enrollments_and_points_to_the_timeline_for_the_rest(marketer, ada, cart, monkeypatch):
    monkeypatch.setattr(customers.views, "PROFILE_JOURNEYS", 2)
    for n in range(3):
        Enrollment.objects.create(
            journey=cart, version=cart.live_version, customer=ada, current_node="entry", trigger_key=f"t{n}",
            entered_at=NOW - timedelta(days=n), state=EnrollmentState.EXITED,
        )
    html = marketer.get(url(ada)).content.decode()
    section = html.split('<section class="card" id="journeys"', 1)[1].split("</section>", 1)[0]
    assert section.count("<li>") == 2
    assert "Older enrollments are in the timeline under Journeys." in section


def test_a_customer_never_in_a_journey_has_no_section_and_no_journey_queries(marketer, ada):
    Event.objects.create(customer=ada, name="Viewed", occurred_at=NOW, source="test")
    with CaptureQueriesContext(connection) as queries:
        html = marketer.get(url(ada)).content.decode()
    assert 'id="journeys"' not in html
    steps_read = [q["sql"] for q in queries if "orchestrator_enrollmentstep" in q["sql"]]
    assert steps_read == []
    assert marketer.get(url(ada, kind="journeys")).status_code == 200


def _queries(client, customer) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url(customer)).status_code == 200
    return len(queries)


def test_profile_query_count_does_not_grow_with_journeys_or_steps(marketer, ada, cart, django_assert_max_num_queries):
    bare_enrollment(cart, ada)
    few = _queries(marketer, ada)
    for n in range(5):
        journey = make_live_journey(cart_graph(), name=f"Journey {n}")
        enrollment = bare_enrollment(journey, ada)
        for minutes in range(12):
            step(enrollment, NOW - timedelta(minutes=minutes + 60 * n))
    assert _queries(marketer, ada) == few
    # The eleven of a profile (see test_web_profile), plus the enrollments and the steps.
    with django_assert_max_num_queries(13):
        marketer.get(url(ada))
