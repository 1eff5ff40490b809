"""The journey pages: the list with live counts, one journey's steps with per-node numbers,
one customer's path, who may open them, and the journey records in the admin.

Per-node numbers come from running the engine for real (the API trigger, then
`manage.py run_due_steps` with time moved by time-machine), as operators run it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import journeys.views
from channels_app.models import Message
from customers.enums import Channel
from customers.models import ContactPoint, Customer, Event, Segment
from journeys import summaries
from journeys.models import Journey, JourneyStatus, JourneyVersion
from orchestrator.engine.control import trigger
from orchestrator.engine.events import handle_events
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, ExitReason
from orchestrator.roles import Role
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
    client.force_login(make_user(Role.MARKETER, username="mara"))
    return client


def follow_up_graph() -> dict:
    """Enter on the API, SMS, wait a day for an order; without one, a push."""
    nodes = [
        node("entry", "entry", trigger="api"),
        node("sms", "send", channel="sms", content={"sms": {"body": "Hi {{ customer.first_name }}, thanks for visiting"}}),
        node("bought", "wait_for_event", mode="event", event="Order Completed", timeout={"amount": 1, "unit": "days"}),
        node("push", "send", channel="push", content={"push": {"title": "Still deciding?", "body": "Your picks are saved."}}),
        node("done", "exit"),
    ]
    nodes[2]["label"] = "Ordered within a day?"
    nodes[3]["label"] = "Nudge push"
    edges = [
        {"from": "entry", "port": "out", "to": "sms"},
        {"from": "sms", "port": "out", "to": "bought"},
        {"from": "bought", "port": "happened", "to": "done"},
        {"from": "bought", "port": "timed_out", "to": "push"},
        {"from": "push", "port": "out", "to": "done"},
    ]
    return {"nodes": nodes, "edges": edges}


def follow_up(name="Follow-up", **fields) -> Journey:
    return make_live_journey(follow_up_graph(), name=name, goal_event="Order Completed", **fields)


_people = iter(range(10**6))


def person(first_name="Pat", *, phone=True, push=False, timezone_name="") -> Customer:
    n = next(_people)
    customer = Customer.objects.create(
        external_id=f"u-{n}", phone=f"+1415555{n:04d}" if phone else "", timezone=timezone_name,
        traits={"first_name": first_name},
    )
    if push:
        ContactPoint.objects.create(customer=customer, channel=Channel.PUSH, address=f"fcm-token-{n}")
    return opted_in(customer)


def enrol(journey, customer, capture) -> Enrollment:
    with capture(execute=True):
        result = trigger(journey, customer, properties={}, key=f"k-{customer.pk}")
    assert result.entered, result.reason
    return Enrollment.objects.get(pk=result.enrollment_id)


def run_due_steps(capture):
    with capture(execute=True):
        call_command("run_due_steps", stdout=open("/dev/null", "w"))


def order(customer, at, capture, revenue=80):
    event = Event.objects.create(
        customer=customer, name="Order Completed", occurred_at=at, properties={"revenue": revenue}, source="test"
    )
    with capture(execute=True):
        handle_events([event.pk], now=at)


def enrollment(journey, customer, *, state=EnrollmentState.ACTIVE, converted=False, entered_at=None) -> Enrollment:
    """A row as the engine leaves it, for the list's counts."""
    return Enrollment.objects.create(
        journey=journey, version=journey.live_version, customer=customer, state=state, current_node="entry",
        trigger_key=f"t-{next(_people)}", entered_at=entered_at or timezone.now(),
        exit_reason=ExitReason.CONVERTED if converted else "", converted_at=timezone.now() if converted else None,
    )


# --- parsing what the pages show ----------------------------------------------------------


def list_rows(response) -> dict[str, dict[str, str]]:
    """Per journey name: entered, in progress, converted and the version cell's text."""
    html = response.content.decode()
    rows = {}
    for body in re.findall(r'<tr data-journey="\d+">(.*?)</tr>', html, re.S):
        name = re.search(r'class="row-link" href="[^"]+">([^<]+)</a>', body).group(1)
        cells = {key: re.search(rf"data-{key}>([\d,]+)", body).group(1) for key in ("entered", "in-progress", "converted")}
        cells["versions"] = " ".join(re.sub(r"<[^>]+>", " ", re.search(r"data-versions>(.*?)</td>", body, re.S).group(1)).split())
        rows[name] = cells
    return rows


def node_ids(html: str) -> list[str]:
    return re.findall(r'<li class="node-card node-\w+" id="node-([\w-]+)">', html)


