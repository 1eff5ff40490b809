"""The journeys list as the way into the canvas: create (then open the canvas), duplicate,
archive with confirmation, filter by status and tag; read-only for the messaging team."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from journeys.models import Journey, JourneyStatus
from journeys.services import JourneyInput, do_create_journey, do_update_journey, empty_graph
from orchestrator.roles import Role
from tests.journey_factories import linear_graph, make_live_journey, node

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def names(response) -> list[str]:
    return re.findall(r'class="row-link" href="[^"]+">([^<]+)</a>', response.content.decode())


def test_creating_a_journey_opens_its_canvas_with_an_entry_node(marketer, mara):
    response = marketer.post(reverse("journeys:create"), {"name": "  Welcome  "}, **HTMX)

    journey = Journey.objects.get()
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("journeys:edit", args=[journey.pk])
    assert (journey.name, journey.status, journey.created_by, journey.updated_by) == ("Welcome", JourneyStatus.DRAFT, mara, mara)
    assert journey.versions.get().graph == empty_graph()


def test_a_taken_name_is_answered_at_the_field(marketer, mara):
    do_create_journey(JourneyInput(name="Welcome"), mara)
    response = marketer.post(reverse("journeys:create"), {"name": "Welcome"}, **HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="create-form"')
    assert "Name another journey is already called &#x27;Welcome&#x27;" in html
    assert Journey.objects.count() == 1


def test_duplicating_copies_settings_and_the_graph_the_canvas_shows(marketer, mara):
    graph = linear_graph(node("entry", "entry", trigger="api"), node("bye", "exit"))
    live = make_live_journey(graph, name="Welcome", tags=["onboarding"], priority=8)
    edited = {**graph, "nodes": [*graph["nodes"], node("extra", "exit")]}
    do_update_journey(live, JourneyInput(graph=edited), mara)

    response = marketer.post(reverse("journeys:duplicate", args=[live.pk]), **HTMX)

    copy = Journey.objects.get(name="Welcome (copy)")
    assert response["HX-Redirect"] == reverse("journeys:edit", args=[copy.pk])
    assert (copy.status, copy.tags, copy.priority, copy.created_by) == (JourneyStatus.DRAFT, ["onboarding"], 8, mara)
    assert copy.versions.get().graph == edited
    marketer.post(reverse("journeys:duplicate", args=[live.pk]), **HTMX)
    assert Journey.objects.filter(name="Welcome (copy 2)").exists()


def test_archiving_from_the_list_asks_first_and_returns_to_the_list(marketer, mara):
    journey = do_create_journey(JourneyInput(name="Old idea"), mara)
    html = marketer.get(reverse("journeys:list")).content.decode()
    assert 'hx-confirm="Archive Old idea? It can no longer be edited or published."' in html

    response = marketer.post(reverse("journeys:set-status", args=[journey.pk]),
                             {"action": "archive", "next": "/journeys/?status=draft"}, **HTMX)

    assert response["HX-Redirect"] == "/journeys/?status=draft"
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.ARCHIVED


def test_archiving_never_redirects_off_site(marketer, mara):
    journey = do_create_journey(JourneyInput(name="Old idea"), mara)
    response = marketer.post(reverse("journeys:set-status", args=[journey.pk]),
                             {"action": "archive", "next": "//evil.example/"}, **HTMX)
    assert response["HX-Redirect"] == reverse("journeys:edit", args=[journey.pk])


def test_live_journeys_offer_no_archive_button(marketer):
    make_live_journey(linear_graph(node("entry", "entry", trigger="api")), name="Running")
    html = marketer.get(reverse("journeys:list")).content.decode()
    assert "data-archive=" not in html
    assert "data-duplicate=" in html


def test_filter_by_tag_keeps_the_status_filter(marketer, mara):
    do_create_journey(JourneyInput(name="A", tags=["lifecycle"]), mara)
    do_create_journey(JourneyInput(name="B", tags=["lifecycle", "sms"]), mara)
    do_create_journey(JourneyInput(name="C", tags=["sms"]), mara)
    make_live_journey(linear_graph(node("entry", "entry", trigger="api")), name="D", tags=["sms"])

    assert names(marketer.get(reverse("journeys:list"), {"tag": "sms"})) == ["B", "C", "D"]
    response = marketer.get(reverse("journeys:list"), {"tag": "sms", "status": "draft"}, **HTMX)
    assert names(response) == ["B", "C"]
    html = response.content.decode()
    assert "2 draft journeys tagged sms" in html
    assert 'href="/journeys/?status=draft&amp;tag=lifecycle"' in html
    assert 'href="/journeys/?status=live&amp;tag=sms"' in html


def test_a_tag_with_no_journey_says_so(marketer, mara):
    do_create_journey(JourneyInput(name="A", tags=["lifecycle"]), mara)
    html = marketer.get(reverse("journeys:list"), {"tag": "winback"}, **HTMX).content.decode()
    assert "No journeys tagged winback." in html


def test_messaging_sees_the_list_without_edit_controls(client, make_user, mara):
    do_create_journey(JourneyInput(name="A"), mara)
    client.force_login(make_user(Role.MESSAGING, username="mo"))
    html = client.get(reverse("journeys:list")).content.decode()
    assert 'id="create-form"' not in html
    assert "data-duplicate" not in html and "data-archive" not in html
    assert ">View</a>" in html
    assert client.post(reverse("journeys:create"), {"name": "Sneaky"}, **HTMX).status_code == 403
    assert client.post(reverse("journeys:duplicate", args=[Journey.objects.get().pk]), **HTMX).status_code == 403
    assert list(Journey.objects.values_list("name", flat=True)) == ["A"]


def test_the_journey_page_links_to_its_canvas(marketer, mara):
    journey = do_create_journey(JourneyInput(name="A"), mara)
    html = marketer.get(reverse("journeys:detail", args=[journey.pk])).content.decode()
    assert f'<a class="btn btn-primary" href="/journeys/{journey.pk}/edit/">Edit on the canvas</a>' in html
