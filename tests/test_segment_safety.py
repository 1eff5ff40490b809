"""Segments never turn odd input into a 500: keys named like lookups, numbers too long to
convert, definitions that validate but do not compile, and a count that fails on the list."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.urls import reverse

from customers.models import Customer, Event, Segment
from customers.segment_conditions import TraitCondition
from customers.segments import (
    COUNT_FAILED,
    NOT_COMPILABLE,
    InvalidSegment,
    compile_segment,
    do_save_segment,
    member_count,
    member_counts,
    validate_definition,
)
from orchestrator.roles import Role

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
LIST_URL = reverse("customers:segments")
NEW_URL = reverse("customers:segment-new")
COUNT_URL = reverse("customers:segment-count")
HTMX = {"HTTP_HX_REQUEST": "true"}

# Each is "<key>.<key>" where the second key is also the name of a Django lookup or transform.
LOOKUP_NAMED_KEYS = [
    "score.gt", "x.in", "a.exact", "a.isnull", "a.regex", "a.contains", "a.year", "a.lt", "a.startswith", "a.iexact",
]

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def marketer(client, make_user):
    client.force_login(make_user(Role.MARKETER))
    return client


def trait(name: str, operator: str, value=None) -> dict:
    return {"type": "trait", "trait": name, "operator": operator} | ({} if value is None else {"value": value})


def nested(path: str, value) -> dict:
    """{"score": {"gt": value}} for "score.gt"."""
    outer, inner = path.split(".")
    return {outer: {inner: value}}


def ids(definition: dict) -> set[str]:
    return set(compile_segment(definition).values_list("external_id", flat=True))


# --- keys named like Django lookups ---------------------------------------------------


def lookup_named(path: str) -> None:
    outer = path.split(".")[0]
    Customer.objects.create(external_id="seven", traits=nested(path, 7))
    Customer.objects.create(external_id="text", traits=nested(path, "seven"))
    # The outer key alone: matched if "gt", "in", "exact"… were read as a lookup on it.
    Customer.objects.create(external_id="outer-only", traits={outer: 7})
    Customer.objects.create(external_id="none", traits={})


EXPECTED_BY_OPERATOR = [
    (trait("", "eq", 7), {"seven"}),
    (trait("", "neq", 7), {"text", "outer-only", "none"}),
    (trait("", "in", [7, "seven"]), {"seven", "text"}),
    (trait("", "not_in", [7]), {"text", "outer-only", "none"}),
    (trait("", "contains", "EVE"), {"text"}),
    (trait("", "exists"), {"seven", "text"}),
    (trait("", "not_exists"), {"outer-only", "none"}),
    (trait("", "gt", 5), {"seven"}),
    (trait("", "lte", 7), {"seven"}),
]


@pytest.mark.parametrize("path", LOOKUP_NAMED_KEYS)
def test_trait_keys_named_like_lookups_are_plain_keys_for_every_operator(path):
    lookup_named(path)
    for condition, expected in EXPECTED_BY_OPERATOR:
        definition = {"conditions": [condition | {"trait": path}]}
        assert ids(definition) == expected, condition["operator"]
        assert member_count(definition) == len(expected), condition["operator"]


@pytest.mark.parametrize("path", LOOKUP_NAMED_KEYS)
def test_event_where_properties_named_like_lookups_are_plain_keys(path):
    outer = path.split(".")[0]
    for external_id, properties in (("nested", nested(path, 7)), ("outer-only", {outer: 7}), ("text", nested(path, "seven"))):
        customer = Customer.objects.create(external_id=external_id)
        Event.objects.create(customer=customer, name="Viewed", properties=properties, occurred_at=NOW, source="test")

    def where(operator: str, value=None) -> dict:
        filt = {"property": path, "operator": operator} | ({} if value is None else {"value": value})
        return {"conditions": [{"type": "event", "event": "Viewed", "aggregate": "count", "operator": "gte", "value": 1, "where": filt}]}

    assert ids(where("eq", 7)) == {"nested"}
    assert ids(where("in", ["seven"])) == {"text"}
    assert ids(where("contains", "seven")) == {"text"}
    assert ids(where("neq", 7)) == {"outer-only", "text"}
    assert ids(where("gt", 6)) == {"nested"}
    assert member_count(where("not_exists")) == 1


def test_list_page_counts_segments_whose_keys_are_named_like_lookups(marketer):
    for path in LOOKUP_NAMED_KEYS:
        Customer.objects.create(external_id=f"has-{path}", traits=nested(path, 7))
        Customer.objects.create(external_id=f"outer-{path}", traits={path.split(".")[0]: 7})
        Segment.objects.create(name=path, definition={"match": "all", "conditions": [trait(path, "eq", 7)]})
    response = marketer.get(LIST_URL)
    assert response.status_code == 200
    assert {segment.name: count for segment, count in response.context["rows"]} == dict.fromkeys(LOOKUP_NAMED_KEYS, 1)


def test_a_segment_on_a_lookup_named_trait_saves_and_the_list_still_opens(marketer):
    Customer.objects.create(external_id="scored", traits={"score": {"gt": 5}})
    response = marketer.post(NEW_URL, {
        "name": "Scored", "description": "", "match": "all",
        "conditions.0.type": "trait", "conditions.0.trait": "score.gt",
        "conditions.0.operator": "eq", "conditions.0.value": "5",
    })
    assert response.status_code == 302
    assert Segment.objects.get().definition == {"match": "all", "conditions": [trait("score.gt", "eq", 5)]}
    listed = marketer.get(LIST_URL)
    assert listed.status_code == 200
    assert [(segment.name, count) for segment, count in listed.context["rows"]] == [("Scored", 1)]


# --- definitions that validate but do not compile -------------------------------------


@pytest.fixture
def broken_traits(monkeypatch):
    """Trait "uncompilable" builds a filter on a missing field (FieldError when compiled);
    trait "crashing" compiles but fails in PostgreSQL (division by zero)."""
    original = TraitCondition.to_q

    def to_q(self, ctx):
        if self.trait == "uncompilable":
            return Q(no_such_field=1)
        if self.trait == "crashing":
            return Q(RawSQL("1 / 0 = 1", [], output_field=BooleanField()))
        return original(self, ctx)

    monkeypatch.setattr(TraitCondition, "to_q", to_q)


def test_do_save_segment_refuses_a_definition_that_does_not_compile_and_saves_nothing(broken_traits, caplog):
    existing = do_save_segment(None, name="Pro", description="", definition={"conditions": [trait("plan", "eq", "pro")]})
    definition = {"conditions": [trait("uncompilable", "eq", 1)]}
    validate_definition(definition)  # valid as a definition
    with pytest.raises(InvalidSegment) as raised:
        do_save_segment(None, name="New", description="", definition=definition)
    assert raised.value.problems == [("", NOT_COMPILABLE)]
    with pytest.raises(InvalidSegment):
        do_save_segment(existing, name="Renamed", description="", definition=definition)
    existing.refresh_from_db()
    assert (existing.name, existing.definition) == ("Pro", {"match": "all", "conditions": [trait("plan", "eq", "pro")]})
    assert list(Segment.objects.values_list("name", flat=True)) == ["Pro"]
    assert [(r.name, r.levelname) for r in caplog.records if r.name == "customers.segments"] == [
        ("customers.segments", "ERROR"), ("customers.segments", "ERROR"),
    ]


def test_saving_a_definition_that_does_not_compile_is_answered_inline_with_422(marketer, broken_traits):
    response = marketer.post(NEW_URL, {
        "name": "Broken", "description": "", "match": "all",
        "conditions.0.type": "trait", "conditions.0.trait": "uncompilable",
        "conditions.0.operator": "eq", "conditions.0.value": "1",
    }, **HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="segment-form"')
    assert html.count(f"<p>{NOT_COMPILABLE}</p>") == 1
    assert Segment.objects.count() == 0


def test_list_shows_a_dash_for_a_segment_that_cannot_be_compiled_and_counts_the_rest(marketer, broken_traits, caplog):
    Customer.objects.create(external_id="pro", traits={"plan": "pro"})
    broken = Segment.objects.create(name="Broken", definition={"conditions": [trait("uncompilable", "eq", 1)]})
    Segment.objects.create(name="Pro", definition={"conditions": [trait("plan", "eq", "pro")]})
    response = marketer.get(LIST_URL)
    assert response.status_code == 200
    assert [(segment.name, count) for segment, count in response.context["rows"]] == [("Broken", COUNT_FAILED), ("Pro", 1)]
    assert re.findall(r"<td class=\"num\" data-count>(.*?)</td>", response.content.decode()) == [
        '<span class="muted" title="This segment could not be counted just now">—</span>', "1",
    ]
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "customers.segments"] == [
        ("ERROR", f"Segment {broken.pk} cannot be compiled; its count is left out"),
    ]


def test_list_shows_a_dash_for_a_segment_whose_count_fails_in_the_database(marketer, broken_traits, caplog):
    Customer.objects.create(external_id="pro", traits={"plan": "pro"})
    crashing = Segment.objects.create(name="Crashing", definition={"conditions": [trait("crashing", "eq", 1)]})
    Segment.objects.create(name="Pro", definition={"conditions": [trait("plan", "eq", "pro")]})
    Segment.objects.create(name="Everyone", definition={"conditions": []})
    response = marketer.get(LIST_URL)
    assert response.status_code == 200
    assert [(segment.name, count) for segment, count in response.context["rows"]] == [
        ("Crashing", COUNT_FAILED), ("Everyone", 1), ("Pro", 1),
    ]
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "customers.segments"] == [
        ("ERROR", "Counting 3 segments in one query failed; counting each alone"),
        ("ERROR", f"Segment {crashing.pk} cannot be counted"),
    ]


def test_member_counts_marks_invalid_as_none_and_uncountable_as_failed(broken_traits):
    Customer.objects.create(external_id="pro", traits={"plan": "pro"})
    assert member_counts({
        "pro": {"conditions": [trait("plan", "eq", "pro")]},
        "invalid": {"conditions": [{"type": "colour"}]},
        "uncompilable": {"conditions": [trait("uncompilable", "eq", 1)]},
        "crashing": {"conditions": [trait("crashing", "eq", 1)]},
    }) == {"pro": 1, "invalid": None, "uncompilable": COUNT_FAILED, "crashing": COUNT_FAILED}


# --- numbers too long to convert ------------------------------------------------------

HUGE = "9" * 400  # int() reads it; converting it to a float overflows
HUGER = "9" * 5000  # more digits than int() reads by default


def count_form(**rows) -> dict:
    return {"name": "", "description": "", "match": "all"} | {f"conditions.0.{k}": v for k, v in rows.items()}


@pytest.mark.parametrize("digits", [HUGE, HUGER, f"-{HUGE}", f"{HUGE}.5"])
def test_live_count_says_a_too_long_number_must_be_a_number(marketer, digits):
    response = marketer.post(COUNT_URL, count_form(type="trait", trait="age", operator="gt", value=digits), **HTMX)
    assert response.status_code == 200  # the count panel answers problems with 200, for htmx to swap
    html = response.content.decode()
    assert re.findall(r"<li>(.*?)</li>", html) == ["Condition 1 value: must be a number"]
    assert "data-total" not in html


@pytest.mark.parametrize(("key", "reason"), [("value", "must be a whole number"), ("within_days", "must be a whole number")])
@pytest.mark.parametrize("digits", [HUGE, HUGER])
def test_live_count_says_a_too_long_event_count_or_window_is_not_a_whole_number(marketer, key, reason, digits):
    rows = {"type": "event", "event": "Order Completed", "aggregate": "count", "operator": "gte", "value": "1"}
    response = marketer.post(COUNT_URL, count_form(**rows | {key: digits}), **HTMX)
    assert response.status_code == 200
    label = key.replace("_", " ")
    assert re.findall(r"<li>(.*?)</li>", response.content.decode()) == [f"Condition 1 {label}: {reason}"]


def test_saving_a_too_long_number_is_answered_at_its_field_with_422(marketer):
    response = marketer.post(NEW_URL, count_form(type="trait", trait="age", operator="gte", value=HUGER) | {"name": "Old"}, **HTMX)
    assert response.status_code == 422
    assert re.findall(r'<p class="field-error" id="([^"]+)-error" role="alert">([^<]*)</p>', response.content.decode()) == [
        ("conditions0value", "must be a number"),
    ]
    assert Segment.objects.count() == 0


def test_a_thirty_digit_number_is_still_a_number(marketer):
    Customer.objects.create(external_id="rich", traits={"worth": "9" * 30})
    Customer.objects.create(external_id="poor", traits={"worth": 1})
    response = marketer.post(COUNT_URL, count_form(type="trait", trait="worth", operator="gte", value="9" * 30), **HTMX)
    assert response.status_code == 200
    assert "<strong data-total>1</strong> customer</p>" in response.content.decode()


@pytest.mark.parametrize(
    ("condition", "path", "reason"),
    [
        (trait("age", "gt", 10**400), "value", "must be a number"),
        (trait("age", "gt", -(10**30)), "value", "must be a number"),
        (trait("age", "gt", float("nan")), "value", "must be a number"),
        (trait("age", "eq", 10**400), "value", "must be text, a number or true/false"),
        (trait("age", "eq", float("inf")), "value", "must be text, a number or true/false"),
        (trait("age", "in", [1, 10**400]), "value", "must hold only text, numbers or true/false"),
        ({"type": "event", "event": "X", "aggregate": "count", "operator": "gte", "value": 10**5000}, "value", "must be a whole number"),
        ({"type": "field", "field": "last_seen_at", "operator": "within_days", "value": 10**400}, "value", "must be a whole number"),
    ],
)
def test_definitions_with_numbers_beyond_the_bound_are_invalid(condition, path, reason):
    with pytest.raises(InvalidSegment) as raised:
        validate_definition({"conditions": [condition]})
    assert raised.value.problems == [(f"conditions.0.{path}", reason)]


def test_numbers_just_inside_the_bound_are_valid():
    Customer.objects.create(external_id="big", traits={"n": 10**30 - 1})
    assert member_count({"conditions": [trait("n", "gte", 10**30 - 1)]}) == 1
    assert member_count({"conditions": [trait("n", "eq", 10**30 - 1)]}) == 1
    assert member_count({"conditions": [trait("n", "lt", -(10**30) + 1)]}) == 0