def node_numbers(html: str) -> dict[str, dict[str, str]]:
    """Per node id: each statistic as shown (a number, or — where it does not apply)."""
    cards = re.split(r'<li class="node-card node-\w+" id="node-', html)[1:]
    numbers = {}
    for card in cards:
        node_id = card.split('"', 1)[0]
        stats = re.findall(r'data-stat="(\w+)"[^>]*><dt>[^<]*</dt><dd>(.*?)</dd>', card)
        numbers[node_id] = {key: re.sub(r"<[^>]+>", "", value) for key, value in stats}
    return numbers


def exits(html: str, node_id: str) -> list[str]:
    card = html.split(f'id="node-{node_id}">', 1)[1].split("</li>\n          \n", 1)[0]
    found = re.findall(r'<li data-port="\w+">(.*?)</li>', card, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", item).split()) for item in found]


# --- The list -------------------------------------------------------------------------------


def test_list_counts_entered_in_progress_and_converted_exactly(marketer):
    busy, quiet = follow_up("Busy"), follow_up("Quiet")
    people = [person() for _ in range(5)]
    enrollment(busy, people[0])
    enrollment(busy, people[1], state=EnrollmentState.WAITING)
    enrollment(busy, people[2], state=EnrollmentState.EXITED)
    enrollment(busy, people[3], state=EnrollmentState.EXITED, converted=True)
    enrollment(busy, people[4], state=EnrollmentState.WAITING, converted=True)  # converted, stays in
    enrollment(quiet, people[0], state=EnrollmentState.EXITED)

    rows = list_rows(marketer.get(reverse("journeys:list")))

    assert {name: (r["entered"], r["in-progress"], r["converted"]) for name, r in rows.items()} == {
        "Busy": ("5", "3", "2"),
        "Quiet": ("1", "0", "0"),
    }


def test_list_shows_status_category_priority_tags_and_who_edited_last(marketer, make_user):
    editor = make_user(Role.MARKETER, username="eve")
    follow_up("Cart recovery", priority=8, tags=["lifecycle", "sms"], updated_by=editor)
    html = marketer.get(reverse("journeys:list")).content.decode()
    assert '<span class="badge js-live">Live</span>' in html
    assert ">Marketing · priority 8</span>" in html
    assert '<span class="tag">lifecycle</span><span class="tag">sms</span>' in html
    assert '<div class="sub">by eve</div>' in html
    assert "just now</time>" in html


def test_list_shows_the_live_version_and_a_pending_draft(marketer):
    edited = follow_up("Edited")
    JourneyVersion.objects.create(journey=edited, number=2, graph=follow_up_graph())
    draft = Journey.objects.create(name="Never published")
    JourneyVersion.objects.create(journey=draft, number=1, graph={"nodes": [], "edges": []})
    follow_up("Untouched")

    rows = list_rows(marketer.get(reverse("journeys:list")))

    assert rows["Edited"]["versions"] == "v1 draft v2 pending"
    assert rows["Never published"]["versions"] == "not published draft v1"
    assert rows["Untouched"]["versions"] == "v1"


def test_status_filter_swaps_only_the_results_for_htmx(marketer):
    follow_up("Live one")
    Journey.objects.create(name="A draft")
    Journey.objects.create(name="Paused one", status=JourneyStatus.PAUSED)

    response = marketer.get(reverse("journeys:list"), {"status": "draft"}, **HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="results"')
    assert "<html" not in html
    assert list(list_rows(response)) == ["A draft"]
    assert '1 draft journey\n' in html
    assert 'href="/journeys/?status=draft" hx-get="/journeys/?status=draft" hx-target="#results" hx-swap="outerHTML" hx-push-url="true" aria-current="true">Draft <span class="seg-count">1</span>' in html
    assert "HX-Request" in response["Vary"]


def test_status_filter_without_htmx_is_the_whole_page(marketer):
    follow_up("Live one")
    Journey.objects.create(name="A draft")
    response = marketer.get(reverse("journeys:list"), {"status": "live"})
    assert "<html" in response.content.decode()
    assert list(list_rows(response)) == ["Live one"]


def test_unknown_status_filter_shows_every_journey(marketer):
    follow_up("Live one")
    Journey.objects.create(name="A draft")
    assert list(list_rows(marketer.get(reverse("journeys:list"), {"status": "bogus"}))) == ["A draft", "Live one"]


def test_a_filter_with_no_match_says_so(marketer):
    follow_up("Live one")
    html = marketer.get(reverse("journeys:list"), {"status": "archived"}, **HTMX).content.decode()
    assert "No archived journeys." in html


def test_list_is_paginated_keeping_the_filter(marketer, monkeypatch):
    monkeypatch.setattr(journeys.views, "LIST_PAGE_SIZE", 2)
    for name in ("A", "B", "C"):
        Journey.objects.create(name=name)
    first = marketer.get(reverse("journeys:list"), {"status": "draft"})
    assert list(list_rows(first)) == ["A", "B"]
    assert 'href="?status=draft&amp;page=2"' in first.content.decode()
    second = marketer.get(reverse("journeys:list"), {"status": "draft", "page": 2}, **HTMX)
    assert list(list_rows(second)) == ["C"]
    assert "Page 2 of 2" in second.content.decode()


def test_empty_list_explains_journeys_come_from_the_api_for_now(marketer):
    html = marketer.get(reverse("journeys:list")).content.decode()
    assert "No journeys yet." in html
    assert "<code>POST /api/v1/journeys</code>" in html
    assert '<a class="btn" href="/api/docs/">Open the API reference</a>' in html
    assert "Name one above to open it on the canvas" in html


def _list_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("journeys:list")).status_code == 200
    return len(queries)


def test_list_query_count_does_not_grow_with_journeys_or_enrollments(marketer, make_user):
    editor = make_user(Role.MARKETER, username="eve")
    follow_up("First", updated_by=editor)
    few = _list_queries(marketer)
    for n in range(12):
        journey = follow_up(f"Journey {n}", updated_by=editor)
        JourneyVersion.objects.create(journey=journey, number=2, graph=follow_up_graph())
        for _ in range(3):
            enrollment(journey, person())
    assert _list_queries(marketer) == few
    # session, user, roles, page count, page, enrollment counts, status counts
    assert few <= 7


# --- One journey: header, steps in graph order, per-node numbers ------------------------------


@pytest.fixture
def ran(frozen_clock, django_capture_on_commit_callbacks):
    """Three people through the follow-up journey, as the engine runs it.

    Ann orders within the day (converts, exits at the wait). Bob never orders: the wait
    times out and the push goes. Cal has no phone (SMS suppressed) and enters late, so he
    is still waiting.
    """
    capture = django_capture_on_commit_callbacks
    journey = follow_up(description="After a visit.", holdout_percent=0, priority=7, tags=["lifecycle"])
    ann = person("Ann", timezone_name="Asia/Tokyo")
    bob = person("Bob", push=True)
    cal = person("Cal", phone=False)
    enrol(journey, ann, capture)
    enrol(journey, bob, capture)
    order(ann, NOW + timedelta(hours=2), capture, revenue=415)
    frozen_clock.move_to(NOW + timedelta(hours=20))
    enrol(journey, cal, capture)
    frozen_clock.move_to(NOW + timedelta(days=1))
    run_due_steps(capture)
    return {"journey": journey, "ann": ann, "bob": bob, "cal": cal}


def test_the_engine_left_the_expected_step_log(ran):
    # The page's numbers below are read from this log; this pins what they count.
    logged = list(EnrollmentStep.objects.order_by("enrollment_id", "at", "id").values_list("enrollment__customer__traits__first_name", "node_id", "outcome"))
    assert logged == [
        ("Ann", "entry", "entered"), ("Ann", "sms", "sent"), ("Ann", "bought", "waiting"),
        ("Ann", "bought", "converted"), ("Ann", "bought", "exited"),
        ("Bob", "entry", "entered"), ("Bob", "sms", "sent"), ("Bob", "bought", "waiting"),
        ("Bob", "bought", "timed_out"), ("Bob", "push", "sent"), ("Bob", "done", "exited"),
        ("Cal", "entry", "entered"), ("Cal", "sms", "suppressed"), ("Cal", "bought", "waiting"),
    ]


def test_detail_shows_per_node_numbers_exactly(marketer, ran):
    html = marketer.get(reverse("journeys:detail", args=[ran["journey"].pk])).content.decode()
    assert node_numbers(html) == {
        "entry": {"entered": "3", "here": "—", "sent": "—", "converted": "0"},
        "sms": {"entered": "3", "here": "—", "sent": "2", "converted": "0"},
        "bought": {"entered": "3", "here": "1", "sent": "—", "converted": "1"},
        "push": {"entered": "1", "here": "—", "sent": "1", "converted": "0"},
        "done": {"entered": "1", "here": "—", "sent": "—", "converted": "0"},
    }
    assert '<span class="note-suppressed">1 suppressed</span>' in html
    assert '<span class="note-exited">1 exited here</span>' in html  # Ann, on reaching the goal


def test_detail_shows_totals_across_versions(marketer, ran):
    html = marketer.get(reverse("journeys:detail", args=[ran["journey"].pk])).content.decode()
    totals = dict(re.findall(r'id="stat-([\w-]+)">\s*<span class="stat-label">[^<]*</span>\s*<span class="stat-value">([^<]*)</span>', html))
    assert totals == {"entered": "3", "in-progress": "1", "converted": "1", "value": "415"}
    assert "33.3% of entrants" in html


def test_goal_value_leaves_out_the_control_groups_purchases(marketer, ran):
    Enrollment.objects.filter(customer=ran["bob"]).update(holdout=True, converted_at=NOW, conversion_value=Decimal("100"))
    html = marketer.get(reverse("journeys:detail", args=[ran["journey"].pk])).content.decode()
    totals = dict(re.findall(r'id="stat-([\w-]+)">\s*<span class="stat-label">[^<]*</span>\s*<span class="stat-value">([^<]*)</span>', html))
    assert totals["value"] == "415"  # Ann's 415; Bob's 100 was in the control group
    assert "sum of revenue, control group left out" in html


def test_detail_lists_steps_in_graph_order_with_summaries_and_exits(marketer, ran):
    html = marketer.get(reverse("journeys:detail", args=[ran["journey"].pk])).content.decode()
    assert node_ids(html) == ["entry", "sms", "bought", "push", "done"]
    assert '<p class="node-summary">When triggered through the API</p>' in html
    assert '<p class="node-summary">SMS: Hi {{ customer.first_name }}, thanks for visiting</p>' in html
    assert '<p class="node-summary">Wait for Order Completed, at most 1 day</p>' in html
    assert '<span class="node-kind">Wait for event</span>\n                <span class="node-label">Ordered within a day?</span>' in html
    assert exits(html, "bought") == ["happened → done 0", "timed out → Nudge push 1"]
    assert exits(html, "push") == ["then → done 1"]
    assert exits(html, "done") == []


def test_detail_header_and_settings_in_words(marketer, make_user):
    publisher = make_user(Role.MARKETER, username="pia")
    journey = make_live_journey(
        follow_up_graph(), name="Win back", description="Bring them back.", goal_event="Order Completed",
        goal_filters=[{"property": "revenue", "op": "gte", "value": 50}], goal_window_seconds=3 * 86400,
        reentry="cooldown", reentry_cooldown_seconds=7 * 86400, holdout_percent=10, entry_limit=500,
    )
    journey.live_version.published_by = publisher
    journey.live_version.save()
    html = marketer.get(reverse("journeys:detail", args=[journey.pk])).content.decode()
    assert "<h1>Win back</h1>" in html
    assert '<p class="page-sub journey-description">Bring them back.</p>' in html
    assert "<dd>Order Completed, if revenue ≥ 50 within 3 days of entering, worth its revenue; exits on conversion</dd>" in html
    assert "<dd>Again once out, at least 7 days after the last entry</dd>" in html
    assert "<dd>10% kept as a control group, sent nothing</dd>" in html
    assert "<dd>500 people, 0 so far</dd>" in html
    assert "just now</time> by pia" in html  # the versions list: published at / by


def test_detail_polls_its_numbers_every_ten_seconds(marketer, ran):
    url = reverse("journeys:detail", args=[ran["journey"].pk])
    html = marketer.get(url).content.decode()
    assert f'<div id="journey-live" class="journey-live" hx-get="{url}" hx-trigger="every 10s" hx-swap="outerHTML">' in html


def test_the_polled_fragment_has_fresh_numbers_and_nothing_else(marketer, ran, frozen_clock, django_capture_on_commit_callbacks):
    url = reverse("journeys:detail", args=[ran["journey"].pk])
    frozen_clock.move_to(NOW + timedelta(days=2))
    run_due_steps(django_capture_on_commit_callbacks)  # Cal times out; he has no push device either

    response = marketer.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="journey-live")

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="journey-live"')
    assert "Recent enrollments" not in html and "Versions" not in html
    assert node_numbers(html)["bought"]["here"] == "0"
    assert node_numbers(html)["push"] == {"entered": "2", "here": "—", "sent": "1", "converted": "0"}
    assert "HX-Target" in response["Vary"]


