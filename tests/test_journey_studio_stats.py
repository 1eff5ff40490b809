"""Live statistics on the canvas: one polled fragment of out-of-band swaps, one per node.

Each node shows entered, waiting now, sent (send steps) and converted, from the step log
and the people inside; a draft shows its live version's numbers for the steps it shares;
a journey that never ran answers zeros once and tells htmx to stop polling (HTTP 286),
and the query count does not grow with the number of people or steps.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from journeys.models import Journey, JourneyStatus, JourneyVersion
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, ExitReason
from orchestrator.roles import Role
from tests.api_factories import customer
from tests.journey_factories import make_live_journey
from tests.test_journey_launch_story import cart_recovery_graph

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 24, 21, 14, tzinfo=UTC)
HTMX = {"HTTP_HX_REQUEST": "true"}
NODES = ["entry", "wait45", "sms", "until_morning", "push", "after_push", "done"]


@pytest.fixture
def marketer(client, make_user):
    client.force_login(make_user(Role.MARKETER, username="mara"))
    return client


def enrol(journey: Journey, steps: list[tuple[str, str, str]], *, at: str, state: str = EnrollmentState.ACTIVE, **fields) -> Enrollment:
    """An enrollment that took these (node, kind, outcome) steps and is now at ``at``."""
    enrollment = Enrollment.objects.create(
        journey=journey, version=journey.live_version, customer=customer(), state=state, current_node=at,
        trigger_key=f"t-{Enrollment.objects.count()}", entered_at=T0, **fields,
    )
    EnrollmentStep.objects.bulk_create(
        EnrollmentStep(enrollment=enrollment, journey_id=journey.pk, version_id=journey.live_version_id,
                       node_id=node_id, kind=kind, outcome=outcome, at=T0 + timedelta(minutes=i))
        for i, (node_id, kind, outcome) in enumerate(steps)
    )
    return enrollment


ENTERED = [("entry", "entry", "entered"), ("wait45", "delay", "delayed")]
SENT = [*ENTERED, ("sms", "send", "sent"), ("until_morning", "wait_for_event", "waiting")]


@pytest.fixture
def running(db) -> Journey:
    """Three people: one in the delay, one waiting after the SMS, one who converted there."""
    journey = make_live_journey(cart_recovery_graph(), name="Cart recovery", goal_event="Order Completed")
    enrol(journey, ENTERED, at="wait45")
    enrol(journey, SENT, at="until_morning", state=EnrollmentState.WAITING)
    enrol(journey, [*SENT, ("until_morning", "wait_for_event", "converted"), ("until_morning", "wait_for_event", "exited")],
          at="until_morning", state=EnrollmentState.EXITED, exit_reason=ExitReason.CONVERTED, converted_at=T0)
    return journey


def stats_url(journey, version=None) -> str:
    url = reverse("journeys:studio-stats", args=[journey.pk])
    return f"{url}?version={version}" if version else url


def figures(body: str) -> dict[str, dict[str, int]]:
    """node id -> {stat: number}, from the out-of-band swaps."""
    found = {}
    for node_id, inner in re.findall(r'<div class="node-stats" id="node-stats-([\w-]+)" hx-swap-oob="true"[^>]*>(.*?)</div>', body, re.S):
        found[node_id] = {stat: int(n) for stat, n in re.findall(r'data-stat="(\w+)"><b>(\d+)</b>', inner)}
    return found


def test_each_node_shows_entered_waiting_sent_and_converted(marketer, running):
    response = marketer.get(stats_url(running), **HTMX)

    assert response.status_code == 200  # live: keep polling
    assert figures(response.content.decode()) == {
        "entry": {"entered": 3, "waiting": 0, "converted": 0},
        "wait45": {"entered": 3, "waiting": 1, "converted": 0},
        "sms": {"entered": 2, "waiting": 0, "sent": 2, "converted": 0},
        "until_morning": {"entered": 2, "waiting": 1, "converted": 1},
        "push": {"entered": 0, "waiting": 0, "sent": 0, "converted": 0},
        "after_push": {"entered": 0, "waiting": 0, "converted": 0},
        "done": {"entered": 0, "waiting": 0, "converted": 0},
    }


def test_a_draft_shows_the_live_numbers_for_the_steps_it_keeps(marketer, running):
    graph = cart_recovery_graph()
    graph["nodes"][1]["id"] = "wait30"
    graph["edges"] = [{**e, "from": "wait30"} if e["from"] == "wait45" else ({**e, "to": "wait30"} if e["to"] == "wait45" else e) for e in graph["edges"]]
    JourneyVersion.objects.create(journey=running, number=2, graph=graph)

    response = marketer.get(stats_url(running, 2), **HTMX)

    shown = figures(response.content.decode())
    assert list(shown) == ["entry", "wait30", "sms", "until_morning", "push", "after_push", "done"]
    assert shown["wait30"] == {"entered": 0, "waiting": 0, "converted": 0}  # a new step: no one yet
    assert shown["sms"] == {"entered": 2, "waiting": 0, "sent": 2, "converted": 0}
    assert 'title="Numbers of live version 1"' in response.content.decode()


def test_a_journey_that_never_ran_answers_zeros_once_and_stops_the_polling(marketer):
    journey = Journey.objects.create(name="Not yet", status=JourneyStatus.DRAFT)
    JourneyVersion.objects.create(journey=journey, number=1, graph=cart_recovery_graph())

    response = marketer.get(stats_url(journey), **HTMX)

    assert response.status_code == 286
    shown = figures(response.content.decode())
    assert list(shown) == NODES
    assert set(map(frozenset, (d.items() for d in shown.values()))) <= {
        frozenset({("entered", 0), ("waiting", 0), ("converted", 0)}),
        frozenset({("entered", 0), ("waiting", 0), ("sent", 0), ("converted", 0)}),
    }


def test_a_stopped_journey_shows_its_final_numbers_and_stops_the_polling(marketer, running):
    Journey.objects.filter(pk=running.pk).update(status=JourneyStatus.STOPPED)

    response = marketer.get(stats_url(running), **HTMX)

    assert response.status_code == 286
    assert figures(response.content.decode())["sms"] == {"entered": 2, "waiting": 0, "sent": 2, "converted": 0}


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, **HTMX).status_code == 200
    return len(queries)


def test_the_query_count_is_fixed_whatever_the_number_of_people(marketer, running):
    url = stats_url(running)
    # session, user, roles, the journey with its live version, its draft (none), the step
    # GROUP BY, the inside GROUP BY
    assert _queries(marketer, url) == 7
    for _ in range(10):
        enrol(running, SENT, at="until_morning", state=EnrollmentState.WAITING)
    assert _queries(marketer, url) == 7


def test_the_canvas_extras_poll_every_five_seconds_for_the_shown_version(marketer, running):
    body = marketer.get(reverse("journeys:studio-simulate", args=[running.pk])).content.decode()

    assert (
        f'<div id="studio-stats-poll" hidden hx-get="{stats_url(running, 1)}" hx-trigger="load, every 5s" hx-swap="none"></div>'
    ) in body


def test_the_messaging_team_sees_the_numbers(client, make_user, running):
    client.force_login(make_user(Role.MESSAGING))

    assert client.get(stats_url(running), **HTMX).status_code == 200
