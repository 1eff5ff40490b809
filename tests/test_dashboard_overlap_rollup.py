"""The journey overlap rollup (dashboards.CustomerJourneys) stays equal to a recount of the
enrollments whichever way they are written: one by one, in bulk, by stopping a journey,
by deleting a customer (PostgreSQL's trigger keeps it; SQLite has none)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from customers.models import Customer
from journeys.models import Journey, JourneyStatus, JourneyVersion
from orchestrator.dashboards.models import CustomerJourneys
from orchestrator.dashboards.overlap_rollup import rebuild_customer_journeys, recount, stored
from orchestrator.engine.control import exit_journey
from orchestrator.engine.models import Enrollment, EnrollmentState

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the rollup's trigger is PostgreSQL's"),
]

NOW = dt.datetime(2026, 3, 11, 12, 0, tzinfo=dt.UTC)
GRAPH = {"nodes": [{"id": "entry", "kind": "entry", "config": {}}, {"id": "done", "kind": "exit", "config": {}}],
         "edges": [{"from": "entry", "port": "out", "to": "done"}]}


@pytest.fixture
def people():
    return [Customer.objects.create(external_id=n, email=f"{n}@example.com") for n in ("ada", "bob", "cy")]


@pytest.fixture
def journeys():
    made = []
    for name in ("Welcome", "Win back", "Receipts"):
        journey = Journey.objects.create(name=name, status=JourneyStatus.LIVE)
        JourneyVersion.objects.create(journey=journey, number=1, graph=GRAPH, published_at=NOW)
        made.append(journey)
    return made


def enrol(journey, customer, key="once", state=EnrollmentState.ACTIVE) -> Enrollment:
    return Enrollment.objects.create(journey=journey, version=journey.versions.get(), customer=customer,
                                     current_node="entry", due_at=NOW, state=state, trigger_key=key)


def ids(*journeys) -> str:
    return ",".join(str(j.pk) for j in sorted(journeys, key=lambda j: j.pk))


def test_lists_a_customer_once_inside_two_journeys_and_drops_them_when_one_is_left(people, journeys):
    ada, bob, _ = people
    welcome, winback, receipts = journeys
    first = enrol(welcome, ada)
    enrol(welcome, bob)
    assert stored() == {} == recount()
    enrol(winback, ada)
    enrol(welcome, ada, key="again")  # a second enrollment in the same journey adds no journey
    enrol(receipts, ada, state=EnrollmentState.EXITED)  # exited: not inside
    assert stored() == recount() == {ada.pk: ids(welcome, winback)}
    first.state = EnrollmentState.EXITED  # the runner's finish(): one save
    first.save()
    assert stored() == recount() == {ada.pk: ids(welcome, winback)}  # still inside Welcome ("again")
    Enrollment.objects.filter(customer=ada, journey=welcome).update(state=EnrollmentState.EXITED)
    assert stored() == recount() == {}


def test_ordinary_steps_leave_the_rollup_alone(people, journeys):
    ada = people[0]
    welcome, winback, _ = journeys
    step = enrol(welcome, ada)
    enrol(winback, ada)
    step.state, step.current_node, step.due_at = EnrollmentState.WAITING, "done", NOW + dt.timedelta(days=1)
    step.save()
    assert stored() == recount() == {ada.pk: ids(welcome, winback)}


def test_bulk_inserts_stopping_a_journey_and_deleting_a_customer_keep_it_exact(people, journeys):
    ada, bob, cy = people
    welcome, winback, receipts = journeys
    Enrollment.objects.bulk_create(
        Enrollment(journey=j, version=j.versions.get(), customer=c, current_node="entry", due_at=NOW, trigger_key="s")
        for j, c in [(welcome, ada), (winback, ada), (receipts, ada), (welcome, bob), (receipts, bob), (welcome, cy)]
    )
    assert stored() == recount() == {ada.pk: ids(welcome, winback, receipts), bob.pk: ids(welcome, receipts)}
    exit_journey(receipts.pk, now=NOW)
    assert stored() == recount() == {ada.pk: ids(welcome, winback)}
    ada.delete()  # the enrollments go with the customer
    assert stored() == recount() == {}


def test_rebuild_recounts_what_a_bulk_load_without_the_trigger_left_behind(people, journeys):
    ada, bob, _ = people
    welcome, winback, _ = journeys
    enrol(welcome, ada)
    enrol(winback, ada)
    CustomerJourneys.objects.all().delete()
    CustomerJourneys.objects.create(customer_id=bob.pk, journeys=ids(welcome, winback))
    rebuild_customer_journeys()
    assert stored() == recount() == {ada.pk: ids(welcome, winback)}
