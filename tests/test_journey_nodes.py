"""Node kinds: the registry, each kind's ports, and each kind's config check (pure, no database)."""

from __future__ import annotations

import pytest

from customers.enums import Channel
from journeys.nodes import NODE_KIND_CHOICES, NODE_KINDS, NodeKind


def problems(kind: NodeKind, config) -> list[tuple[str, str]]:
    return NODE_KINDS[kind].validate(config)


def ports(kind: NodeKind, config) -> list[str]:
    return NODE_KINDS[kind].ports(config)


TIMEOUT = {"amount": 2, "unit": "days"}


# --- the registry ---------------------------------------------------------------------


def test_registry_has_exactly_one_spec_for_every_node_kind():
    assert list(NODE_KINDS) == list(NodeKind)
    assert all(spec.kind is kind for kind, spec in NODE_KINDS.items())
    assert [value for value, _ in NODE_KIND_CHOICES] == [kind.value for kind in NodeKind]


def test_only_delays_and_waits_block():
    assert {kind for kind, spec in NODE_KINDS.items() if spec.blocking} == {NodeKind.DELAY, NodeKind.WAIT_FOR_EVENT}


def test_every_kind_refuses_a_config_that_is_not_an_object():
    for kind in NodeKind:
        assert problems(kind, ["not", "an", "object"]) == [("", "must be an object")], kind


def test_ports_of_each_kind():
    assert ports(NodeKind.ENTRY, {}) == ["out"]
    assert ports(NodeKind.DELAY, {}) == ["out"]
    assert ports(NodeKind.SEND, {}) == ["out"]
    assert ports(NodeKind.UPDATE_PROFILE, {}) == ["out"]
    assert ports(NodeKind.WAIT_FOR_EVENT, {}) == ["happened", "timed_out"]
    assert ports(NodeKind.EXIT, {}) == []
    split = {"branches": [{"port": "vip"}, {"port": "new"}]}
    assert ports(NodeKind.SPLIT, split) == ["vip", "new", "else"]
    assert ports(NodeKind.RANDOM_SPLIT, split) == ["vip", "new"]


def test_split_ports_are_read_from_whatever_config_there_is():
    assert ports(NodeKind.SPLIT, None) == ["else"]
    assert ports(NodeKind.SPLIT, {"branches": "vip"}) == ["else"]
    assert ports(NodeKind.SPLIT, {"branches": [{"port": "a"}, "b", {"port": 3}, {"port": "a"}, {"port": "else"}]}) == ["a", "else"]
    assert ports(NodeKind.RANDOM_SPLIT, {}) == []


# --- entry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"trigger": "event", "event": "Cart Abandoned"},
        {"trigger": "event", "event": "Cart Abandoned", "filters": [{"property": "cart_value", "op": "gte", "value": 100}]},
        {"trigger": "segment", "segment_id": 7},
        {"trigger": "api"},
    ],
)
def test_entry_accepts_each_trigger(config):
    assert problems(NodeKind.ENTRY, config) == []


def test_entry_needs_a_known_trigger():
    assert problems(NodeKind.ENTRY, {}) == [("trigger", "is required")]
    assert problems(NodeKind.ENTRY, {"trigger": "webhook"}) == [("trigger", "must be one of: event, segment, api")]


def test_entry_problems_are_named_by_their_config_path():
    assert problems(NodeKind.ENTRY, {"trigger": "event", "filters": [{"property": "a", "op": "nope"}]}) == [
        ("event", "is required"),
        ("filters.0.op", "must be one of: eq, neq, gt, gte, lt, lte, contains, exists, not_exists, in"),
    ]
    assert problems(NodeKind.ENTRY, {"trigger": "event", "event": "x" * 201}) == [("event", "must be at most 200 characters")]
    assert problems(NodeKind.ENTRY, {"trigger": "segment", "segment_id": "7"}) == [("segment_id", "must be a whole number")]
    assert problems(NodeKind.ENTRY, {"trigger": "segment", "segment_id": 0}) == [("segment_id", "must be at least 1")]
    assert problems(NodeKind.ENTRY, {"trigger": "api", "event": "Signed Up"}) == [("event", "is not a known key here")]