def test_recent_enrollments_link_each_customer_and_path(marketer, ran):
    journey = ran["journey"]
    html = marketer.get(reverse("journeys:detail", args=[journey.pk])).content.decode()
    rows = re.findall(r'<tr data-enrollment="(\d+)">', html)
    assert rows == [str(e) for e in Enrollment.objects.filter(journey=journey).order_by("-entered_at", "-id").values_list("pk", flat=True)]
    ann = Enrollment.objects.get(customer=ran["ann"])
    assert f'href="{reverse("customers:profile", args=[ran["ann"].pk])}">Ann</a>' in html
    assert f'<a href="{reverse("journeys:enrollment", args=[journey.pk, ann.pk])}">Path →</a>' in html
    assert '<span class="badge en-exited en-converted" title="Converted (goal reached)">Converted</span>' in html
    assert "415.00" in html


def test_recent_enrollments_page_as_a_fragment(marketer, ran, monkeypatch):
    monkeypatch.setattr(journeys.views, "ENROLLMENTS_PAGE_SIZE", 2)
    url = reverse("journeys:detail", args=[ran["journey"].pk])
    first = marketer.get(url).content.decode()
    assert f'hx-get="{url}?page=2" hx-target="#enrollments" hx-swap="outerHTML">Older →</a>' in first
    second = marketer.get(url, {"page": 2}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="enrollments").content.decode()
    assert second.lstrip().startswith('<section class="card results" id="enrollments"')
    assert re.findall(r'<tr data-enrollment="(\d+)">', second) == [str(Enrollment.objects.get(customer=ran["ann"]).pk)]


