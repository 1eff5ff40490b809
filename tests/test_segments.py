"""Segments: every condition type and operator, with exact member sets, in one query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from customers.enums import Category, Channel, ConsentStatus
from customers.models import ChannelAffinity, Consent, ContactPoint, Customer, Event, Segment
from customers.segments import (
    CONDITIONS,
    MAX_CONDITIONS,
    ConditionType,
    InvalidSegment,
    compile_segment,
    do_save_segment,
    is_member,
    member_count,
    validate_definition,
)
from orchestrator.governor.loading import load_policy
from tests import api_factories as factories
from tests.api_factories import opted_in

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def person(external_id: str, **fields) -> Customer:
    fields.setdefault("first_seen_at", NOW - timedelta(days=400))
    fields.setdefault("last_seen_at", NOW - timedelta(days=1))
    return Customer.objects.create(external_id=external_id, **fields)


def did(customer: Customer, name: str, *, days_ago: float = 1, **properties) -> Event:
    return Event.objects.create(
        customer=customer, name=name, properties=properties,
        occurred_at=NOW - timedelta(days=days_ago), source="test",
    )


def members(*conditions, match: str = "all") -> set[str]:
    definition = {"match": match, "conditions": list(conditions)}
    return set(compile_segment(definition).values_list("external_id", flat=True))


def trait(name: str, operator: str, value=None) -> dict:
    return {"type": "trait", "trait": name, "operator": operator} | ({} if value is None else {"value": value})


def problems_of(definition) -> list[tuple[str, str]]:
    with pytest.raises(InvalidSegment) as raised:
        validate_definition(definition)
    return raised.value.problems


# --- traits ---------------------------------------------------------------------------


@pytest.fixture
def plans():
    person("pro", traits={"plan": "pro", "age": 40, "tags": ["vip"], "address": {"city": "Paris"}, "signup-source": "ads"})
    person("pro-caps", traits={"plan": "Pro", "age": "35"})
    person("free", traits={"plan": "free", "age": 30, "vip": True})
    person("null-plan", traits={"plan": None, "age": "thirty"})
    person("no-traits", traits={})


def test_trait_eq_matches_the_exact_json_value(plans):
    assert members(trait("plan", "eq", "pro")) == {"pro"}
    assert members(trait("age", "eq", 30)) == {"free"}
    assert members(trait("age", "eq", 30.0)) == {"free"}
    assert members(trait("vip", "eq", True)) == {"free"}


def test_trait_neq_includes_customers_without_the_trait(plans):
    assert members(trait("plan", "neq", "pro")) == {"pro-caps", "free", "null-plan", "no-traits"}


def test_trait_in_and_not_in(plans):
    assert members(trait("plan", "in", ["pro", "free"])) == {"pro", "free"}
    assert members(trait("plan", "not_in", ["pro", "free"])) == {"pro-caps", "null-plan", "no-traits"}


def test_trait_contains_is_case_insensitive_text_search(plans):
    assert members(trait("plan", "contains", "PR")) == {"pro", "pro-caps"}
    assert members(trait("tags", "contains", "vip")) == {"pro"}


def test_trait_exists_treats_json_null_as_missing(plans):
    assert members(trait("plan", "exists")) == {"pro", "pro-caps", "free"}
    assert members(trait("plan", "not_exists")) == {"null-plan", "no-traits"}


def test_numeric_trait_comparisons_read_numbers_and_numeric_text_only(plans):
    # 40 (number), "35" (numeric text) and 30 (number) compare; "thirty" and missing never do.
    assert members(trait("age", "gt", 35)) == {"pro"}
    assert members(trait("age", "gte", 35)) == {"pro", "pro-caps"}
    assert members(trait("age", "lt", 35)) == {"free"}
    assert members(trait("age", "lte", 35)) == {"free", "pro-caps"}
    assert members(trait("age", "gte", 30.5)) == {"pro", "pro-caps"}


def test_numeric_comparison_ignores_booleans(plans):
    assert members(trait("vip", "gte", 0)) == set()


def test_nested_and_hyphenated_trait_names(plans):
    assert members(trait("address.city", "eq", "Paris")) == {"pro"}
    assert members(trait("signup-source", "in", ["ads"])) == {"pro"}
    assert members(trait("signup-source", "exists")) == {"pro"}
    assert members(trait("address.city", "not_exists")) == {"pro-caps", "free", "null-plan", "no-traits"}


# --- customer fields ------------------------------------------------------------------


@pytest.fixture
def profiles():
    person("ann", email="Ann@Example.com", phone="+33612345678", timezone="Europe/Paris", locale="fr-FR")
    person("bob", email="bob@example.org", timezone="Europe/Berlin", locale="de-DE")
    person("cy", email="", timezone="America/New_York", locale="")


def field(name: str, operator: str, value=None) -> dict:
    return {"type": "field", "field": name, "operator": operator} | ({} if value is None else {"value": value})


def test_text_fields_compare_case_insensitively(profiles):
    assert members(field("email", "eq", "ann@example.com")) == {"ann"}
    assert members(field("email", "neq", "ann@example.com")) == {"bob", "cy"}
    assert members(field("timezone", "in", ["Europe/Paris", "europe/berlin"])) == {"ann", "bob"}
    assert members(field("timezone", "not_in", ["Europe/Paris", "Europe/Berlin"])) == {"cy"}
    assert members(field("email", "contains", "EXAMPLE.ORG")) == {"bob"}


def test_text_field_exists_means_not_blank(profiles):
    assert members(field("phone", "exists")) == {"ann"}
    assert members(field("phone", "not_exists")) == {"bob", "cy"}
    assert members(field("locale", "exists")) == {"ann", "bob"}


def test_first_seen_within_days_includes_the_boundary():
    person("exactly-30", first_seen_at=NOW - timedelta(days=30))
    person("31-days", first_seen_at=NOW - timedelta(days=31))
    person("today", first_seen_at=NOW)
    assert members(field("first_seen_at", "within_days", 30)) == {"exactly-30", "today"}
    assert members(field("first_seen_at", "not_within_days", 30)) == {"31-days"}


def test_last_seen_before_and_after_a_date():
    person("may", last_seen_at=datetime(2026, 5, 10, tzinfo=UTC))
    person("june", last_seen_at=datetime(2026, 6, 2, 8, tzinfo=UTC))
    assert members(field("last_seen_at", "before", "2026-06-01")) == {"may"}
    assert members(field("last_seen_at", "after", "2026-06-01")) == {"june"}
    assert members(field("last_seen_at", "after", "2026-06-02T09:00:00+00:00")) == set()


# --- events ---------------------------------------------------------------------------


def orders(operator: str, value: int, within_days: int | None = 180, **extra) -> dict:
    condition = {"type": "event", "event": "Order Completed", "aggregate": "count", "operator": operator, "value": value}
    return condition | ({"within_days": within_days} if within_days else {}) | extra


@pytest.fixture
def shoppers():
    three = person("three")
    for days in (1, 50, 180):  # the last one exactly on the window's edge
        did(three, "Order Completed", days_ago=days)
    two = person("two-plus-old")
    for days in (10, 20, 181):  # the old one is outside the window
        did(two, "Order Completed", days_ago=days)
    did(person("browser"), "Product Viewed")
    person("no-events")


def test_count_gte_counts_events_inside_the_window_including_its_edge(shoppers):
    assert members(orders("gte", 3)) == {"three"}
    assert members(orders("gte", 3, within_days=None)) == {"three", "two-plus-old"}


def test_count_lt_includes_customers_with_zero_and_with_no_events(shoppers):
    assert members(orders("lt", 3)) == {"two-plus-old", "browser", "no-events"}
    assert members(orders("lte", 2)) == {"two-plus-old", "browser", "no-events"}


def test_count_eq_and_neq(shoppers):
    assert members(orders("eq", 2)) == {"two-plus-old"}
    assert members(orders("eq", 0)) == {"browser", "no-events"}
    assert members(orders("neq", 2)) == {"three", "browser", "no-events"}
    assert members(orders("neq", 0)) == {"three", "two-plus-old"}


def test_count_gt(shoppers):
    assert members(orders("gt", 2)) == {"three"}
    assert members(orders("gt", 0)) == {"three", "two-plus-old"}
    assert members(orders("gte", 1)) == {"three", "two-plus-old"}


def last_opened(operator: str, days: int) -> dict:
    return {"type": "event", "event": "App Opened", "aggregate": "last_occurred", "operator": operator, "value": days}


@pytest.fixture
def openers():
    recent = person("recent")
    did(recent, "App Opened", days_ago=30)
    did(recent, "App Opened", days_ago=7)  # exactly on the edge
    did(person("lapsed"), "App Opened", days_ago=8)
    did(person("other-event"), "Order Completed", days_ago=1)
    person("no-events")


def test_last_occurred_within_days(openers):
    assert members(last_opened("within_days", 7)) == {"recent"}


def test_last_occurred_not_within_days_includes_those_who_never_did_it(openers):
    assert members(last_opened("not_within_days", 7)) == {"lapsed", "other-event", "no-events"}


def test_never_occurred_includes_customers_with_no_events(openers):
    never = {"type": "event", "event": "App Opened", "aggregate": "never_occurred"}
    assert members(never) == {"other-event", "no-events"}
    assert members(never | {"within_days": 7}) == {"lapsed", "other-event", "no-events"}


def revenue(aggregate: str, operator: str, value, within_days: int | None = 365) -> dict:
    condition = {"type": "event", "event": "Order Completed", "aggregate": aggregate, "property": "revenue",
                 "operator": operator, "value": value}
    return condition | ({"within_days": within_days} if within_days else {})


@pytest.fixture
def spenders():
    big = person("big")
    did(big, "Order Completed", revenue=300, days_ago=10)
    did(big, "Order Completed", revenue="200.50", days_ago=365)  # numeric text, on the edge
    did(big, "Order Completed", revenue="n/a", days_ago=5)  # not a number: ignored
    old = person("old-big")
    did(old, "Order Completed", revenue=900, days_ago=366)
    did(old, "Order Completed", revenue=100, days_ago=3)
    small = person("small")
    did(small, "Order Completed", revenue=20.5, days_ago=2)
    did(small, "Order Completed", days_ago=2)  # no revenue at all
    did(person("refund-only"), "Order Refunded", revenue=500)
    person("no-events")


def test_sum_of_a_numeric_property_within_a_window(spenders):
    assert members(revenue("sum", "gte", 500)) == {"big"}
    assert members(revenue("sum", "gte", 500, within_days=None)) == {"big", "old-big"}
    assert members(revenue("sum", "eq", 100)) == {"old-big"}


def test_sum_below_a_threshold_includes_customers_with_nothing(spenders):
    assert members(revenue("sum", "lt", 100)) == {"small", "refund-only", "no-events"}
    assert members(revenue("sum", "lte", 100)) == {"old-big", "small", "refund-only", "no-events"}


def test_avg_of_a_numeric_property_matches_only_customers_with_values(spenders):
    assert members(revenue("avg", "gt", 200)) == {"big"}  # (300 + 200.50) / 2
    assert members(revenue("avg", "lt", 200)) == {"old-big", "small"}
    assert members(revenue("avg", "neq", 100)) == {"big", "small"}


def test_event_where_filters_on_a_property():
    dresses = person("dresses")
    did(dresses, "Product Viewed", category="dresses", price=80)
    did(dresses, "Product Viewed", category="dresses", price=120)
    shoes = person("shoes")
    did(shoes, "Product Viewed", category="shoes", price=150)
    did(shoes, "Product Viewed", price=10)
    person("no-events")
    viewed = {"type": "event", "event": "Product Viewed", "aggregate": "count", "operator": "gte", "value": 2}
    assert members(viewed | {"where": {"property": "category", "operator": "eq", "value": "dresses"}}) == {"dresses"}
    assert members(viewed | {"value": 1, "where": {"property": "price", "operator": "gt", "value": 100}}) == {"dresses", "shoes"}
    never_dresses = {"type": "event", "event": "Product Viewed", "aggregate": "never_occurred",
                     "where": {"property": "category", "operator": "in", "value": ["dresses"]}}
    assert members(never_dresses) == {"shoes", "no-events"}
    no_category = viewed | {"value": 1, "where": {"property": "category", "operator": "not_exists"}}
    assert members(no_category) == {"shoes"}


# --- consent and reach ----------------------------------------------------------------


@pytest.fixture
def consented():
    def consent(customer, channel, status, category=Category.MARKETING):
        Consent.objects.create(customer=customer, channel=channel, category=category, status=status, source="test")

    consent(person("opted-in"), Channel.SMS, ConsentStatus.OPTED_IN)
    consent(person("unsubscribed"), Channel.SMS, ConsentStatus.UNSUBSCRIBED)
    consent(person("email-only"), Channel.EMAIL, ConsentStatus.OPTED_IN)
    consent(person("transactional"), Channel.SMS, ConsentStatus.OPTED_IN, category=Category.TRANSACTIONAL)


def sms_marketing(status: str, **extra) -> dict:
    return {"type": "consent", "channel": "sms", "category": "marketing", "status": status} | extra


def test_consent_status(consented):
    assert members(sms_marketing("opted_in")) == {"opted-in"}
    assert members(sms_marketing("unsubscribed")) == {"unsubscribed"}
    assert members(sms_marketing("unset")) == {"email-only", "transactional"}


def test_consent_neq_includes_customers_with_nothing_recorded(consented):
    assert members(sms_marketing("opted_in", operator="neq")) == {"unsubscribed", "email-only", "transactional"}
    assert members(sms_marketing("unset", operator="neq")) == {"opted-in", "unsubscribed"}


def affinity(customer: Customer, channel: str, mean: float, sends: int) -> None:
    ChannelAffinity.objects.create(customer=customer, channel=channel, mean=mean, raw_sends=sends, sends=sends)


def test_most_engaged_channel_is_the_highest_affinity_among_channels_with_marketing_sent():
    affinity(person("texter"), "email", 0.10, 5)
    affinity(Customer.objects.get(external_id="texter"), "sms", 0.30, 3)
    affinity(person("mailer"), "email", 0.05, 2)
    # A prior alone (nothing sent yet on push) does not count, however high.
    affinity(Customer.objects.get(external_id="mailer"), "push", 0.90, 0)
    affinity(person("tied"), "push", 0.20, 4)
    affinity(Customer.objects.get(external_id="tied"), "email", 0.20, 4)  # a tie goes to email (alphabetical)
    affinity(person("prior-only"), "sms", 0.40, 0)
    person("never-sent")

    assert members({"type": "best_channel", "channel": "sms"}) == {"texter"}
    assert members({"type": "best_channel", "channel": "email"}) == {"mailer", "tied"}
    assert members({"type": "best_channel", "channel": "push"}) == set()
    assert members({"type": "best_channel", "channel": "unknown"}) == {"prior-only", "never-sent"}
    assert members({"type": "best_channel", "channel": "email", "operator": "neq"}) == {"texter", "prior-only", "never-sent"}
    assert problems_of({"match": "all", "conditions": [{"type": "best_channel", "channel": "fax"}]}) == [
        ("conditions.0.channel", "must be one of: email, sms, push, in_app, unknown")]


def test_reachable_means_a_marketing_message_on_the_channel_would_go():
    """The send-time rule (channels_app.reachability, tests/test_consent_availability.py):
    an opt-in where the policy needs one, no bounce or STOP, and an address."""
    ContactPoint.objects.create(customer=opted_in(person("sms"), Channel.SMS), channel=Channel.SMS, address="+33612345678")
    opted_in(person("profile-phone", phone="+33612345670"), Channel.SMS)
    disabled = opted_in(person("disabled-sms"), Channel.SMS)
    ContactPoint.objects.create(customer=disabled, channel=Channel.SMS, address="+33612345679", enabled=False)
    person("never-opted-in", phone="+33612345671")
    stopped = opted_in(person("stopped", phone="+33612345672"), Channel.SMS)
    factories.consent(stopped, Channel.SMS, Category.TRANSACTIONAL, ConsentStatus.STOPPED)
    ContactPoint.objects.create(customer=opted_in(person("push"), Channel.PUSH), channel=Channel.PUSH, address="https://push.example/1")
    factories.consent(person("in-app-out"), Channel.IN_APP, Category.MARKETING, ConsentStatus.OPTED_OUT)
    everyone = {"sms", "profile-phone", "disabled-sms", "never-opted-in", "stopped", "push", "in-app-out"}

    assert members({"type": "reachable", "channel": "sms"}) == {"sms", "profile-phone"}
    assert members({"type": "reachable", "channel": "push"}) == {"push"}
    # Every customer has an in-app inbox, which needs no opt-in.
    assert members({"type": "reachable", "channel": "any"}) == everyone - {"in-app-out"}
    assert members({"type": "reachable"}) == everyone - {"in-app-out"}
    assert members({"type": "reachable", "channel": "sms", "value": False}) == everyone - {"sms", "profile-phone"}


# --- combining ------------------------------------------------------------------------


def test_match_any_and_all(plans):
    pro, free = trait("plan", "eq", "pro"), trait("plan", "eq", "free")
    assert members(pro, free, match="any") == {"pro", "free"}
    assert members(pro, free, match="all") == set()


def test_nested_groups():
    a = person("a", traits={"plan": "pro"}, timezone="Europe/Paris")
    did(a, "App Opened", days_ago=2)
    person("b", traits={"plan": "pro"}, timezone="Europe/Berlin")
    person("c", traits={"plan": "free"}, timezone="Europe/Paris")
    d = person("d", traits={"plan": "team"}, timezone="Asia/Tokyo")
    did(d, "App Opened", days_ago=1)
    definition = {"match": "all", "conditions": [
        {"type": "group", "match": "any", "conditions": [
            trait("plan", "in", ["pro", "team"]),
            {"type": "group", "match": "all", "conditions": [trait("plan", "eq", "free"), field("timezone", "eq", "Europe/Paris")]},
        ]},
        {"type": "group", "match": "any", "conditions": [
            field("timezone", "eq", "Europe/Berlin"), last_opened("within_days", 7),
        ]},
    ]}
    assert set(compile_segment(definition).values_list("external_id", flat=True)) == {"a", "b", "d"}
    definition["conditions"][1]["match"] = "all"
    assert set(compile_segment(definition).values_list("external_id", flat=True)) == set()


def test_an_empty_definition_matches_everyone(plans):
    assert member_count({"match": "all", "conditions": []}) == 5
    assert member_count({"match": "any", "conditions": []}) == 5


def test_is_member():
    yes, no = person("yes", traits={"plan": "pro"}), person("no")
    definition = {"conditions": [trait("plan", "eq", "pro")]}
    assert is_member(definition, yes) is True
    assert is_member(definition, no) is False


def test_time_relative_conditions_follow_the_clock():
    did(person("opener"), "App Opened", days_ago=5)
    condition = last_opened("within_days", 7)
    assert members(condition) == {"opener"}
    with time_machine.travel(NOW + timedelta(days=3), tick=False):
        assert members(condition) == set()


EVERY_KIND = {"match": "all", "conditions": [
    orders("gte", 3),
    last_opened("within_days", 7),
    trait("plan", "eq", "pro"),
    trait("age", "gte", 18),
    field("timezone", "in", ["Europe/Paris", "Europe/Berlin"]),
    field("first_seen_at", "within_days", 30),
    sms_marketing("opted_in"),
    revenue("sum", "gte", 500),
    revenue("avg", "lt", 900),
    {"type": "reachable", "channel": "sms"},
    {"type": "group", "match": "any", "conditions": [
        orders("lt", 10), {"type": "event", "event": "Refund", "aggregate": "never_occurred"},
    ]},
]}


def test_member_count_is_one_query_whatever_the_conditions(django_assert_num_queries):
    match = person("match", traits={"plan": "pro", "age": 30}, timezone="Europe/Paris", first_seen_at=NOW - timedelta(days=3))
    for days in (1, 2, 3):
        did(match, "Order Completed", days_ago=days, revenue=200)
    did(match, "App Opened")
    Consent.objects.create(customer=match, channel="sms", category="marketing", status="opted_in", source="test")
    ContactPoint.objects.create(customer=match, channel="sms", address="+33612345678")
    person("other", traits={"plan": "pro"})
    load_policy()  # the reachable condition reads the policy's opt-in channels, cached
    with django_assert_num_queries(1):
        assert member_count(EVERY_KIND) == 1
    with django_assert_num_queries(1):
        assert member_count({"conditions": [trait("plan", "eq", "pro")]}) == 2


# --- validation -----------------------------------------------------------------------


def test_validation_lists_every_problem_by_path():
    definition = {"match": "some", "conditions": [
        trait("plan", "eq", "pro"),
        {"type": "trait", "trait": "", "operator": "like", "value": "x"},
        orders("gte", "three") | {"within_days": 0},
        {"type": "colour"},
        {"type": "group", "match": "any", "conditions": [trait("age", "gt", "old"), "nonsense"]},
        {"type": "event", "event": "Order Completed", "aggregate": "sum", "operator": "gte", "value": 1},
        {"type": "consent", "channel": "fax", "category": "marketing", "status": "opted_in", "extra": 1},
    ]}
    assert problems_of(definition) == [
        ("match", "must be one of: all, any"),
        ("conditions.1.trait", "is required"),
        ("conditions.1.operator", "must be one of: eq, neq, in, not_in, contains, exists, not_exists, gt, gte, lt, lte"),
        ("conditions.2.value", "must be a whole number"),
        ("conditions.2.within_days", "must be at least 1"),
        ("conditions.3.type", "must be one of: trait, field, event, consent, reachable, best_channel, group"),
        ("conditions.4.conditions.0.value", "must be a number"),
        ("conditions.4.conditions.1", "must be an object"),
        ("conditions.5.property", "is required"),
        ("conditions.6.channel", "must be one of: email, sms, push, in_app"),
        ("conditions.6.extra", "is not a known key here"),
    ]


def test_invalid_segment_is_a_validation_error_keyed_by_path():
    with pytest.raises(InvalidSegment) as raised:
        validate_definition({"conditions": [trait("plan", "in", [])]})
    assert raised.value.message_dict == {"conditions.0.value": ["must be a list of 1 to 100 values"]}


@pytest.mark.parametrize(
    ("condition", "path", "reason"),
    [
        (trait("plan", "exists", "x"), "value", "is not used with exists"),
        (trait("bad__name", "eq", "x"), "trait", "must be a name of letters, digits, _ or -, dotted for nesting"),
        (trait("plan", "eq", None), "value", "is required"),
        (trait("plan", "eq", {"a": 1}), "value", "must be text, a number or true/false"),
        (trait("plan", "in", ["a", ["b"]]), "value", "must hold only text, numbers or true/false"),
        (field("email", "gt", 3), "operator", "must be one of: eq, neq, in, not_in, contains, exists, not_exists"),
        (field("email", "eq", 3), "value", "must be text"),
        (field("first_seen_at", "within_days", 1.5), "value", "must be a whole number"),
        (field("first_seen_at", "before", "last week"), "value", "must be a date (YYYY-MM-DD) or an ISO 8601 date and time"),
        (field("password", "eq", "x"), "field", "must be one of: email, phone, timezone, locale, first_seen_at, last_seen_at"),
        (last_opened("within_days", 7) | {"within_days": 3}, "within_days", "is not used with last_occurred: the value is the window"),
        (last_opened("eq", 7), "operator", "must be one of: within_days, not_within_days"),
        (orders("gte", -1), "value", "must be at least 0"),
        (orders("gte", True), "value", "must be a whole number"),
        (revenue("sum", "gte", float("inf")), "value", "must be a number"),
        (orders("gte", 1, property="revenue"), "property", "is only used with sum and avg"),
        ({"type": "event", "event": "X", "aggregate": "never_occurred", "value": 1}, "value", "is not used with never_occurred"),
        (orders("gte", 1, where={"property": "x", "operator": "gt", "value": "a"}), "where.value", "must be a number"),
        (orders("gte", 1, where={"property": "x", "operator": "eq", "value": 1, "foo": 2}), "where.foo", "is not a known key here"),
        (sms_marketing("maybe"), "status", "must be one of: opted_in, opted_out, unsubscribed, bounced, complained, stopped, unset"),
        ({"type": "reachable", "channel": "sms", "value": "yes"}, "value", "must be true or false"),
        ({"type": "group", "match": "any", "conditions": []}, "conditions", "must be a non-empty list"),
    ],
)
def test_each_bad_condition_is_named_at_its_field(condition, path, reason):
    assert problems_of({"conditions": [condition]}) == [(f"conditions.0.{path}", reason)]


def test_groups_nest_at_most_three_deep():
    leaf = trait("plan", "eq", "pro")
    three = {"type": "group", "conditions": [{"type": "group", "conditions": [{"type": "group", "conditions": [leaf]}]}]}
    validate_definition({"conditions": [three]})
    four = {"type": "group", "conditions": [three]}
    assert problems_of({"conditions": [four]}) == [
        ("conditions.0.conditions.0.conditions.0.conditions.0", "groups may be nested at most 3 deep"),
    ]


def test_a_definition_has_a_bounded_number_of_conditions():
    many = [trait("plan", "eq", str(n)) for n in range(MAX_CONDITIONS + 1)]
    assert problems_of({"conditions": many}) == [("conditions", "a segment may have at most 50 conditions")]


def test_definition_must_be_an_object():
    assert problems_of(["not", "an", "object"]) == [("", "must be an object")]


def test_validated_definition_round_trips_to_canonical_json():
    raw = {"match": "any", "conditions": [
        trait("plan", "in", ["pro", "team"]),
        orders("gte", 3, where={"property": "category", "operator": "eq", "value": "dresses"}),
        revenue("sum", "gte", 500),
        sms_marketing("opted_in"),
        {"type": "reachable", "channel": "push", "value": False},
        {"type": "group", "match": "all", "conditions": [field("email", "exists")]},
    ]}
    canonical = validate_definition(raw).to_json()
    assert canonical == raw
    assert validate_definition(canonical).to_json() == canonical
    assert validate_definition({"conditions": [{"type": "reachable"}]}).to_json() == {
        "match": "all", "conditions": [{"type": "reachable", "channel": "any"}],
    }


def test_condition_registry_and_enum_are_in_step():
    assert set(CONDITIONS) == set(ConditionType)
    assert all(CONDITIONS[kind].type == kind.value for kind in ConditionType)


def test_do_save_segment_stores_the_canonical_definition_and_refuses_an_invalid_one():
    segment = do_save_segment(None, name="Reachable", description="", definition={"conditions": [{"type": "reachable"}]})
    assert segment.definition == {"match": "all", "conditions": [{"type": "reachable", "channel": "any"}]}
    with pytest.raises(InvalidSegment):
        do_save_segment(segment, name="Renamed", description="", definition={"conditions": [{"type": "colour"}]})
    segment.refresh_from_db()
    assert (segment.name, segment.definition["conditions"]) == ("Reachable", [{"type": "reachable", "channel": "any"}])
    assert Segment.objects.count() == 1