# --- delay ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"mode": "duration", "amount": 45, "unit": "minutes"},
        {"mode": "duration", "amount": 366, "unit": "days"},
        {"mode": "duration", "amount": 366 * 24, "unit": "hours"},
        {"mode": "time_of_day", "time": "09:00"},
        {"mode": "time_of_day", "time": "23:59", "weekdays": [0, 6]},
        {"mode": "time_of_day", "time": "00:00", "weekdays": [4]},
        {"mode": "date_trait", "trait": "birthday", "offset_days": -1, "time": "10:30"},
        {"mode": "date_trait", "trait": "renewal_date", "offset_days": 0, "time": "08:00"},
    ],
)
def test_delay_accepts_each_mode(config):
    assert problems(NodeKind.DELAY, config) == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, [("mode", "is required")]),
        ({"mode": "sleep"}, [("mode", "must be one of: duration, time_of_day, date_trait")]),
        ({"mode": "duration"}, [("amount", "is required"), ("unit", "is required")]),
        ({"mode": "duration", "amount": 0, "unit": "weeks"},
         [("amount", "must be at least 1"), ("unit", "must be one of: seconds, minutes, hours, days")]),
        ({"mode": "duration", "amount": 1.5, "unit": "hours"}, [("amount", "must be a whole number")]),
        ({"mode": "duration", "amount": True, "unit": "hours"}, [("amount", "must be a whole number")]),
        ({"mode": "duration", "amount": 367, "unit": "days"}, [("amount", "must come to at most 366 days")]),
        ({"mode": "duration", "amount": 366 * 86400 + 1, "unit": "seconds"}, [("amount", "must come to at most 366 days")]),
        ({"mode": "duration", "amount": 5, "unit": "days", "time": "09:00"}, [("time", "is not a known key here")]),
    ],
)
def test_delay_duration_problems(config, expected):
    assert problems(NodeKind.DELAY, config) == expected


@pytest.mark.parametrize("time", ["9:00", "24:00", "09:60", "09:00:00", "0900", " 09:00", 900])
def test_times_must_be_hh_mm(time):
    assert problems(NodeKind.DELAY, {"mode": "time_of_day", "time": time}) == [
        ("time", "must be a time as HH:MM, from 00:00 to 23:59")
    ]


@pytest.mark.parametrize(
    ("weekdays", "reason"),
    [
        ([], "must be a non-empty list of days, Monday = 0 to Sunday = 6"),
        ("mon", "must be a non-empty list of days, Monday = 0 to Sunday = 6"),
        ([7], "must hold only days from 0 (Monday) to 6 (Sunday)"),
        ([-1], "must hold only days from 0 (Monday) to 6 (Sunday)"),
        ([True], "must hold only days from 0 (Monday) to 6 (Sunday)"),
        (["0"], "must hold only days from 0 (Monday) to 6 (Sunday)"),
        ([1, 2, 1], "lists a day more than once"),
    ],
)
def test_weekdays_are_unique_days_from_monday_0_to_sunday_6(weekdays, reason):
    assert problems(NodeKind.DELAY, {"mode": "time_of_day", "time": "09:00", "weekdays": weekdays}) == [("weekdays", reason)]


def test_delay_until_a_date_trait_needs_trait_offset_and_time():
    assert problems(NodeKind.DELAY, {"mode": "date_trait"}) == [
        ("trait", "is required"), ("offset_days", "is required"), ("time", "is required"),
    ]
    assert problems(NodeKind.DELAY, {"mode": "date_trait", "trait": "  ", "offset_days": 400, "time": "7am"}) == [
        ("trait", "must not be blank"),
        ("offset_days", "must be at most 366"),
        ("time", "must be a time as HH:MM, from 00:00 to 23:59"),
    ]


# --- send -----------------------------------------------------------------------------

CONTENT = {
    "email": {"subject": "Your cart", "html": "<p>Hi {{ customer.first_name }}</p>", "text": "Hi", "preheader": ""},
    "sms": {"body": "{{ event.product_name }} looks great with: {{ event.accessories | join: ', ' }}"},
    "push": {"title": "Still thinking?", "body": "Your cart misses you", "url": "https://shop.example/cart"},
    "in_app": {"title": "Welcome", "body": "Hello", "button_label": "Go", "url": "/start"},
}


@pytest.mark.parametrize("channel", [c.value for c in Channel])
def test_send_accepts_content_for_each_channel(channel):
    assert problems(NodeKind.SEND, {"channel": channel, "content": {channel: CONTENT[channel]}}) == []


def test_send_needs_a_known_channel_and_content():
    assert problems(NodeKind.SEND, {}) == [
        ("channel", "is required"), ("content", "is required: a send needs content for its channel"),
    ]
    assert problems(NodeKind.SEND, {"channel": "fax", "content": {"fax": {}}}) == [
        ("channel", "must be one of: email, sms, push, in_app"),
    ]
    assert problems(NodeKind.SEND, {"channel": "sms", "content": "hi"}) == [("content", "must be an object keyed by channel")]


def test_send_needs_content_for_its_own_channel_only():
    assert problems(NodeKind.SEND, {"channel": "sms", "content": {"email": CONTENT["email"]}}) == [
        ("content.email", "is not used: this node sends sms"),
        ("content.sms", "is required: the sms to send"),
    ]