def test_a_draft_only_journey_shows_its_steps_without_numbers_or_polling(marketer):
    journey = Journey.objects.create(name="Sketch")
    JourneyVersion.objects.create(journey=journey, number=1, graph=follow_up_graph())
    html = marketer.get(reverse("journeys:detail", args=[journey.pk])).content.decode()
    assert node_ids(html) == ["entry", "sms", "bought", "push", "done"]
    assert node_numbers(html) == {n: {} for n in ["entry", "sms", "bought", "push", "done"]}
    assert "every 10s" not in html
    assert "Not published yet: no one has entered it" in html
    assert "No one has entered yet." in html


def test_an_earlier_version_can_be_shown_by_number(marketer, ran):
    journey = ran["journey"]
    graph = follow_up_graph()
    graph["nodes"][1]["config"]["content"]["sms"]["body"] = "Version two"
    v2 = JourneyVersion.objects.create(journey=journey, number=2, graph=graph, published_at=timezone.now())
    journey.live_version = v2
    journey.save()
    url = reverse("journeys:detail", args=[journey.pk])
    live = marketer.get(url).content.decode()
    assert "SMS: Version two" in live
    assert node_numbers(live)["sms"]["entered"] == "0"
    earlier = marketer.get(url, {"version": 1}).content.decode()
    assert node_numbers(earlier)["sms"]["entered"] == "3"
    assert f'hx-get="{url}?version=1" hx-trigger="every 10s"' in earlier


