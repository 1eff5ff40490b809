"""Bad input on every ingestion endpoint: the right status, a body naming the field, nothing stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from customers.models import Customer, Event, ProfileUpdate
from orchestrator.api_keys import do_revoke_api_key

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Endpoint:
    """How to send one call to an endpoint, and the path prefix its errors carry."""

    def __init__(self, name: str, kind: str, batched: bool):
        self.name, self.kind, self.batched = name, kind, batched
        self.url = "/api/v1/batch" if batched else f"/api/v1/{kind}"
        self.prefix = "batch.0." if batched else ""
        self.bag = "traits" if kind == "identify" else "properties"

    def __repr__(self) -> str:
        return self.name

    def call(self, **fields) -> dict:
        base = {"userId": "u_1", self.bag: {"ok": 1}}
        if self.kind == "track":
            base["event"] = "Viewed"
        return {**base, **fields}

    def payload(self, **fields) -> dict:
        call = self.call(**fields)
        return {"batch": [{"type": self.kind, **call}]} if self.batched else call

    def field(self, name: str) -> str:
        return f"{self.prefix}{name}"


IDENTIFY = Endpoint("identify", "identify", batched=False)
TRACK = Endpoint("track", "track", batched=False)
BATCH_IDENTIFY = Endpoint("batch-identify", "identify", batched=True)
BATCH_TRACK = Endpoint("batch-track", "track", batched=True)
PAGE = Endpoint("page", "page", batched=False)
SCREEN = Endpoint("screen", "screen", batched=False)
BATCH_PAGE = Endpoint("batch-page", "page", batched=True)
EVERY = [IDENTIFY, TRACK, BATCH_IDENTIFY, BATCH_TRACK, PAGE, SCREEN, BATCH_PAGE]
IDENTIFYING = [IDENTIFY, BATCH_IDENTIFY]
TRACKING = [TRACK, BATCH_TRACK]
URLS = ["/api/v1/identify", "/api/v1/track", "/api/v1/page", "/api/v1/screen", "/api/v1/batch"]


@pytest.fixture
def nothing_stored(db):
    yield
    assert (Customer.objects.count(), Event.objects.count(), ProfileUpdate.objects.count()) == (
        0,
        0,
        0,
    )


def send(client, endpoint: Endpoint, **fields):
    return client.post(endpoint.url, endpoint.payload(**fields), format="json")


def send_raw(client, url: str, body: bytes | str):
    return client.generic("POST", url, body, content_type="application/json")


def assert_invalid(response, *fields: tuple[str, str]):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert [(f["field"], f["reason"]) for f in error["fields"]] == list(fields)


# --- Bodies that are not what we expect ----------------------------------------------------------


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("body", ['{"userId": ', "", "not json", '{"userId": "u_1"}}'])
def test_malformed_json_is_refused(ingest_client, nothing_stored, url, body):
    response = send_raw(ingest_client, url, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "malformed"
    assert error["message"].startswith("The request body is not valid JSON: ")


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_as_malformed(ingest_client, nothing_stored, url, constant):
    body = f'{{"userId": "u_1", "event": "E", "traits": {{"x": {constant}}}, "properties": {{"x": {constant}}}}}'
    if url.endswith("batch"):
        body = '{"batch": [' + body.replace("{", '{"type": "track", ', 1) + "]}"

    response = send_raw(ingest_client, url, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed"


@pytest.mark.parametrize("url", URLS)
def test_numbers_out_of_range_are_refused_as_malformed(ingest_client, nothing_stored, url):
    body = '{"userId": "u_1", "event": "E", "traits": {"x": 1e400}, "properties": {"x": 1e400}}'
    if url.endswith("batch"):
        body = '{"batch": [' + body.replace("{", '{"type": "track", ', 1) + "]}"

    response = send_raw(ingest_client, url, body)

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "malformed",
        "message": "The request body is not valid JSON: number 1e400 is out of range",
    }


@pytest.mark.parametrize("url", URLS)
def test_json_nested_past_the_parser_limit_is_refused_as_malformed(
    ingest_client, nothing_stored, url
):
    response = send_raw(ingest_client, url, "[" * 100_000 + "]" * 100_000)

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "malformed",
        "message": "The request body nests too deeply to parse.",
    }


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("body", ["[]", '"text"', "42", "null"])
def test_a_body_that_is_not_an_object_is_refused(ingest_client, nothing_stored, url, body):
    assert_invalid(send_raw(ingest_client, url, body), ("body", "must be a JSON object"))


def test_batch_must_be_an_array(ingest_client, nothing_stored):
    response = ingest_client.post("/api/v1/batch", {"batch": {"type": "track"}}, format="json")

    assert_invalid(response, ("batch", "must be an array of Segment calls"))


def test_batch_is_required(ingest_client, nothing_stored):
    assert_invalid(
        ingest_client.post("/api/v1/batch", {"items": []}, format="json"), ("batch", "is required")
    )


def test_type_must_match_the_single_endpoint(ingest_client, nothing_stored):
    response = ingest_client.post(
        "/api/v1/track", {"type": "identify", "userId": "u_1", "event": "E"}, format="json"
    )

    assert_invalid(response, ("type", "must be 'track' on this endpoint (or left out)"))


# --- userId ------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_missing_user_id_is_refused(ingest_client, nothing_stored, endpoint):
    call = endpoint.call()
    del call["userId"]
    payload = {"batch": [{"type": endpoint.kind, **call}]} if endpoint.batched else call

    response = ingest_client.post(endpoint.url, payload, format="json")

    assert_invalid(response, (endpoint.field("userId"), "is required"))


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_anonymous_id_alone_does_not_identify_a_customer(ingest_client, nothing_stored, endpoint):
    response = send(ingest_client, endpoint, userId=None, anonymousId="anon-1")

    assert_invalid(
        response,
        (
            endpoint.field("userId"),
            "is required: Chorus identifies customers by userId; anonymousId alone is not enough",
        ),
    )


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
@pytest.mark.parametrize(
    ("user_id", "reason"),
    [
        ({"id": 1}, "must be a string (or an integer), not an object"),
        (["u_1"], "must be a string (or an integer), not an array"),
        (True, "must be a string (or an integer), not a boolean"),
        (1.5, "must be a string (or an integer), not a number"),
        ("", "must not be empty"),
        ("u" * 256, "value is 256 characters long; the limit is 255"),
        ("u\u00001", "value contains a NUL character (\\u0000), which cannot be stored"),
    ],
)
def test_bad_user_ids_are_refused(ingest_client, nothing_stored, endpoint, user_id, reason):
    assert_invalid(
        send(ingest_client, endpoint, userId=user_id), (endpoint.field("userId"), reason)
    )


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_bad_message_id_is_refused(ingest_client, nothing_stored, endpoint):
    response = send(ingest_client, endpoint, messageId={"id": "m-1"})

    assert_invalid(
        response, (endpoint.field("messageId"), "must be a string (or an integer), not an object")
    )


# --- Timestamps --------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-11-23T20:14:00", "must include a UTC offset (e.g. 2026-11-23T20:14:00Z or +01:00)"),
        ("2026-11-23", "must include a UTC offset (e.g. 2026-11-23T20:14:00Z or +01:00)"),
        ("yesterday", "is not an ISO-8601 date-time (e.g. 2026-11-23T20:14:00Z)"),
        (1700000000, "must be an ISO-8601 date-time string, not a number"),
    ],
)
def test_bad_timestamps_are_refused(ingest_client, nothing_stored, endpoint, value, reason):
    assert_invalid(
        send(ingest_client, endpoint, timestamp=value), (endpoint.field("timestamp"), reason)
    )


def test_bad_original_timestamp_and_sent_at_are_named(ingest_client, nothing_stored):
    response = send(ingest_client, TRACK, originalTimestamp="2026-11-23T20:14:00", sentAt="soon")

    assert_invalid(
        response,
        ("originalTimestamp", "must include a UTC offset (e.g. 2026-11-23T20:14:00Z or +01:00)"),
        ("sentAt", "is not an ISO-8601 date-time (e.g. 2026-11-23T20:14:00Z)"),
    )


WINDOW = "must be between 2000-01-01 and 24 hours from now"


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC: PostgreSQL stores it, Python cannot read it
        "9999-12-31T23:00:00-05:00",  # year 10000 in UTC
        "1999-12-31T23:59:59Z",
        "2026-11-24T12:00:01Z",  # a second more than a day after NOW
    ],
    ids=["year-0-utc", "year-10000-utc", "before-2000", "over-a-day-ahead"],
)
def test_timestamps_outside_the_window_are_refused(ingest_client, nothing_stored, endpoint, value):
    with time_machine.travel(NOW, tick=False):
        response = send(ingest_client, endpoint, timestamp=value)

    assert_invalid(response, (endpoint.field("timestamp"), WINDOW))


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_timestamps_at_the_edges_of_the_window_are_accepted(ingest_client, endpoint):
    with time_machine.travel(NOW, tick=False):
        early = send(ingest_client, endpoint, timestamp="2000-01-01T01:00:00+01:00")
        late = send(ingest_client, endpoint, timestamp="2026-11-24T12:00:00Z")

    assert (early.status_code, late.status_code) == (200, 200)


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_a_skew_correction_that_overflows_is_refused_naming_original_timestamp(
    ingest_client, nothing_stored, endpoint
):
    response = send(
        ingest_client,
        endpoint,
        originalTimestamp="0001-01-01T00:00:00Z",
        sentAt="9999-01-01T00:00:00Z",
    )

    assert_invalid(
        response, (endpoint.field("originalTimestamp"), f"corrected by sentAt, {WINDOW}")
    )


def test_an_original_timestamp_outside_the_window_is_refused(ingest_client, nothing_stored):
    response = send(ingest_client, TRACK, originalTimestamp="1970-01-01T00:00:00Z")

    assert_invalid(response, ("originalTimestamp", WINDOW))


def test_a_reset_device_clock_is_corrected_by_sent_at(ingest_client):
    with time_machine.travel(NOW, tick=False):
        response = send(
            ingest_client,
            TRACK,
            originalTimestamp="1970-01-01T00:00:00Z",
            sentAt="1970-01-01T00:05:00Z",
        )

    assert response.status_code == 200
    assert Event.objects.get().occurred_at == NOW - timedelta(minutes=5)


def test_a_batch_with_one_out_of_range_item_stores_nothing_and_reads_keep_working(
    ingest_client, api_client
):
    Customer.objects.create(external_id="u_0")
    response = ingest_client.post(
        "/api/v1/batch",
        {
            "batch": [
                {"type": "track", "userId": "u_1", "event": "Viewed"},
                {
                    "type": "track",
                    "userId": "u_2",
                    "event": "Viewed",
                    "timestamp": "0001-01-01T00:00:00+01:00",
                },
                {"type": "identify", "userId": "u_3", "timestamp": "9999-12-31T23:00:00-05:00"},
            ]
        },
        format="json",
    )

    assert_invalid(response, ("batch.1.timestamp", WINDOW), ("batch.2.timestamp", WINDOW))
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["u_0"]
    assert (Event.objects.count(), ProfileUpdate.objects.count()) == (0, 0)
    listed = api_client.get("/api/v1/customers")
    assert listed.status_code == 200
    assert [c["external_id"] for c in listed.json()["results"]] == ["u_0"]


# --- traits and properties ------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
@pytest.mark.parametrize(
    ("value", "kind"), [([1, 2], "an array"), ("x", "a string"), (3, "a number")]
)
def test_traits_and_properties_must_be_objects(
    ingest_client, nothing_stored, endpoint, value, kind
):
    response = send(ingest_client, endpoint, **{endpoint.bag: value})

    assert_invalid(response, (endpoint.field(endpoint.bag), f"must be an object, not {kind}"))


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_a_100k_character_string_is_refused_naming_its_path(
    ingest_client, nothing_stored, endpoint
):
    response = send(ingest_client, endpoint, **{endpoint.bag: {"note": "x" * 100_000}})

    assert_invalid(
        response,
        (
            endpoint.field(f"{endpoint.bag}.note"),
            "value is 100,000 characters long; the limit is 8,192",
        ),
    )


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_a_long_string_inside_an_array_is_named_by_index(ingest_client, nothing_stored, endpoint):
    response = send(
        ingest_client, endpoint, **{endpoint.bag: {"items": [{"sku": "a"}, {"sku": "b" * 8193}]}}
    )

    assert_invalid(
        response,
        (
            endpoint.field(f"{endpoint.bag}.items.1.sku"),
            "value is 8,193 characters long; the limit is 8,192",
        ),
    )


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_a_key_longer_than_255_characters_is_refused(ingest_client, nothing_stored, endpoint):
    key = "k" * 256
    response = send(ingest_client, endpoint, **{endpoint.bag: {key: 1}})

    assert_invalid(
        response,
        (endpoint.field(f"{endpoint.bag}.{key}"), "key is 256 characters long; the limit is 255"),
    )


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_nesting_deeper_than_five_levels_is_refused_naming_the_path(
    ingest_client, nothing_stored, endpoint
):
    deep = {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}

    response = send(ingest_client, endpoint, **{endpoint.bag: deep})

    assert_invalid(
        response,
        (
            endpoint.field(f"{endpoint.bag}.a.b.c.d.e"),
            f"nests too deeply: objects and arrays may nest at most 5 levels below {endpoint.bag}",
        ),
    )


@pytest.mark.parametrize("endpoint", [TRACK, IDENTIFY], ids=repr)
def test_five_levels_of_nesting_are_accepted(ingest_client, endpoint):
    response = send(
        ingest_client,
        endpoint,
        **{endpoint.bag: {"a": {"b": {"c": {"d": {"e": 1}}}}, "l": [[[[[]]]]]}},
    )

    assert response.status_code == 200


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_nul_characters_in_values_and_keys_are_refused(ingest_client, nothing_stored, endpoint):
    response = send(ingest_client, endpoint, **{endpoint.bag: {"note": "a\u0000b", "k\u0000": 1}})

    assert_invalid(
        response,
        (
            endpoint.field(f"{endpoint.bag}.note"),
            "value contains a NUL character (\\u0000), which cannot be stored",
        ),
        (
            endpoint.field(f"{endpoint.bag}.k\u0000"),
            "key contains a NUL character (\\u0000), which cannot be stored",
        ),
    )


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_unpaired_surrogates_are_refused(ingest_client, nothing_stored, endpoint):
    body = json.dumps(endpoint.payload(**{endpoint.bag: {"note": "PLACEHOLDER"}})).replace(
        "PLACEHOLDER", "\\ud800"
    )

    response = send_raw(ingest_client, endpoint.url, body)

    assert_invalid(
        response,
        (
            endpoint.field(f"{endpoint.bag}.note"),
            "value contains an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode",
        ),
    )


# --- identify: well-known traits ---------------------------------------------------------------


@pytest.mark.parametrize("endpoint", IDENTIFYING, ids=repr)
def test_unknown_time_zone_is_refused_naming_the_field(ingest_client, nothing_stored, endpoint):
    response = send(ingest_client, endpoint, traits={}, context={"timezone": "Mars/Olympus"})

    assert_invalid(
        response,
        (
            endpoint.field("context.timezone"),
            "'Mars/Olympus' is not an IANA time zone name (e.g. America/New_York)",
        ),
    )


@pytest.mark.parametrize("endpoint", IDENTIFYING, ids=repr)
@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        (
            "555-0100",
            "must be an E.164 phone number: '+', country code, number, 8–15 digits (e.g. +14155550100)",
        ),
        (
            "+1415",
            "must be an E.164 phone number: '+', country code, number, 8–15 digits (e.g. +14155550100)",
        ),
        (14155550100, "must be a string, not a number"),
        # Arabic-Indic digits: phonenumbers reads them, but their hash is not the ASCII
        # number's, so the suppression list would miss them.
        (
            "+1\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0660\u0660",
            "must be an E.164 phone number: '+', country code, number, 8–15 digits (e.g. +14155550100)",
        ),
        (
            "+14155550100\n",
            "must be an E.164 phone number: '+', country code, number, 8–15 digits (e.g. +14155550100)",
        ),
    ],
    ids=["dashes", "too-short", "number", "non-ascii-digits", "trailing-newline"],
)
def test_invalid_phone_is_refused(ingest_client, nothing_stored, endpoint, phone, reason):
    assert_invalid(
        send(ingest_client, endpoint, traits={"phone": phone}),
        (endpoint.field("traits.phone"), reason),
    )


@pytest.mark.parametrize("endpoint", IDENTIFYING, ids=repr)
def test_invalid_email_is_refused(ingest_client, nothing_stored, endpoint):
    response = send(ingest_client, endpoint, traits={"email": "not-an-email"})

    assert_invalid(response, (endpoint.field("traits.email"), "is not a valid email address"))


@pytest.mark.parametrize("endpoint", IDENTIFYING, ids=repr)
def test_context_must_be_an_object(ingest_client, nothing_stored, endpoint):
    assert_invalid(
        send(ingest_client, endpoint, context="Europe/Paris"),
        (endpoint.field("context"), "must be an object"),
    )


# --- track: event name -------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", TRACKING, ids=repr)
@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (None, "is required"),
        ("", "is required"),
        (42, "must be a string, not a number"),
        ("E" * 201, "value is 201 characters long; the limit is 200"),
    ],
)
def test_bad_event_names_are_refused(ingest_client, nothing_stored, endpoint, event, reason):
    assert_invalid(send(ingest_client, endpoint, event=event), (endpoint.field("event"), reason))


# --- Sizes -------------------------------------------------------------------------------------


def test_a_batch_of_more_than_1000_items_is_refused_naming_batch(ingest_client, nothing_stored):
    items = [{"type": "track", "userId": f"u_{i}", "event": "E"} for i in range(1001)]

    response = ingest_client.post("/api/v1/batch", {"batch": items}, format="json")

    assert_invalid(response, ("batch", "has 1001 items; at most 1000 are allowed per request"))


@pytest.mark.parametrize("endpoint", [TRACK, IDENTIFY], ids=repr)
def test_a_valid_single_call_over_32_kb_is_refused_with_413(
    ingest_client, nothing_stored, endpoint
):
    bag = {f"note{i}": "x" * 8000 for i in range(5)}

    response = send(ingest_client, endpoint, **{endpoint.bag: bag})

    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large"
    assert error["fields"] == [{"field": "body", "reason": "must be at most 32,768 bytes"}]


def test_a_valid_batch_over_1_mb_is_refused_with_413(ingest_client, nothing_stored):
    items = [
        {"type": "track", "userId": f"u_{i}", "event": "E", "properties": {"n": "x" * 8000}}
        for i in range(140)
    ]

    response = ingest_client.post("/api/v1/batch", {"batch": items}, format="json")

    assert response.status_code == 413
    assert response.json()["error"]["fields"] == [
        {"field": "body", "reason": "must be at most 1,048,576 bytes"}
    ]


@pytest.mark.parametrize("url", URLS)
def test_a_body_over_the_hard_cap_is_refused_with_413_before_it_is_read(
    ingest_client, nothing_stored, url
):
    response = send_raw(ingest_client, url, b"{" + b" " * (2 * 1024 * 1024) + b"}")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


# --- Repeats -----------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", EVERY, ids=repr)
def test_repeated_message_id_succeeds_and_stores_nothing_new(ingest_client, endpoint):
    first = send(ingest_client, endpoint, messageId="m-1")
    stored = (Customer.objects.count(), Event.objects.count(), ProfileUpdate.objects.count())

    again = send(ingest_client, endpoint, messageId="m-1")

    assert (first.status_code, again.status_code) == (200, 200)
    assert (
        Customer.objects.count(),
        Event.objects.count(),
        ProfileUpdate.objects.count(),
    ) == stored
    if endpoint.batched:
        assert again.json() == {
            "success": True,
            "received": 1,
            "stored": 0,
            "duplicates": 1,
            "ignored": 0,
        }


# --- Keys and scopes ---------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", [IDENTIFY, TRACK, PAGE, SCREEN, BATCH_TRACK], ids=repr)
def test_no_key_is_401(db, nothing_stored, endpoint):
    response = APIClient().post(endpoint.url, endpoint.payload(), format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("endpoint", [IDENTIFY, TRACK, PAGE, SCREEN, BATCH_TRACK], ids=repr)
@pytest.mark.parametrize(
    "header", ["Bearer chorus_nope.nope", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer garbage"]
)
def test_an_unknown_or_malformed_key_is_401(db, nothing_stored, endpoint, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.post(endpoint.url, endpoint.payload(), format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


@pytest.mark.parametrize("endpoint", [IDENTIFY, TRACK, PAGE, SCREEN, BATCH_TRACK], ids=repr)
def test_a_revoked_key_is_401(make_api_key, nothing_stored, endpoint):
    api_key, clear = make_api_key(("ingest",))
    do_revoke_api_key(api_key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")

    assert client.post(endpoint.url, endpoint.payload(), format="json").status_code == 401


@pytest.mark.parametrize("endpoint", [IDENTIFY, TRACK, PAGE, SCREEN, BATCH_TRACK], ids=repr)
def test_a_key_without_the_ingest_scope_is_403(make_api_key, nothing_stored, endpoint):
    _, clear = make_api_key(("read", "manage"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")

    response = client.post(endpoint.url, endpoint.payload(), format="json")

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied"
    assert error["message"].startswith("This API key lacks the ")


@pytest.mark.parametrize("url", URLS)
def test_only_post_is_allowed(ingest_client, url):
    assert ingest_client.get(url).status_code == 405
