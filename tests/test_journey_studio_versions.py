"""Version history: published versions with who and when, the draft, and starting a new
draft from an old version (through the draft-editing service, confirmed when the draft
holds unpublished edits). Marketers restore; the Messaging team only looks.
"""

from __future__ import annotations

import copy
import html
import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from journeys.models import Journey, JourneyStatus, JourneyVersion
from journeys.studio import canvas_url
from orchestrator.roles import Role
from tests.journey_factories import make_live_journey
from tests.test_journey_launch_story import cart_recovery_graph

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def v2_graph() -> dict:
    graph = cart_recovery_graph()
    graph["nodes"][1]["config"]["amount"] = 30
    return graph


@pytest.fixture
def journey(mara, make_user):
    """v1 published by mara three days ago; v2 (a 30-minute delay) published by eve, live."""
    eve = make_user(Role.MARKETER, username="eve")
    journey = make_live_journey(cart_recovery_graph(), name="Cart recovery")
    JourneyVersion.objects.filter(pk=journey.live_version_id).update(published_by=mara, published_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    v2 = JourneyVersion.objects.create(journey=journey, number=2, graph=v2_graph(), published_by=eve,
                                       published_at=datetime(2026, 11, 29, 12, 0, tzinfo=UTC))
    Journey.objects.filter(pk=journey.pk).update(live_version=v2)
    journey.refresh_from_db()
    return journey


def rows(body: str) -> list[str]:
    found = re.findall(r'<li class="version-row[^"]*" data-version="\d+">(.*?)</li>', body, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split()) for row in found]


def restore_url(journey, number) -> str:
    return reverse("journeys:studio-restore", args=[journey.pk, number])


def draft(journey) -> JourneyVersion | None:
    return JourneyVersion.objects.filter(journey=journey, published_at__isnull=True).first()


def test_lists_published_versions_with_who_and_when_newest_first_and_the_draft(marketer, journey, mara):
    with time_machine.travel(datetime(2026, 11, 30, 10, 0, tzinfo=UTC), tick=False):
        JourneyVersion.objects.create(journey=journey, number=3, graph=cart_recovery_graph(), created_by=mara)

    response = marketer.get(reverse("journeys:studio-versions", args=[journey.pk]), **HTMX)

    assert response.status_code == 200
    assert rows(response.content.decode()) == [
        "Version 3 Draft Edited 2 hours ago , started by mara, not published Edit",
        "Version 2 Live Published 1 day ago by eve View Start a new draft from this version",
        "Version 1 Published 3 days ago by mara View Start a new draft from this version",
    ]
    assert "Version 3 Draft" in rows(response.content.decode())[0]
    links = re.findall(r'<a class="btn btn-ghost btn-sm" href="([^"]+)">(?:View|Edit)</a>', response.content.decode())
    v1, v2 = journey.versions.get(number=1), journey.versions.get(number=2)
    # The draft opens in the editor, published versions read-only.
    assert links == [canvas_url(journey), canvas_url(journey, v2), canvas_url(journey, v1)]
    assert links[-1] == f"/journeys/{journey.pk}/edit/?version=1"


def test_without_a_draft_the_live_version_offers_no_restore(marketer, journey):
    body = marketer.get(reverse("journeys:studio-versions", args=[journey.pk]), **HTMX).content.decode()

    assert rows(body) == [
        "Version 2 Live Published 1 day ago by eve View",
        "Version 1 Published 3 days ago by mara View Start a new draft from this version",
    ]


def test_restoring_an_old_version_starts_a_draft_with_its_graph(marketer, journey, mara):
    response = marketer.post(restore_url(journey, 1), **HTMX)

    assert response.status_code == 204
    assert response["HX-Redirect"] == canvas_url(journey)
    new = draft(journey)
    assert (new.number, new.graph, new.created_by) == (3, cart_recovery_graph(), mara)
    journey.refresh_from_db()
    assert journey.updated_by == mara
    assert journey.live_version.number == 2  # nothing is published by a restore


def test_a_restore_is_undone_as_started_from_its_version(marketer, journey):
    marketer.post(restore_url(journey, 1), **HTMX)

    assert list(draft(journey).graph_edits.values_list("label", flat=True)) == ["Started from version 1"]


def test_a_draft_with_unpublished_edits_is_replaced_only_when_confirmed(marketer, journey):
    edited = copy.deepcopy(v2_graph())
    edited["nodes"][1]["config"]["amount"] = 10
    JourneyVersion.objects.create(journey=journey, number=3, graph=edited)

    response = marketer.post(restore_url(journey, 1), **HTMX)

    assert response.status_code == 200
    body = response.content.decode()
    assert "Draft version 3 has edits that are not published." in body
    assert '<input type="hidden" name="confirm" value="yes">' in body
    assert draft(journey).graph == edited

    response = marketer.post(restore_url(journey, 1), {"confirm": "yes"}, **HTMX)

    assert response.status_code == 204
    assert draft(journey).graph == cart_recovery_graph()


def test_a_draft_without_edits_is_replaced_without_asking(marketer, journey):
    JourneyVersion.objects.create(journey=journey, number=3, graph=v2_graph())

    assert marketer.post(restore_url(journey, 1), **HTMX).status_code == 204
    assert draft(journey).graph == cart_recovery_graph()


def test_without_htmx_a_restore_redirects_with_a_message(marketer, journey):
    response = marketer.post(restore_url(journey, 1), follow=True)

    assert response.redirect_chain == [(canvas_url(journey), 302)]
    assert [str(m) for m in response.context["messages"]] == ["Draft version 3 now holds the steps of version 1."]


def test_an_archived_journey_cannot_be_restored_and_says_why(marketer, journey):
    Journey.objects.filter(pk=journey.pk).update(status=JourneyStatus.ARCHIVED)

    response = marketer.post(restore_url(journey, 1), **HTMX)

    assert response.status_code == 422
    assert "An archived journey cannot be edited." in response.content.decode()
    assert draft(journey) is None


def test_only_a_published_version_can_start_a_draft(marketer, journey):
    JourneyVersion.objects.create(journey=journey, number=3, graph=v2_graph())

    assert marketer.post(restore_url(journey, 3), **HTMX).status_code == 404
    assert marketer.post(restore_url(journey, 9), **HTMX).status_code == 404


def test_the_messaging_team_sees_the_history_but_may_not_restore(client, make_user, journey):
    client.force_login(make_user(Role.MESSAGING))

    body = client.get(reverse("journeys:studio-versions", args=[journey.pk])).content.decode()
    assert "Start a new draft" not in body and "Read only" in body

    assert client.post(restore_url(journey, 1), **HTMX).status_code == 403
    assert draft(journey) is None