@pytest.mark.parametrize("version", ["7", "one"])
def test_an_unknown_version_is_404(marketer, ran, version):
    assert marketer.get(reverse("journeys:detail", args=[ran["journey"].pk]), {"version": version}).status_code == 404


def test_unknown_journey_is_404(marketer):
    assert marketer.get(reverse("journeys:detail", args=[999999])).status_code == 404


def test_detail_query_count_does_not_grow_with_enrollments(marketer, ran, django_capture_on_commit_callbacks):
    url = reverse("journeys:detail", args=[ran["journey"].pk])
    marketer.get(url)  # warms the per-process caches (the content rules), which a second view reuses
    with CaptureQueriesContext(connection) as few:
        marketer.get(url)
    for _ in range(6):
        enrol(ran["journey"], person(), django_capture_on_commit_callbacks)
    with CaptureQueriesContext(connection) as many:
        marketer.get(url)
    assert len(many) == len(few)


# --- One customer's path --------------------------------------------------------------------


def test_enrollment_path_lists_every_step_in_their_zone_and_utc(marketer, ran):
    ann = Enrollment.objects.get(customer=ran["ann"])
    sms = Message.objects.get(enrollment_id=ann.pk)
    url = reverse("journeys:enrollment", args=[ran["journey"].pk, ann.pk])

    html = marketer.get(url).content.decode()

    rows = re.findall(r'<tr data-step="(\d+)">', html)
    assert rows == [str(pk) for pk in ann.steps.order_by("at", "id").values_list("pk", flat=True)]
    # 12:00 UTC is 21:00 in Tokyo; the order came two hours later.
    assert '<time datetime="2026-06-15T12:00:00+00:00">Mon 15 Jun, 21:00:00</time>\n            <div class="sub">15 Jun, 12:00:00 UTC</div>' in html
    assert '<time datetime="2026-06-15T14:00:00+00:00">Mon 15 Jun, 23:00:00</time>' in html
    assert "Times in Asia/Tokyo; UTC below" in html
    assert '<span class="badge badge-converted">Converted</span>' in html
    assert "Order Completed worth 415.00 after sms" in html
    assert '<span class="port">then</span> <span class="arrow" aria-hidden="true">→</span> Ordered within a day?' in html
    assert '<span class="ch ch-sms"><span class="ch-icon" aria-hidden="true"></span>SMS</span>' in html
    assert f'<div class="sub">{sms.summary}</div>' in html
    assert "Message in the admin" not in html  # marketers do not use the admin


