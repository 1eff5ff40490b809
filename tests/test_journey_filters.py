"""Property filters: what a valid filter list is, and which event properties it matches."""

from __future__ import annotations

import pytest

from journeys.filters import MAX_FILTERS, OPS, matches, validate_filters

CART = {
    "cart_value": 120,
    "currency": "EUR",
    "coupon": None,
    "items": ["shoes", "socks", 3],
    "customer": {"tier": "gold", "address": {"city": "Paris"}},
    "placed_at": "2026-06-15T10:00:00Z",
    "gift": True,
}


def f(prop: str, op: str, *value) -> dict:
    return {"property": prop, "op": op} | ({"value": value[0]} if value else {})


# --- validation -----------------------------------------------------------------------


def test_a_filter_with_every_operator_validates():
    filters = [
        f("a", "eq", "x"), f("a", "neq", 1), f("a", "gt", 1.5), f("a", "gte", "2026-01-01"),
        f("a", "lt", 0), f("a", "lte", -3), f("a", "contains", "x"), f("a.b", "exists"),
        f("a", "not_exists"), f("a", "in", ["x", 2, True]),
    ]
    assert [item["op"] for item in filters] == list(OPS)
    assert validate_filters(filters) == []


def test_an_empty_list_validates():
    assert validate_filters([]) == []


def test_filters_must_be_a_list():
    assert validate_filters({"property": "a"}) == [("filters", "must be a list of filters")]
    assert validate_filters(None, "config.filters") == [("config.filters", "must be a list of filters")]


def test_too_many_filters_are_refused():
    assert validate_filters([f("a", "exists")] * (MAX_FILTERS + 1)) == [
        ("filters", f"may hold at most {MAX_FILTERS} filters")
    ]


def test_every_problem_is_named_by_its_path():
    filters = [
        "cart_value >= 100",
        {"op": "eq", "value": 1},
        {"property": "a..b", "op": "gte", "value": True},
        {"property": "a", "op": "like", "value": "x"},
        {"property": "a", "op": "exists", "value": 1},
        {"property": "a", "op": "in", "value": []},
        {"property": "a", "op": "in", "value": [{"x": 1}]},
        {"property": "a", "op": "eq"},
        {"property": "a", "op": "eq", "value": [1], "extra": 1},
        {"property": 7, "op": None},
    ]
    assert validate_filters(filters, "config.filters") == [
        ("config.filters.0", "must be an object with property, op and value"),
        ("config.filters.1.property", "is required"),
        ("config.filters.2.property", "must be a property name, dotted for nesting (a.b), with no empty parts"),
        ("config.filters.2.value", "must be a number or text"),
        ("config.filters.3.op", "must be one of: eq, neq, gt, gte, lt, lte, contains, exists, not_exists, in"),
        ("config.filters.4.value", "is not used with exists"),
        ("config.filters.5.value", "must be a non-empty list of values"),
        ("config.filters.6.value", "must hold only text, numbers or true/false"),
        ("config.filters.7.value", "is required"),
        ("config.filters.8.extra", "is not a known key here"),
        ("config.filters.8.value", "must be text, a number or true/false"),
        ("config.filters.9.property", "must be text"),
        ("config.filters.9.op", "is required"),
    ]


# --- matching -------------------------------------------------------------------------


def test_no_filters_match_every_event():
    assert matches([], CART) is True
    assert matches(None, {}) is True


def test_all_filters_must_hold():
    assert matches([f("cart_value", "gte", 100), f("currency", "eq", "EUR")], CART) is True
    assert matches([f("cart_value", "gte", 100), f("currency", "eq", "USD")], CART) is False


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (f("customer.tier", "eq", "gold"), True),
        (f("customer.address.city", "eq", "Paris"), True),
        (f("customer.address.zip", "exists"), False),
        (f("currency.code", "exists"), False),  # a step through text finds nothing
        (f("customer.tier.name", "eq", "gold"), False),
    ],
)
def test_dotted_paths_reach_into_nested_objects(flt, expected):
    assert matches([flt], CART) is expected


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (f("cart_value", "eq", 120), True),
        (f("cart_value", "eq", 120.0), True),
        (f("cart_value", "eq", "120"), False),
        (f("gift", "eq", True), True),
        (f("gift", "eq", 1), False),
        (f("items", "eq", 1), False),
        (f("cart_value", "neq", 99), True),
        (f("cart_value", "neq", 120.0), False),
        (f("missing", "neq", "x"), True),
        (f("missing", "eq", "x"), False),
    ],
)
def test_equality_follows_json_types(flt, expected):
    assert matches([flt], CART) is expected


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (f("cart_value", "gt", 100), True),
        (f("cart_value", "gt", 120), False),
        (f("cart_value", "gte", 120), True),
        (f("cart_value", "lt", 120.5), True),
        (f("cart_value", "lte", 119), False),
        (f("placed_at", "gte", "2026-06-01"), True),
        (f("placed_at", "lt", "2026-06-01"), False),
        (f("cart_value", "gt", "100"), False),
        (f("currency", "gt", 5), False),
        (f("gift", "gte", 0), False),
        (f("coupon", "lt", 1), False),
        (f("missing", "lt", 1), False),
    ],
)
def test_orderings_compare_numbers_with_numbers_and_text_with_text_only(flt, expected):
    assert matches([flt], CART) is expected


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (f("currency", "contains", "EU"), True),
        (f("currency", "contains", "eu"), False),
        (f("items", "contains", "socks"), True),
        (f("items", "contains", "sock"), False),
        (f("items", "contains", 3.0), True),
        (f("cart_value", "contains", 1), False),
        (f("customer", "contains", "tier"), False),
        (f("missing", "contains", "x"), False),
    ],
)
def test_contains_is_a_substring_of_text_or_a_member_of_a_list(flt, expected):
    assert matches([flt], CART) is expected


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (f("currency", "in", ["USD", "EUR"]), True),
        (f("currency", "in", ["USD"]), False),
        (f("cart_value", "in", [120.0]), True),
        (f("gift", "in", [1]), False),
        (f("missing", "in", ["x"]), False),
    ],
)
def test_in_matches_any_listed_value(flt, expected):
    assert matches([flt], CART) is expected


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (f("currency", "exists"), True),
        (f("coupon", "exists"), False),
        (f("missing", "exists"), False),
        (f("currency", "not_exists"), False),
        (f("coupon", "not_exists"), True),
        (f("missing", "not_exists"), True),
    ],
)
def test_exists_means_present_and_not_null(flt, expected):
    assert matches([flt], CART) is expected


@pytest.mark.parametrize(
    "flt",
    [{"property": "currency"}, {"op": "exists"}, {"property": "currency", "op": "like", "value": "EUR"},
     {"property": "currency", "op": "in", "value": "EUR"}, {"property": "currency", "op": "in"}, "currency", None],
)
def test_a_malformed_filter_never_holds_and_never_raises(flt):
    assert matches([flt], CART) is False