def test_send_checks_each_content_field():
    content = {"subject": "", "html": 42, "text": None, "preheader": ["x"], "footer": "bye"}
    assert problems(NodeKind.SEND, {"channel": "email", "content": {"email": content}}) == [
        ("content.email.footer", "is not a field of email content"),
        ("content.email.subject", "is required"),
        ("content.email.html", "must be text"),
        ("content.email.preheader", "must be text"),
    ]
    assert problems(NodeKind.SEND, {"channel": "push", "content": {"push": {"title": "  "}}}) == [
        ("content.push.title", "is required"), ("content.push.body", "is required"),
    ]
    assert problems(NodeKind.SEND, {"channel": "in_app", "content": {"in_app": "Hello"}}) == [
        ("content.in_app", "must be an object"),
    ]


def test_send_refuses_templates_that_do_not_parse():
    content = {"title": "{{ customer.first_name", "body": "{% if %}yes", "url": "{% for x in y %}"}
    assert problems(NodeKind.SEND, {"channel": "push", "content": {"push": content}}) == [
        ("content.push.title", "is not a valid template: expected '}}', found end of file (line 1)"),
        ("content.push.body", "is not a valid template: missing expression (line 1)"),
        ("content.push.url", "is not a valid template: expected tag endfor, found end of expression"),
    ]


def test_send_refuses_unknown_config_keys():
    config = {"channel": "sms", "content": {"sms": CONTENT["sms"]}, "category": "marketing"}
    assert problems(NodeKind.SEND, config) == [("category", "is not a known key here")]


# --- wait_for_event -------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"mode": "event", "event": "Order Completed", "timeout": {"until": {"time": "09:00"}}},
        {"mode": "event", "event": "Order Completed", "filters": [{"property": "total", "op": "gt", "value": 0}],
         "timeout": TIMEOUT},
        {"mode": "engagement", "engagement": "opened", "timeout": {"amount": 30, "unit": "minutes"}},
        {"mode": "engagement", "engagement": "clicked", "timeout": {"until": {"time": "18:30", "weekdays": [0, 1, 2, 3, 4]}}},
    ],
)
def test_wait_accepts_events_and_engagements_with_a_timeout(config):
    assert problems(NodeKind.WAIT_FOR_EVENT, config) == []


def test_every_wait_needs_a_timeout():
    assert problems(NodeKind.WAIT_FOR_EVENT, {"mode": "event", "event": "Order Completed"}) == [
        ("timeout", "is required: a wait needs a timeout, {amount, unit} or {until: {time}}"),
    ]
    assert problems(NodeKind.WAIT_FOR_EVENT, {"mode": "engagement", "engagement": "opened"}) == [
        ("timeout", "is required: a wait needs a timeout, {amount, unit} or {until: {time}}"),
    ]


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        ("2 days", [("timeout", "must be {amount, unit} or {until: {time, weekdays}}")]),
        ({}, [("timeout.amount", "is required"), ("timeout.unit", "is required")]),
        ({"amount": 0, "unit": "days"}, [("timeout.amount", "must be at least 1")]),
        ({"amount": 400, "unit": "days"}, [("timeout.amount", "must come to at most 366 days")]),
        ({"until": "09:00"}, [("timeout.until", "must be an object with time and optional weekdays")]),
        ({"until": {"time": "9"}, "amount": 1},
         [("timeout.amount", "is not a known key here"), ("timeout.until.time", "must be a time as HH:MM, from 00:00 to 23:59")]),
        ({"until": {"time": "09:00", "weekdays": [9], "tz": "UTC"}},
         [("timeout.until.tz", "is not a known key here"),
          ("timeout.until.weekdays", "must hold only days from 0 (Monday) to 6 (Sunday)")]),
    ],
)
def test_wait_timeout_problems(timeout, expected):
    assert problems(NodeKind.WAIT_FOR_EVENT, {"mode": "engagement", "engagement": "opened", "timeout": timeout}) == expected


def test_wait_mode_problems():
    assert problems(NodeKind.WAIT_FOR_EVENT, {"mode": "engagement", "engagement": "replied", "timeout": TIMEOUT}) == [
        ("engagement", "must be one of: opened, clicked"),
    ]
    config = {"mode": "event", "event": "", "filters": "total > 0", "engagement": "opened", "timeout": TIMEOUT}
    assert problems(NodeKind.WAIT_FOR_EVENT, config) == [
        ("engagement", "is not a known key here"),
        ("event", "is required"),
        ("filters", "must be a list of filters"),
    ]


# --- split ----------------------------------------------------------------------------

VIP = {"match": "all", "conditions": [{"type": "trait", "trait": "plan", "operator": "eq", "value": "vip"}]}


def test_split_accepts_segment_definitions_and_saved_segments():
    config = {"branches": [
        {"port": "vip", "label": "VIP", "condition": VIP},
        {"port": "regulars", "condition": {"segment_id": 4}},
        {"port": "everyone", "condition": {"match": "all", "conditions": []}},
    ]}
    assert problems(NodeKind.SPLIT, config) == []