def test_enrollment_path_links_the_message_in_the_admin_for_admins(client, make_user, ran):
    client.force_login(make_user(Role.ADMIN))
    ann = Enrollment.objects.get(customer=ran["ann"])
    sms = Message.objects.get(enrollment_id=ann.pk)
    html = client.get(reverse("journeys:enrollment", args=[ran["journey"].pk, ann.pk])).content.decode()
    assert f'<a href="{reverse("admin:channels_app_message_change", args=[sms.pk])}">Message in the admin</a>' in html


def test_enrollment_path_header_says_where_they_are_and_what_is_next(marketer, ran):
    cal = Enrollment.objects.get(customer=ran["cal"])
    html = marketer.get(reverse("journeys:enrollment", args=[ran["journey"].pk, cal.pk])).content.decode()
    assert '<span class="badge en-waiting">Waiting</span>' in html
    assert "<dt>At step</dt><dd>Ordered within a day? <code class=\"node-id\">bought</code></dd>" in html
    assert "<dt>Waiting until</dt>" in html and "· or Order Completed</dd>" in html
    assert "(they have no time zone)" in html
    assert '<span class="badge badge-suppressed">Suppressed</span>' in html
    assert '<td class="path-detail">sms: no phone number</td>' in html


def test_enrollment_of_another_journey_is_404(marketer, ran):
    other = follow_up("Other")
    ann = Enrollment.objects.get(customer=ran["ann"])
    assert marketer.get(reverse("journeys:enrollment", args=[other.pk, ann.pk])).status_code == 404


# --- Who may open the pages -------------------------------------------------------------------

PAGES = ["list", "detail", "path"]


