"""The demo workspace's journeys: valid graphs, created once, and runnable by the engine."""

from __future__ import annotations

import datetime as dt
import re
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from channels_app.content_rules import DEFAULT_RULES
from customers.enums import Channel
from customers.models import ContactPoint, Customer, Segment
from journeys.content import content_problems
from journeys.editor_layout import NODE_HEIGHT, NODE_WIDTH
from journeys.graph import validate_graph
from journeys.models import Journey, JourneyStatus
from orchestrator.demo_journeys import seed_journeys
from orchestrator.engine.entry import enrol_segment
from orchestrator.engine.models import Enrollment
from orchestrator.engine.runner import run_due
from orchestrator.engine.simulator import parse_simulation, simulate
from tests.api_factories import opted_in

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC)  # Monday 08:00 in New York
LAPSED = {"match": "all", "conditions": [{"type": "reachable", "channel": "push"}]}


@pytest.fixture
def lapsed_segment():
    return Segment.objects.create(name="Lapsed app users", definition=LAPSED)


def test_seeds_two_live_journeys_and_two_drafts_once(lapsed_segment):
    assert seed_journeys() == ["Cart recovery", "Welcome series", "Weekly picks", "Win back lapsed app users"]
    assert seed_journeys() == []
    statuses = dict(Journey.objects.values_list("name", "status"))
    assert statuses == {
        "Cart recovery": JourneyStatus.LIVE,
        "Welcome series": JourneyStatus.DRAFT,
        "Weekly picks": JourneyStatus.DRAFT,
        "Win back lapsed app users": JourneyStatus.LIVE,
    }
    for journey in Journey.objects.all():
        assert validate_graph(journey.versions.get().graph) == []
    assert Journey.objects.get(name="Cart recovery").event_names == ["Cart Abandoned", "Order Completed"]


def test_without_the_lapsed_segment_the_win_back_journey_is_skipped():
    assert seed_journeys() == ["Cart recovery", "Welcome series", "Weekly picks"]


def test_win_back_enrols_the_segment_and_sends_the_push(lapsed_segment, django_capture_on_commit_callbacks):
    seed_journeys()
    # The segment's "reachable on push" is the send-time rule: a subscription and an opt-in.
    customer = opted_in(Customer.objects.create(external_id="lapsed-1", traits={"first_name": "Ines"}), Channel.PUSH)
    ContactPoint.objects.create(customer=customer, channel=Channel.PUSH, address="token-1")
    journey = Journey.objects.select_related("live_version").get(name="Win back lapsed app users")
    journey.holdout_percent = 0
    journey.save()

    assert enrol_segment(journey, now=timezone.now()) == 1
    with django_capture_on_commit_callbacks(execute=True):
        run_due()

    enrollment = Enrollment.objects.get(journey=journey)
    assert (enrollment.current_node, enrollment.state) == ("opened", "waiting")
    message = customer.messages.get()
    assert (message.channel, message.status) == (Channel.PUSH, "sent")
    assert message.content["body"] == "Ines, it has been a while. See what's new this week."


def test_weekly_picks_has_clean_content_on_every_channel_it_may_choose():
    seed_journeys()
    graph = Journey.objects.get(name="Weekly picks").versions.get().graph

    assert content_problems(graph, "marketing", DEFAULT_RULES) == []


def test_weekly_picks_simulated_for_maya_waits_for_her_evening_and_texts_her_with_the_reason():
    call_command("seed_demo", "--customers=5", "--seed=7", "--days=180", f"--now={NOW.isoformat()}", stdout=StringIO())
    journey = Journey.objects.get(name="Weekly picks")
    sim = parse_simulation({"customer": {"external_id": "cust_maya"}, "start": NOW.isoformat(), "until": "+2d"})

    steps = {entry["node_id"]: entry for entry in simulate(journey, sim).timeline}

    when = steps["best_hour"]["detail"]
    assert re.match(r"until \S+ \S+ UTC, with SMS: SMS engagement \d\.\d× push and \d\.\d× email over \d+ days", when), when
    assert re.search(r"; best hour 2[0-2]:00–2[1-3]:00 local, Mondays \(\d+\.\d× an average hour\)$", when), when
    sent = steps["picks"]
    assert (sent["outcome"], sent["message"]["channel"]) == ("sent", "sms")
    assert sent["detail"].startswith("sms · SMS engagement ")
    assert 20 <= sent["at"].astimezone(ZoneInfo("America/New_York")).hour <= 22


def test_demo_journeys_open_on_the_canvas_with_no_two_nodes_overlapping(lapsed_segment):
    seed_journeys()
    for journey in Journey.objects.all():
        nodes = journey.versions.get().graph["nodes"]
        boxes = [(n["id"], n["position"]["x"], n["position"]["y"]) for n in nodes]
        for index, (first, x1, y1) in enumerate(boxes):
            for second, x2, y2 in boxes[index + 1:]:
                apart = abs(x1 - x2) >= NODE_WIDTH or abs(y1 - y2) >= NODE_HEIGHT
                assert apart, f"{journey.name}: {first} overlaps {second}"
