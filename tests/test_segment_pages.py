"""Segment pages: the list with live counts, the editor, its live count, errors and access."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from customers.models import Customer, Event, Segment
from orchestrator.roles import Role

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
LIST_URL = reverse("customers:segments")
NEW_URL = reverse("customers:segment-new")
COUNT_URL = reverse("customers:segment-count")
HTMX = {"HTTP_HX_REQUEST": "true"}

PRO = {"match": "all", "conditions": [{"type": "trait", "trait": "plan", "operator": "eq", "value": "pro"}]}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def marketer(client, make_user):
    client.force_login(make_user(Role.MARKETER))
    return client


@pytest.fixture
def messaging(client, make_user):
    client.force_login(make_user(Role.MESSAGING))
    return client


@pytest.fixture
def customers():
    made = []
    for n in range(12):
        made.append(Customer.objects.create(external_id=f"pro-{n:02}", traits={"plan": "pro"}, last_seen_at=NOW - timedelta(hours=n)))
    made.append(Customer.objects.create(external_id="free-1", traits={"plan": "free"}))
    for customer in made[:3]:
        Event.objects.create(customer=customer, name="Order Completed", occurred_at=NOW - timedelta(days=2), source="test")
    return made


class Inputs(HTMLParser):
    """Form controls of an HTML fragment: name → value (selects: the selected option)."""

    def __init__(self, html: str):
        super().__init__()
        self.values: dict[str, str] = {}
        self.select: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and "name" in a:
            self.values[a["name"]] = a.get("value", "")
        elif tag == "select":
            self.select = a.get("name")
        elif tag == "option" and self.select and "selected" in a:
            self.values[self.select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None


def inputs(response) -> dict[str, str]:
    return Inputs(response.content.decode()).values


def field_errors(response) -> list[tuple[str, str]]:
    """(input id, message) for every error shown at an input."""
    return re.findall(r'<p class="field-error" id="([^"]+)-error" role="alert">([^<]*)</p>', response.content.decode())


def pro_form(**extra) -> dict:
    return {
        "name": "Pro plan", "description": "Everyone on pro", "match": "all",
        "conditions.0.type": "trait", "conditions.0.trait": "plan",
        "conditions.0.operator": "eq", "conditions.0.value": "pro",
    } | extra


# --- the list -------------------------------------------------------------------------


def test_list_shows_each_segment_with_its_live_member_count(marketer, customers):
    Segment.objects.create(name="Pro plan", description="Paying", definition=PRO)
    Segment.objects.create(name="Buyers", definition={"conditions": [
        {"type": "event", "event": "Order Completed", "aggregate": "count", "operator": "gte", "value": 1}]})
    Segment.objects.create(name="Broken", definition={"conditions": [{"type": "colour"}]})
    response = marketer.get(LIST_URL)
    assert response.status_code == 200
    rows = {segment.name: count for segment, count in response.context["rows"]}
    assert rows == {"Broken": None, "Buyers": 3, "Pro plan": 12}
    assert b"Paying" in response.content
    assert b"invalid" in response.content


def test_list_counts_every_segment_in_one_query(marketer, customers):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert marketer.get(LIST_URL).status_code == 200
        return len(captured)

    Segment.objects.create(name="One", definition=PRO)
    one = queries()
    for n in range(4):
        Segment.objects.create(name=f"More {n}", definition=PRO)
    assert queries() == one


def test_list_needs_the_view_capability(client, make_user):
    assert client.get(LIST_URL).status_code == 302  # to the login page
    client.force_login(make_user(None))
    assert client.get(LIST_URL).status_code == 403


# --- the editor -----------------------------------------------------------------------


def test_new_segment_page_starts_empty_with_everyone_counted(marketer, customers):
    response = marketer.get(NEW_URL)
    assert response.status_code == 200
    assert response.context["rows"] == []
    assert response.context["count"]["total"] == 13
    assert b'id="segment-count"' in response.content
    assert b"segments.css" in response.content


def test_creating_a_segment_stores_its_canonical_definition(marketer, customers, make_user):
    response = marketer.post(NEW_URL, pro_form())
    assert response.status_code == 302
    assert response["Location"] == LIST_URL
    segment = Segment.objects.get()
    assert (segment.name, segment.description) == ("Pro plan", "Everyone on pro")
    assert segment.definition == PRO
    assert segment.created_by.username == "marketer-user"


def test_creating_through_htmx_redirects_the_client(marketer):
    response = marketer.post(NEW_URL, pro_form(), **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == LIST_URL
    assert Segment.objects.filter(name="Pro plan").exists()


def test_rows_are_typed_into_the_definition(marketer):
    data = pro_form(**{
        "match": "any",
        "conditions.0.type": "event", "conditions.0.event": "Order Completed", "conditions.0.aggregate": "sum",
        "conditions.0.property": "revenue", "conditions.0.operator": "gte", "conditions.0.value": "500",
        "conditions.0.within_days": "365", "conditions.0.where.property": "category",
        "conditions.0.where.operator": "in", "conditions.0.where.value": "dresses, 42, \"7\"",
        "conditions.1.type": "group", "conditions.1.match": "any",
        "conditions.1.conditions.0.type": "field", "conditions.1.conditions.0.field": "first_seen_at",
        "conditions.1.conditions.0.operator": "within_days", "conditions.1.conditions.0.value": "30",
        "conditions.1.conditions.1.type": "reachable", "conditions.1.conditions.1.channel": "sms",
        "conditions.1.conditions.1.value": "false",
        "conditions.2.type": "consent", "conditions.2.channel": "sms", "conditions.2.category": "marketing",
        "conditions.2.operator": "eq", "conditions.2.status": "opted_in",
    })
    del data["conditions.0.trait"]
    assert marketer.post(NEW_URL, data).status_code == 302
    assert Segment.objects.get().definition == {"match": "any", "conditions": [
        {"type": "event", "event": "Order Completed", "aggregate": "sum", "property": "revenue",
         "operator": "gte", "value": 500, "within_days": 365,
         "where": {"property": "category", "operator": "in", "value": ["dresses", 42, "7"]}},
        {"type": "group", "match": "any", "conditions": [
            {"type": "field", "field": "first_seen_at", "operator": "within_days", "value": 30},
            {"type": "reachable", "channel": "sms", "value": False},
        ]},
        {"type": "consent", "channel": "sms", "category": "marketing", "status": "opted_in"},
    ]}


def test_editing_shows_the_saved_rows_and_saves_changes(marketer, customers):
    segment = Segment.objects.create(name="Pro plan", definition=PRO)
    url = reverse("customers:segment-edit", args=[segment.pk])
    page = marketer.get(url)
    assert page.status_code == 200
    assert b'name="conditions.0.trait"' in page.content and b'value="plan"' in page.content
    assert page.context["count"]["total"] == 12
    response = marketer.post(url, pro_form(name="Pro plan (renamed)", **{"conditions.0.value": "free"}))
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.name == "Pro plan (renamed)"
    assert segment.definition["conditions"][0]["value"] == "free"


def test_an_invalid_definition_is_answered_inline_with_422_and_nothing_saved(marketer):
    data = pro_form(**{
        "conditions.0.operator": "gt", "conditions.0.value": "lots",
        "conditions.1.type": "event", "conditions.1.event": "", "conditions.1.aggregate": "count",
        "conditions.1.operator": "gte", "conditions.1.value": "3",
    })
    response = marketer.post(NEW_URL, data, **HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="segment-form"')  # the form partial, not the page
    assert "<html" not in html
    assert field_errors(response) == [
        ("conditions0value", "must be a number"),
        ("conditions1event", "is required"),
    ]
    assert html.count('class="field-error"') == 2
    assert 'aria-invalid="true"' in html
    assert 'value="lots"' in html  # what was typed is kept
    assert Segment.objects.count() == 0


def test_a_taken_name_is_answered_inline_and_nothing_saved(marketer):
    Segment.objects.create(name="Pro plan", definition=PRO)
    response = marketer.post(NEW_URL, pro_form(**{"conditions.0.value": "free"}), **HTMX)
    assert response.status_code == 422
    assert b"Another segment already has this name." in response.content
    assert list(Segment.objects.values_list("definition", flat=True)) == [PRO]


def test_adding_a_row_answers_the_editor_and_announces_the_change(marketer):
    response = marketer.post(NEW_URL, pro_form(op="add:conditions:event"), **HTMX)
    assert response.status_code == 200
    assert response["HX-Trigger-After-Settle"] == '{"segment-changed": {}}'
    assert response.content.decode().lstrip().startswith('<div id="editor"')
    shown = inputs(response)
    assert (shown["conditions.0.type"], shown["conditions.0.value"]) == ("trait", "pro")
    assert (shown["conditions.1.type"], shown["conditions.1.aggregate"]) == ("event", "count")
    assert Segment.objects.count() == 0


def test_adding_inside_a_group_and_removing_a_row(marketer):
    data = pro_form(**{"conditions.1.type": "group", "conditions.1.match": "any",
                       "conditions.1.conditions.0.type": "reachable", "conditions.1.conditions.0.channel": "sms"})
    added = inputs(marketer.post(NEW_URL, data | {"op": "add:conditions.1.conditions:consent"}, **HTMX))
    assert {k: v for k, v in added.items() if k.endswith(".type")} == {
        "conditions.0.type": "trait",
        "conditions.1.type": "group",
        "conditions.1.conditions.0.type": "reachable",
        "conditions.1.conditions.1.type": "consent",
    }
    removed = inputs(marketer.post(NEW_URL, data | {"op": "remove:conditions.0"}, **HTMX))
    assert {k: v for k, v in removed.items() if k.endswith(".type")} == {
        "conditions.0.type": "group",
        "conditions.0.conditions.0.type": "reachable",
    }
    assert removed["conditions.0.conditions.0.channel"] == "sms"


def test_changing_a_rows_type_resets_it_to_that_types_fields(marketer):
    response = marketer.post(NEW_URL, pro_form(**{"conditions.0.type": "consent", "op": "retype:conditions.0"}), **HTMX)
    assert inputs(response) == {
        "conditions.0.type": "consent", "conditions.0.channel": "email", "conditions.0.category": "marketing",
        "conditions.0.operator": "eq", "conditions.0.status": "opted_in",
    }


# --- the live count -------------------------------------------------------------------


def test_live_count_fragment_shows_the_total_a_sample_and_the_json(marketer, customers):
    response = marketer.post(COUNT_URL, pro_form(), **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="segment-count"')
    assert '<strong data-total>12</strong> customers' in html
    linked = re.findall(r'href="/customers/(\d+)/"', html)
    assert linked == [str(c.pk) for c in customers[:10]]  # the ten seen most recently
    assert "&quot;trait&quot;: &quot;plan&quot;" in html


def test_live_count_lists_what_to_finish_when_the_definition_is_incomplete(marketer, customers):
    response = marketer.post(COUNT_URL, pro_form(**{"conditions.0.trait": ""}), **HTMX)
    assert response.status_code == 200
    assert "<li>Condition 1 trait: is required</li>" in response.content.decode()
    assert "data-total" not in response.content.decode()


def test_live_count_is_two_queries(marketer, customers):
    marketer.get(LIST_URL)  # warm the session and role lookups
    with CaptureQueriesContext(connection) as captured:
        marketer.post(COUNT_URL, pro_form(), **HTMX)
    segment_queries = [q for q in captured if "customers_customer" in q["sql"]]
    assert len(segment_queries) == 2  # the count and the sample


# --- access ---------------------------------------------------------------------------


def test_messaging_team_can_view_and_explore_but_not_save(messaging, customers):
    segment = Segment.objects.create(name="Pro plan", definition=PRO)
    url = reverse("customers:segment-edit", args=[segment.pk])
    assert messaging.get(LIST_URL).status_code == 200
    page = messaging.get(url)
    assert page.status_code == 200
    assert b"Save segment" not in page.content
    assert messaging.post(COUNT_URL, pro_form(), **HTMX).status_code == 200
    assert messaging.post(url, pro_form(op="add:conditions:trait"), **HTMX).status_code == 200

    assert messaging.post(url, pro_form(name="Hijacked", **{"conditions.0.value": "free"})).status_code == 403
    assert messaging.post(NEW_URL, pro_form(name="New one")).status_code == 403
    segment.refresh_from_db()
    assert (segment.name, segment.definition) == ("Pro plan", PRO)
    assert Segment.objects.count() == 1


def test_editing_a_missing_segment_is_404(marketer):
    assert marketer.get(reverse("customers:segment-edit", args=[999])).status_code == 404


# --- pagination -----------------------------------------------------------------------


def test_list_shows_fifty_segments_a_page_in_name_order(marketer, customers):
    Segment.objects.bulk_create(Segment(name=f"Segment {n:02}", definition=PRO) for n in range(51))
    first = marketer.get(LIST_URL)
    assert first.status_code == 200
    assert [segment.name for segment, _ in first.context["rows"]] == [f"Segment {n:02}" for n in range(50)]
    assert {count for _, count in first.context["rows"]} == {12}
    html = first.content.decode()
    assert '<span class="muted">Page 1 of 2</span>' in html
    assert '<a class="btn btn-sm" rel="next" href="?page=2">Next →</a>' in html
    assert 'rel="prev"' not in html

    second = marketer.get(LIST_URL, {"page": 2})
    assert [(segment.name, count) for segment, count in second.context["rows"]] == [("Segment 50", 12)]
    html = second.content.decode()
    assert '<span class="muted">Page 2 of 2</span>' in html
    assert '<a class="btn btn-sm" rel="prev" href="?page=1">← Previous</a>' in html
    assert 'rel="next"' not in html


def test_list_page_out_of_range_or_malformed_falls_back_to_a_real_page(marketer):
    Segment.objects.bulk_create(Segment(name=f"Segment {n:02}", definition=PRO) for n in range(51))
    assert [s.name for s, _ in marketer.get(LIST_URL, {"page": 99}).context["rows"]] == ["Segment 50"]
    assert len(marketer.get(LIST_URL, {"page": "abc"}).context["rows"]) == 50


def test_a_single_page_list_has_no_pagination(marketer):
    Segment.objects.create(name="Pro plan", definition=PRO)
    assert b'class="pagination"' not in marketer.get(LIST_URL).content


def test_each_list_page_counts_its_segments_in_one_customer_query(marketer, customers):
    Segment.objects.bulk_create(Segment(name=f"Segment {n:02}", definition=PRO) for n in range(75))
    for page in (1, 2):
        with CaptureQueriesContext(connection) as captured:
            response = marketer.get(LIST_URL, {"page": page})
        assert response.status_code == 200
        assert len(response.context["rows"]) == (50, 25)[page - 1]
        assert [q["sql"].count("COUNT(") for q in captured if "customers_customer" in q["sql"]] == [(50, 25)[page - 1]]


def test_list_offers_marketers_a_new_segment_and_others_an_exploration(make_user):
    from django.test import Client

    new_url = reverse("customers:segment-new")
    marketer, messaging = Client(), Client()
    marketer.force_login(make_user(Role.MARKETER))
    messaging.force_login(make_user(Role.MESSAGING))
    marketer_page = marketer.get(LIST_URL).content.decode()
    assert f'href="{new_url}">New segment</a>' in marketer_page
    assert "Explore an audience" not in marketer_page
    messaging_page = messaging.get(LIST_URL).content.decode()
    assert "Explore an audience</a>" in messaging_page
    assert ">New segment</a>" not in messaging_page