def _page_url(page: str, ran) -> str:
    journey = ran["journey"]
    if page == "list":
        return reverse("journeys:list")
    if page == "detail":
        return reverse("journeys:detail", args=[journey.pk])
    return reverse("journeys:enrollment", args=[journey.pk, Enrollment.objects.get(customer=ran["ann"]).pk])


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", list(Role), ids=str)
def test_every_role_with_view_journeys_may_open_the_pages(client, make_user, ran, page, role):
    client.force_login(make_user(role))
    assert client.get(_page_url(page, ran)).status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_a_user_without_a_role_gets_403(client, make_user, ran, page):
    client.force_login(make_user(None))
    response = client.get(_page_url(page, ran))
    assert response.status_code == 403
    assert "Your account has no role yet." in response.content.decode()


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_users_are_sent_to_sign_in(client, ran, page):
    url = _page_url(page, ran)
    assert client.get(url)["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_the_pages_are_read_only(marketer, ran, method):
    for page in PAGES:
        assert getattr(marketer, method)(_page_url(page, ran)).status_code == 405


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_journeys_is_a_link_in_the_navigation_and_current_on_journey_pages(client, make_user, role):
    client.force_login(make_user(role))
    html = client.get(reverse("journeys:list")).content.decode()
    assert re.search(r'<a class="nav-link" href="/journeys/" aria-current="page">\s*<svg', html)
    other = client.get(reverse("customers:list")).content.decode()
    assert re.search(r'<a class="nav-link" href="/journeys/">\s*<svg', other)
    assert "Journeys arrive with the journey engine" not in other


# --- Summaries in words -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "config", "expected"),
    [
        ("entry", {"trigger": "event", "event": "Cart Abandoned", "filters": [{"property": "cart_value", "op": "gte", "value": 100}]},
         "When Cart Abandoned happens, if cart_value ≥ 100"),
        ("entry", {"trigger": "api"}, "When triggered through the API"),
        ("entry", {}, "Not configured yet"),
        ("delay", {"mode": "duration", "amount": 45, "unit": "minutes"}, "Wait 45 minutes"),
        ("delay", {"mode": "duration", "amount": 1, "unit": "days"}, "Wait 1 day"),
        ("delay", {"mode": "time_of_day", "time": "09:00", "weekdays": [0, 2]}, "Wait until the next 09:00 (Mon, Wed), their time"),
        ("delay", {"mode": "date_trait", "trait": "birthday", "offset_days": -3, "time": "10:00"},
         "Wait until their birthday − 3 days at 10:00, their time"),
        ("send", {"channel": "sms", "content": {"sms": {"body": "Hi {{ customer.first_name }}"}}}, "SMS: Hi {{ customer.first_name }}"),
        ("send", {"channel": "email", "content": {"email": {"subject": "Your cart", "html": "<p>x</p>"}}}, "Email: Your cart"),
        ("send", {"channel": "in_app", "content": {}}, "In-app: no content yet"),
        ("wait_for_event", {"mode": "event", "event": "Order Completed", "timeout": {"until": {"time": "09:00"}}},
         "Wait for Order Completed, at most until 09:00"),
        ("wait_for_event", {"mode": "engagement", "engagement": "clicked", "timeout": {"amount": 2, "unit": "days"}},
         "Wait for a click on the previous message, at most 2 days"),
        ("split", {"branches": [{"port": "vip", "label": "VIP", "condition": {}}]}, "First that holds: VIP; otherwise else"),
        ("random_split", {"branches": [{"port": "a", "weight": 3}, {"port": "b", "weight": 1}]}, "At random: a 75% · b 25%"),
        ("update_profile", {"trait": "tier", "value": "gold"}, 'Set tier to "gold"'),
        ("exit", {}, "End of the journey"),
    ],
)
def test_node_summaries(kind, config, expected):
    assert summaries.node_summary({"id": "n", "kind": kind, "config": config}) == expected


def test_segment_entry_is_summarised_by_the_segment_name(marketer):
    segment = Segment.objects.create(name="Lapsed app users", definition={"match": "all", "conditions": []})
    graph = {"nodes": [node("entry", "entry", trigger="segment", segment_id=segment.pk), node("done", "exit")],
             "edges": [{"from": "entry", "port": "out", "to": "done"}]}
    journey = make_live_journey(graph, name="Win back", reentry="once")
    html = marketer.get(reverse("journeys:detail", args=[journey.pk])).content.decode()
    assert "Everyone in segment “Lapsed app users”, then whoever joins it" in html


def test_a_long_message_is_cut_at_a_word():
    body = "Hello there " + "word " * 30
    summary = summaries.node_summary({"id": "s", "kind": "send", "config": {"channel": "sms", "content": {"sms": {"body": body}}}})
    assert summary.endswith("word…")
    assert len(summary) <= len("SMS: ") + summaries.SNIPPET + 1


def test_graph_order_puts_each_node_after_the_nodes_leading_into_it():
    graph = {
        "nodes": [node(i, k) for i, k in [("done", "exit"), ("tag", "update_profile"), ("a", "send"), ("ab", "random_split"),
                                         ("gold", "send"), ("vip", "split"), ("entry", "entry")]],
        "edges": [
            {"from": "entry", "port": "out", "to": "vip"},
            {"from": "vip", "port": "gold", "to": "gold"}, {"from": "vip", "port": "else", "to": "ab"},
            {"from": "ab", "port": "a", "to": "a"},
            {"from": "gold", "port": "out", "to": "tag"}, {"from": "a", "port": "out", "to": "tag"},
            {"from": "tag", "port": "out", "to": "done"},
        ],
    }
    graph["nodes"][5]["config"] = {"branches": [{"port": "gold", "condition": {}}]}
    graph["nodes"][3]["config"] = {"branches": [{"port": "a", "weight": 1}]}
    assert [n["id"] for n in summaries.graph_order(graph)] == ["entry", "vip", "gold", "ab", "a", "tag", "done"]


def test_graph_order_survives_a_loop_through_a_wait_and_lists_unreachable_nodes_last():
    graph = {
        "nodes": [node("orphan", "exit"), node("entry", "entry"), node("wait", "wait_for_event"), node("sms", "send")],
        "edges": [
            {"from": "entry", "port": "out", "to": "sms"}, {"from": "sms", "port": "out", "to": "wait"},
            {"from": "wait", "port": "timed_out", "to": "sms"},
        ],
    }
    assert [n["id"] for n in summaries.graph_order(graph)] == ["entry", "sms", "wait", "orphan"]


