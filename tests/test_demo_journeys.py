"""The demo workspace's journeys: valid graphs, created once, and runnable by the engine."""

from __future__ import annotations

import pytest
from django.utils import timezone

from customers.enums import Channel
from customers.models import ContactPoint, Customer, Segment
from journeys.graph import validate_graph
from journeys.models import Journey, JourneyStatus
from orchestrator.demo_journeys import seed_journeys
from orchestrator.engine.entry import enrol_segment
from orchestrator.engine.models import Enrollment
from orchestrator.engine.runner import run_due
from tests.api_factories import opted_in

pytestmark = pytest.mark.django_db

LAPSED = {"match": "all", "conditions": [{"type": "reachable", "channel": "push"}]}


@pytest.fixture
def lapsed_segment():
    return Segment.objects.create(name="Lapsed app users", definition=LAPSED)


def test_seeds_two_live_journeys_and_a_draft_once(lapsed_segment):
    assert seed_journeys() == ["Cart recovery", "Welcome series", "Win back lapsed app users"]
    assert seed_journeys() == []
    statuses = dict(Journey.objects.values_list("name", "status"))
    assert statuses == {
        "Cart recovery": JourneyStatus.LIVE,
        "Welcome series": JourneyStatus.DRAFT,
        "Win back lapsed app users": JourneyStatus.LIVE,
    }
    for journey in Journey.objects.all():
        assert validate_graph(journey.versions.get().graph) == []
    assert Journey.objects.get(name="Cart recovery").event_names == ["Cart Abandoned", "Order Completed"]


def test_without_the_lapsed_segment_the_win_back_journey_is_skipped():
    assert seed_journeys() == ["Cart recovery", "Welcome series"]


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