@pytest.mark.parametrize(
    ("branches", "reason"),
    [(None, "is required"), ([], "must be a list of 1 to 20 branches"), ({"port": "a"}, "must be a list of 1 to 20 branches"),
     ([{"port": f"p{n}", "condition": VIP} for n in range(21)], "must be a list of 1 to 20 branches")],
)
def test_split_needs_1_to_20_branches(branches, reason):
    assert problems(NodeKind.SPLIT, {"branches": branches}) == [("branches", reason)]


def test_split_branch_ports_are_unique_identifiers_and_never_else():
    config = {"branches": [
        {"port": "vip", "condition": VIP},
        {"port": "vip", "condition": VIP},
        {"port": "else", "condition": VIP},
        {"port": "big spenders", "condition": VIP},
        {"condition": VIP},
        "vip",
    ]}
    assert problems(NodeKind.SPLIT, config) == [
        ("branches.1.port", "is used by another branch"),
        ("branches.2.port", '"else" is reserved: it is the port taken when no branch matches'),
        ("branches.3.port", "must be 1 to 64 letters, digits or _"),
        ("branches.4.port", "is required"),
        ("branches.5", "must be an object"),
    ]


def test_split_conditions_report_segment_problems_by_path():
    config = {"branches": [
        {"port": "a"},
        {"port": "b", "condition": {"match": "all", "conditions": [{"type": "trait", "trait": "plan", "operator": "eq"}]}},
        {"port": "c", "condition": {"segment_id": "4", "match": "all"}},
        {"port": "d", "condition": "vip", "weight": 2},
    ]}
    assert problems(NodeKind.SPLIT, config) == [
        ("branches.0.condition", "is required: a segment definition or {segment_id}"),
        ("branches.1.condition.conditions.0.value", "is required"),
        ("branches.2.condition.match", "is not a known key here"),
        ("branches.2.condition.segment_id", "must be a whole number"),
        ("branches.3.weight", "is not a known key here"),
        ("branches.3.condition", "must be an object"),
    ]


# --- random_split ---------------------------------------------------------------------


def test_random_split_accepts_two_or_more_weighted_branches():
    config = {"branches": [{"port": "a", "weight": 50}, {"port": "b", "label": "Control", "weight": 1}, {"port": "c", "weight": 3}]}
    assert problems(NodeKind.RANDOM_SPLIT, config) == []


def test_random_split_problems():
    assert problems(NodeKind.RANDOM_SPLIT, {"branches": [{"port": "a", "weight": 1}]}) == [
        ("branches", "must be a list of 2 to 20 branches"),
    ]
    config = {"branches": [
        {"port": "a", "weight": 0}, {"port": "a", "weight": 2.5}, {"port": "b", "weight": True, "label": 3}, {"port": "c"},
    ]}
    assert problems(NodeKind.RANDOM_SPLIT, config) == [
        ("branches.0.weight", "must be at least 1"),
        ("branches.1.port", "is used by another branch"),
        ("branches.1.weight", "must be a whole number"),
        ("branches.2.label", "must be text"),
        ("branches.2.weight", "must be a whole number"),
        ("branches.3.weight", "is required"),
    ]


# --- update_profile, exit -------------------------------------------------------------


@pytest.mark.parametrize("value", ["gold", 3, 2.5, True, None, [1, 2], {"nested": {"ok": True}}])
def test_update_profile_sets_a_trait_to_any_json_value(value):
    assert problems(NodeKind.UPDATE_PROFILE, {"trait": "tier", "value": value}) == []


@pytest.mark.parametrize("field", ["email", "phone", "timezone", "locale", "external_id"])
def test_update_profile_refuses_profile_fields(field):
    assert problems(NodeKind.UPDATE_PROFILE, {"trait": field, "value": "x"}) == [("trait", f"{field} is a profile field, not a trait")]


def test_update_profile_needs_a_trait_name_and_a_value():
    assert problems(NodeKind.UPDATE_PROFILE, {}) == [
        ("trait", "is required"), ("value", "is required (any JSON value, null included)"),
    ]
    assert problems(NodeKind.UPDATE_PROFILE, {"trait": "t" * 101, "value": 1, "mode": "set"}) == [
        ("mode", "is not a known key here"), ("trait", "must be at most 100 characters"),
    ]
    assert problems(NodeKind.UPDATE_PROFILE, {"trait": 5, "value": 1}) == [("trait", "must be text")]


def test_exit_takes_an_empty_config():
    assert problems(NodeKind.EXIT, {}) == []
    assert problems(NodeKind.EXIT, {"reason": "done"}) == [("reason", "is not used: an exit node has no config")]