# --- The admin --------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user(Role.ADMIN, username="ada-admin"))
    return client


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_journey_records_render_in_the_admin(admin_client, ran):
    ann = Enrollment.objects.get(customer=ran["ann"])
    step = ann.steps.first()
    for model, obj in [(Journey, ran["journey"]), (JourneyVersion, ran["journey"].live_version), (Enrollment, ann), (EnrollmentStep, step)]:
        assert admin_client.get(admin_url(model, "changelist")).status_code == 200, model
        assert admin_client.get(admin_url(model, "change", obj.pk)).status_code == 200, model
    html = admin_client.get(admin_url(Enrollment, "change", ann.pk)).content.decode()
    assert f'href="{reverse("journeys:enrollment", args=[ran["journey"].pk, ann.pk])}">Path</a>' in html


def test_enrollments_are_searchable_by_external_id_and_filtered_by_journey_and_state(admin_client, ran):
    ann = Enrollment.objects.get(customer=ran["ann"])
    html = admin_client.get(admin_url(Enrollment, "changelist"), {"q": ran["ann"].external_id}).content.decode()
    assert re.findall(r'/admin/orchestrator/enrollment/(\d+)/change/', html) == [str(ann.pk)]
    html = admin_client.get(admin_url(Enrollment, "changelist"), {"journey__id__exact": ran["journey"].pk, "state": "waiting"}).content.decode()
    cal = Enrollment.objects.get(customer=ran["cal"])
    assert re.findall(r'/admin/orchestrator/enrollment/(\d+)/change/', html) == [str(cal.pk)]


@pytest.mark.parametrize("model", [Journey, Enrollment, EnrollmentStep])
def test_journey_records_cannot_be_added_changed_or_deleted_in_the_admin(admin_client, ran, model):
    obj = model.objects.order_by("pk").first()
    before = model.objects.values().get(pk=obj.pk)
    assert admin_client.post(admin_url(model, "change", obj.pk), {"name": "forged", "state": "exited"}).status_code == 403
    assert admin_client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert admin_client.get(admin_url(model, "add")).status_code == 403
    assert model.objects.values().get(pk=obj.pk) == before


def test_a_published_graph_is_read_only_in_the_admin(admin_client, ran):
    version = ran["journey"].live_version
    html = admin_client.get(admin_url(JourneyVersion, "change", version.pk)).content.decode()
    assert "<textarea" not in html
    assert '<pre class=\'chorus-json\'>' in html
    response = admin_client.post(admin_url(JourneyVersion, "change", version.pk), {"graph": '{"nodes": [], "edges": []}'})
    assert response.status_code == 403
    version.refresh_from_db()
    assert version.graph == follow_up_graph()


def test_a_draft_graph_is_edited_through_the_journey_service(admin_client, ran):
    journey = ran["journey"]
    draft = JourneyVersion.objects.create(journey=journey, number=2, graph=follow_up_graph())
    edited = follow_up_graph()
    edited["nodes"][1]["config"]["content"]["sms"]["body"] = "Edited in the admin"

    response = admin_client.post(admin_url(JourneyVersion, "change", draft.pk), {"graph": json.dumps(edited)})

    assert response.status_code == 302
    draft.refresh_from_db()
    journey.refresh_from_db()
    assert draft.graph == edited
    assert journey.updated_by == User.objects.get(username="ada-admin")
    assert journey.live_version.graph == follow_up_graph()


def test_a_draft_graph_without_nodes_and_edges_is_refused(admin_client, ran):
    draft = JourneyVersion.objects.create(journey=ran["journey"], number=2, graph=follow_up_graph())
    response = admin_client.post(admin_url(JourneyVersion, "change", draft.pk), {"graph": '{"nodes": 3}'})
    assert response.status_code == 200
    assert "Must be an object with lists" in response.content.decode()
    draft.refresh_from_db()
    assert draft.graph == follow_up_graph()


@pytest.mark.parametrize("role", [Role.MARKETER, Role.MESSAGING], ids=str)
def test_other_roles_cannot_open_journey_records_in_the_admin(client, make_user, ran, role):
    client.force_login(make_user(role))
    response = client.get(admin_url(Enrollment, "changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_conversion_value_is_the_goal_property(ran):
    # Guards the fixture the numbers above rely on.
    assert Enrollment.objects.get(customer=ran["ann"]).conversion_value == Decimal("415.00")
