"""Check and publish from the canvas: every problem pinned on its node; an edit of a live
journey says what happens to the people inside and asks to confirm; pause, resume, stop
and archive."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from customers.models import Customer
from journeys.models import Journey, JourneyStatus
from journeys.services import JourneyInput, do_create_journey, do_update_journey
from orchestrator.engine.models import Enrollment, EnrollmentState
from tests.journey_factories import linear_graph, make_live_journey, node

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def publish(client, journey: Journey, **data):
    journey.refresh_from_db()
    return client.post(reverse("journeys:edit-publish", args=[journey.pk]), {"revision": journey.graph_revision, **data}, **HTMX)


def story(body: str) -> dict:
    return linear_graph(
        node("entry", "entry", trigger="event", event="Added to Cart"),
        node("sms", "send", channel="sms", content={"sms": {"body": body}}),
        node("bye", "exit"),
    )


@pytest.mark.content_rules
def test_publish_problems_are_pinned_on_their_nodes_and_nothing_is_published(marketer, mara):
    graph = story("Your cart is waiting")
    graph["nodes"].append(node("lost", "delay"))
    journey = do_create_journey(JourneyInput(name="Story", graph=graph), mara)

    response = publish(marketer, journey)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Cannot publish yet" in html
    assert "3 problems must be fixed first" in html
    sms_node = html[html.index('id="node-sms"'):html.index('id="node-bye"')]
    assert '<span class="node-badge" title="1 problem">1</span>' in sms_node
    assert "<li>content.sms.body: marketing SMS must tell people how to opt out, e.g. &#x27;Reply STOP to opt out&#x27;</li>" in sms_node
    lost_node = html[html.index('id="node-lost"'):]
    assert "<li>mode: is required</li>" in lost_node
    assert "<li>cannot be reached from the entry node</li>" in lost_node
    # The panel's list names each node as the canvas does, the config path in small print.
    assert ('<li><button type="button" class="link-button" data-focus-node="lost" title="Show lost and its settings">lost</button>: '
            'is required <code class="problem-field">mode</code></li>') in html
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.DRAFT
    assert journey.live_version is None


def test_publishing_a_first_draft_goes_live_at_once(marketer, mara):
    journey = do_create_journey(JourneyInput(name="Story", graph=story("Hi. Reply STOP to opt out")), mara)

    response = publish(marketer, journey)

    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("journeys:edit", args=[journey.pk])
    journey.refresh_from_db()
    assert (journey.status, journey.live_version.number, journey.updated_by) == (JourneyStatus.LIVE, 1, mara)
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Version 1 is published and live: new entrants enter it."]


def test_publishing_an_edit_of_a_live_journey_asks_first_with_who_is_inside(marketer, mara):
    journey = make_live_journey(story("Hi"), name="Live story")
    do_update_journey(journey, JourneyInput(graph=story("Hello")), mara)  # draft v2
    for index, state in enumerate([EnrollmentState.WAITING, EnrollmentState.ACTIVE, EnrollmentState.EXITED]):
        customer = Customer.objects.create(external_id=f"c{index}")
        Enrollment.objects.create(journey=journey, version=journey.live_version, customer=customer,
                                  current_node="sms", state=state)

    asked = publish(marketer, journey)

    html = asked.content.decode()
    assert "Publish version 2?" in html
    assert "People already inside finish on the version they entered:" in html
    assert '<td class="num" data-inside-version="1">2</td>' in html
    journey.refresh_from_db()
    assert journey.live_version.number == 1

    confirmed = publish(marketer, journey, confirm="yes")

    assert confirmed.status_code == 204
    journey.refresh_from_db()
    assert journey.live_version.number == 2
    assert set(Enrollment.objects.values_list("version__number", flat=True)) == {1}


def test_publishing_with_nothing_changed_says_so(marketer):
    journey = make_live_journey(story("Hi"), name="Unchanged")
    response = publish(marketer, journey)
    assert response.status_code == 422
    assert "There is nothing to publish" in response.content.decode()


def test_a_stale_page_cannot_publish(marketer, mara):
    journey = do_create_journey(JourneyInput(name="Story", graph=story("Hi")), mara)
    response = marketer.post(reverse("journeys:edit-publish", args=[journey.pk]), {"revision": 7}, **HTMX)
    assert response.status_code == 409
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.DRAFT


@pytest.mark.parametrize(
    ("status", "action", "after"),
    [
        (JourneyStatus.LIVE, "pause", JourneyStatus.PAUSED),
        (JourneyStatus.PAUSED, "resume", JourneyStatus.LIVE),
        (JourneyStatus.LIVE, "stop", JourneyStatus.STOPPED),
        (JourneyStatus.STOPPED, "archive", JourneyStatus.ARCHIVED),
    ],
)
def test_status_changes_from_the_canvas(marketer, mara, status, action, after):
    journey = make_live_journey(story("Hi"), name="Status")
    Journey.objects.filter(pk=journey.pk).update(status=status)
    response = marketer.post(reverse("journeys:set-status", args=[journey.pk]), {"action": action}, **HTMX)
    assert response.status_code == 204
    journey.refresh_from_db()
    assert (journey.status, journey.updated_by) == (after, mara)


def test_stopping_exits_everyone_inside(marketer):
    journey = make_live_journey(story("Hi"), name="Stopping")
    customer = Customer.objects.create(external_id="inside")
    Enrollment.objects.create(journey=journey, version=journey.live_version, customer=customer, current_node="sms")
    marketer.post(reverse("journeys:set-status", args=[journey.pk]), {"action": "stop"}, **HTMX)
    assert Enrollment.objects.get().state == EnrollmentState.EXITED


def test_an_illegal_status_change_is_explained(marketer):
    journey = make_live_journey(story("Hi"), name="Live")
    response = marketer.post(reverse("journeys:set-status", args=[journey.pk]), {"action": "archive"}, **HTMX)
    assert response.status_code == 409
    assert "Cannot archive a live journey: stop it first." in response.content.decode()
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.LIVE


def test_the_canvas_offers_the_status_changes_with_confirmation(marketer):
    journey = make_live_journey(story("Hi"), name="Live")
    html = marketer.get(reverse("journeys:edit", args=[journey.pk])).content.decode()
    assert 'hx-vals=\'{"action": "pause"}\' hx-confirm="Pause this journey?' in html
    assert 'hx-vals=\'{"action": "stop"}\' hx-confirm="Stop this journey for good?' in html
    assert '"action": "archive"' not in html


def test_an_archived_journey_is_read_only(marketer, mara):
    journey = do_create_journey(JourneyInput(name="Old", graph=story("Hi")), mara)
    marketer.post(reverse("journeys:set-status", args=[journey.pk]), {"action": "archive"}, **HTMX)
    html = marketer.get(reverse("journeys:edit", args=[journey.pk])).content.decode()
    assert "You are viewing this journey read-only." in html
    response = marketer.post(reverse("journeys:edit-layout", args=[journey.pk]), {"revision": 0}, **HTMX)
    assert response.status_code == 409
    assert "An archived journey cannot be edited." in response.content.decode()
