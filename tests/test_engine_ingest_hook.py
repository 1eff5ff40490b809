"""The hook from ingestion into the engine: events a journey listens for become one
django-q2 task, committed with the events; other events cost the ingest path nothing.

With CHORUS_ENGINE_INLINE off (production), ``on_events_stored`` enqueues
``process_events`` on the ORM broker inside the ingest transaction. The event names
journeys listen for are cached, so ingesting an event nobody listens for costs no query.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.db import connection, transaction
from django_q.models import OrmQ

from customers.models import Event
from journeys.services import JourneyInput, do_create_journey
from orchestrator.engine import lifecycle
from orchestrator.engine.events import forget_listened_names, listened_names
from orchestrator.engine.models import Enrollment
from tests.journey_factories import linear_graph, make_live_journey, node

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 4, 15, 0, tzinfo=dt.UTC)


def cart_graph() -> dict:
    return linear_graph(
        node("entry", "entry", trigger="event", event="Cart Abandoned"),
        node("wait", "delay", mode="duration", amount=1, unit="hours"),
    )


def track(client, event: str, message_id: str, user_id: str = "ada") -> None:
    body = {"userId": user_id, "event": event, "messageId": message_id, "properties": {"cart_value": 150}}
    response = client.post("/api/v1/track", body, format="json")
    assert response.status_code == 200, response.content


def queued_tasks() -> list[tuple[str, list]]:
    return [(q.task["func"], list(q.task["args"])) for q in OrmQ.objects.order_by("id")]


@pytest.fixture(autouse=True)
def _queued_not_inline(settings):
    settings.CHORUS_ENGINE_INLINE = False


def test_listened_event_enqueues_one_process_events_task_naming_it(ingest_client):
    make_live_journey(cart_graph())

    track(ingest_client, "Cart Abandoned", "m-1")

    event = Event.objects.get()
    assert queued_tasks() == [("orchestrator.engine.tasks.process_events", [[event.pk]])]
    assert Enrollment.objects.count() == 0  # the task, not the request, enters her


def test_batch_of_events_enqueues_one_task_naming_only_the_listened_ones(ingest_client):
    make_live_journey(cart_graph())
    items = [
        {"type": "track", "userId": user, "event": event, "messageId": f"m-{n}"}
        for n, (user, event) in enumerate([("ada", "Cart Abandoned"), ("bob", "Page Viewed"), ("cy", "Cart Abandoned")])
    ]

    response = ingest_client.post("/api/v1/batch", {"batch": items}, format="json")

    assert response.status_code == 200, response.content
    listened = sorted(Event.objects.filter(name="Cart Abandoned").values_list("pk", flat=True))
    [(func, [ids])] = queued_tasks()
    assert (func, sorted(ids)) == ("orchestrator.engine.tasks.process_events", listened)


def test_listened_event_task_commits_or_rolls_back_with_the_events(ingest_client):
    make_live_journey(cart_graph())

    with transaction.atomic():
        track(ingest_client, "Cart Abandoned", "m-1")
        assert OrmQ.objects.count() == 1
        transaction.set_rollback(True)

    assert (Event.objects.count(), OrmQ.objects.count()) == (0, 0)


def test_wait_and_goal_events_are_listened_for_too(ingest_client):
    wait = node("wait", "wait_for_event", mode="event", event="Order Completed", timeout={"amount": 1, "unit": "days"})
    graph = {"nodes": [node("entry", "entry", trigger="api"), wait], "edges": [{"from": "entry", "port": "out", "to": "wait"}]}
    make_live_journey(graph, goal_event="Subscription Started")

    track(ingest_client, "Order Completed", "m-1")
    track(ingest_client, "Subscription Started", "m-2")

    assert [args for _, args in queued_tasks()] == [[[pk]] for pk in Event.objects.order_by("id").values_list("pk", flat=True)]


def test_event_no_journey_listens_for_enqueues_nothing(ingest_client):
    make_live_journey(cart_graph())

    track(ingest_client, "Page Viewed", "m-1")

    assert Event.objects.count() == 1
    assert OrmQ.objects.count() == 0


def test_event_of_a_draft_journey_enqueues_nothing(ingest_client):
    do_create_journey(JourneyInput(name="Draft", graph=cart_graph()), None)

    track(ingest_client, "Cart Abandoned", "m-1")

    assert OrmQ.objects.count() == 0


def test_unlistened_event_adds_no_query_to_the_ingest_hot_path(ingest_client, django_assert_num_queries):
    make_live_journey(cart_graph())
    track(ingest_client, "Warm Up", "m-0")  # caches the API key and the listened names

    # The same four queries (six on SQLite) as ingestion with no journey at all:
    # tests/test_ingest_track.py pins them.
    expected = 4 if connection.vendor == "postgresql" else 6
    with django_assert_num_queries(expected):
        track(ingest_client, "Page Viewed", "m-1")

    assert OrmQ.objects.count() == 0


@pytest.mark.skipif("locmem" not in settings.CACHES["default"]["BACKEND"].lower(), reason="Redis keeps its own clock")
def test_listened_names_are_cached_for_five_seconds():
    with time_machine.travel(T0, tick=False) as clock:
        assert listened_names() == frozenset()
        make_live_journey(cart_graph(), goal_event="Order Completed")
        assert listened_names() == frozenset()  # still the cached answer
        clock.shift(dt.timedelta(seconds=6))
        assert listened_names() == frozenset({"Cart Abandoned", "Order Completed"})


def test_forget_listened_names_makes_the_next_ingest_see_a_new_journey(ingest_client):
    track(ingest_client, "Warm Up", "m-0")  # caches "nobody listens"
    make_live_journey(cart_graph())
    forget_listened_names()

    track(ingest_client, "Cart Abandoned", "m-1")

    assert OrmQ.objects.count() == 1


def test_publishing_a_journey_makes_the_very_next_ingest_see_its_events(
    ingest_client, django_capture_on_commit_callbacks
):
    journey = do_create_journey(JourneyInput(name="Cart", graph=cart_graph()), None)
    track(ingest_client, "Warm Up", "m-0")  # caches "nobody listens"

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.publish(journey, None)
    track(ingest_client, "Cart Abandoned", "m-1")

    assert [func for func, _ in queued_tasks()] == ["orchestrator.engine.tasks.process_events"]


def test_stopping_a_journey_makes_the_very_next_ingest_ignore_its_events(
    ingest_client, django_capture_on_commit_callbacks
):
    journey = make_live_journey(cart_graph())
    track(ingest_client, "Warm Up", "m-0")  # caches "Cart Abandoned"

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.set_status(journey, "stop", None)
    track(ingest_client, "Cart Abandoned", "m-1")

    assert OrmQ.objects.count() == 0
