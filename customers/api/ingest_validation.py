"""Validation of Segment-spec payloads into the calls of ``customers.ingestion``.

Plain Python on purpose: this runs once per item on the ingestion hot path, where a DRF
serializer per item would cost more than the database work. Every check appends
``{"field": "<dotted path>", "reason": ...}`` to an error list (the shape of
``orchestrator.api_errors``) and carries on, so one response lists every problem.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from customers.ingestion import Call, IdentifyCall, TrackCall
from customers.profiles import normalise_email
from customers.validators import canonical_e164, validate_timezone

# --- Limits (documented in the OpenAPI schema and the README) -------------------------------
MAX_BATCH_ITEMS = 1000
MAX_SINGLE_BYTES = 32 * 1024  # one identify, track, page or screen, as Segment's HTTP API
MAX_BATCH_BYTES = 1024 * 1024
MAX_KEY_LENGTH = 255  # any object key inside traits or properties
MAX_STRING_LENGTH = 8192  # any string value inside traits or properties
MAX_NESTING_DEPTH = 5  # keys/indices below traits or properties: properties.a.b.c.d.e
MAX_ID_LENGTH = 255  # userId and messageId (Customer.external_id, *.source_message_id)
MAX_EVENT_NAME_LENGTH = 200  # Event.name
MAX_EMAIL_LENGTH = 254  # Customer.email
MAX_LOCALE_LENGTH = 35  # Customer.locale
MAX_TIMESTAMP_LENGTH = 64
MAX_REPORTED_ERRORS = 1000  # fields listed in one 400; the count says how many there were

# page and screen are stored as events with these names (see _view_properties).
VIEW_EVENTS = {"page": "Page Viewed", "screen": "Screen Viewed"}
# Acknowledged but not stored: Chorus has no groups (accounts) and does not merge aliases.
IGNORED_TYPES = ("group", "alias")
SUPPORTED_TYPES = ("identify", "track", *VIEW_EVENTS, *IGNORED_TYPES)
_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt")


class MalformedJSON(ValueError):
    pass


def parse_json(body: bytes) -> object:
    """Parse a request body; NaN and Infinity are refused (PostgreSQL jsonb cannot hold them)."""
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise MalformedJSON("The request body nests too deeply to parse.") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, our own refusal
        raise MalformedJSON(f"The request body is not valid JSON: {exc}") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400 parses as infinity, which jsonb cannot store either
        raise ValueError(f"number {text[:40]} is out of range")
    return value


class _Errors(list):
    """A list of field errors under a path prefix such as ``batch.3.``."""

    def __init__(self, prefix: str = "", into: list | None = None):
        super().__init__()
        self.prefix = prefix
        self.into = self if into is None else into

    def add(self, field: str, reason: str) -> None:
        self.into.append({"field": f"{self.prefix}{field}", "reason": reason})

    def has(self, field: str) -> bool:
        name = f"{self.prefix}{field}"
        return any(error["field"] == name for error in self.into)

    def under(self, prefix: str) -> _Errors:
        return _Errors(f"{self.prefix}{prefix}", into=self.into)


def validate_single(
    data: object, kind: str, received_at: datetime
) -> tuple[Call | None, list[dict]]:
    """An identify, track, page or screen call posted on its own endpoint."""
    errors = _Errors()
    if not isinstance(data, dict):
        errors.add("body", "must be a JSON object")
        return None, errors
    declared = data.get("type")
    if declared is not None and declared != kind:
        errors.add("type", f"must be '{kind}' on this endpoint (or left out)")
    call = _validate_call(data, kind, errors, received_at)
    return (None if errors else call), errors


def validate_batch(data: object, received_at: datetime) -> tuple[list[Call], int, list[dict]]:
    """``{"batch": [...], "context": {...}}``; the batch-level context applies to every item.

    Returns the calls to store, the number of group and alias calls (checked for a valid
    type only, then ignored) and the errors.
    """
    errors = _Errors()
    if not isinstance(data, dict):
        errors.add("body", "must be a JSON object")
        return [], 0, errors
    items = data.get("batch")
    shared_context = data.get("context")
    if items is None:
        errors.add("batch", "is required")
    elif not isinstance(items, list):
        errors.add("batch", "must be an array of Segment calls")
    elif len(items) > MAX_BATCH_ITEMS:
        errors.add(
            "batch", f"has {len(items)} items; at most {MAX_BATCH_ITEMS} are allowed per request"
        )
    if shared_context is not None and not isinstance(shared_context, dict):
        errors.add("context", "must be an object")
        shared_context = None
    if errors:
        return [], 0, errors
    calls: list[Call] = []
    ignored = 0
    for index, item in enumerate(items):
        item_errors = errors.under(f"batch.{index}.")
        kind = _item_type(item, item_errors)
        if kind in IGNORED_TYPES:
            ignored += 1
        elif kind is not None:
            call = _validate_item(item, kind, item_errors, shared_context, received_at)
            if call is not None:
                calls.append(call)
    return ([], 0, errors) if errors else (calls, ignored, errors)


def _item_type(item, errors: _Errors) -> str | None:
    """The item's type, or None (with an error) when it is not an object of a known type."""
    if not isinstance(item, dict):
        errors.into.append({"field": errors.prefix[:-1], "reason": "must be an object"})
        return None
    kind = item.get("type")
    if kind is None:
        errors.add("type", f"is required: one of {', '.join(SUPPORTED_TYPES)}")
        return None
    if kind not in SUPPORTED_TYPES:
        errors.add("type", f"must be one of {', '.join(SUPPORTED_TYPES)}, not {_short(kind)}")
        return None
    return kind


def _validate_item(
    item: dict, kind: str, errors: _Errors, shared_context: dict | None, received_at: datetime
) -> Call | None:
    if shared_context and isinstance(item.get("context", {}), dict):
        item = {**item, "context": {**shared_context, **(item.get("context") or {})}}
    return _validate_call(item, kind, errors, received_at)


def _validate_call(data: dict, kind: str, errors: _Errors, received_at: datetime) -> Call | None:
    before = len(errors.into)
    user_id = _user_id(data, errors)
    message_id = _identifier(data.get("messageId"), "messageId", errors)
    timestamp = _timestamp(data, errors, received_at)
    if kind == "track" or kind in VIEW_EVENTS:  # a page or screen is stored as an event
        if kind == "track":
            event = _event_name(data.get("event"), errors)
            properties = _json_object(data.get("properties"), "properties", errors)
        else:
            event = VIEW_EVENTS[kind]
            properties = _view_properties(data, errors)
        if len(errors.into) > before:
            return None
        return TrackCall(
            user_id=user_id,
            message_id=message_id,
            timestamp=timestamp,
            event=event,
            properties=properties,
        )
    traits = _json_object(data.get("traits"), "traits", errors)
    context = data.get("context")
    if context is not None and not isinstance(context, dict):
        errors.add("context", "must be an object")
        context = None
    columns = _profile_columns(traits, context or {}, errors)
    if len(errors.into) > before:
        return None
    return IdentifyCall(
        user_id=user_id, message_id=message_id, timestamp=timestamp, traits=traits, **columns
    )


# --- Identifiers and names ---------------------------------------------------------------------


def _user_id(data: dict, errors: _Errors) -> str | None:
    if data.get("userId") is None:
        if data.get("anonymousId") is not None:
            errors.add(
                "userId",
                "is required: Chorus identifies customers by userId; anonymousId alone is not enough",
            )
        else:
            errors.add("userId", "is required")
        return None
    return _identifier(data["userId"], "userId", errors)


def _identifier(value, field: str, errors: _Errors) -> str | None:
    """A userId or messageId: a string, or an integer (which Segment allows and we stringify)."""
    if value is None:
        return None
    if type(value) is int:
        return str(value)
    if type(value) is not str:
        errors.add(field, f"must be a string (or an integer), not {_json_type(value)}")
        return None
    if not value:
        errors.add(field, "must not be empty")
        return None
    reason = _string_problem(value, MAX_ID_LENGTH)
    if reason:
        errors.add(field, reason)
        return None
    return value


def _event_name(value, errors: _Errors) -> str | None:
    if value is None or value == "":
        errors.add("event", "is required")
        return None
    if type(value) is not str:
        errors.add("event", f"must be a string, not {_json_type(value)}")
        return None
    reason = _string_problem(value, MAX_EVENT_NAME_LENGTH)
    if reason:
        errors.add("event", reason)
        return None
    return value


_VIEW_FIELDS = ("name", "category")


def _view_properties(data: dict, errors: _Errors) -> dict | None:
    """page/screen: the properties, with the call's top-level ``name`` and ``category`` (as
    the Segment spec places them) merged in; a property of the same name wins."""
    properties = _json_object(data.get("properties"), "properties", errors)
    named = {}
    for field in _VIEW_FIELDS:
        value = data.get(field)
        if value is None:
            continue
        if type(value) is not str:
            errors.add(field, f"must be a string, not {_json_type(value)}")
            continue
        reason = _string_problem(value, MAX_STRING_LENGTH)
        if reason:
            errors.add(field, reason)
            continue
        named[field] = value
    return None if properties is None else {**named, **properties}


# --- Time ---------------------------------------------------------------------------------------


def _timestamp(data: dict, errors: _Errors, received_at: datetime) -> datetime:
    """``timestamp`` wins; else ``originalTimestamp`` corrected for device clock skew by
    ``sentAt`` (as Segment does); else the time the request was received.

    Only the time we store must fall in the window (``_in_window``): a device whose clock
    was reset sends originalTimestamp and sentAt both in 1970, and the correction is what
    makes its events usable.
    """
    parsed = {name: _datetime(data.get(name), name, errors) for name in _TIME_FIELDS}
    if parsed["timestamp"]:
        return _in_window(parsed["timestamp"], "timestamp", errors, received_at)
    original, sent = parsed["originalTimestamp"], parsed["sentAt"]
    if original and sent:
        try:
            corrected = received_at - (sent - original)
        except OverflowError:  # e.g. originalTimestamp in year 1 and sentAt in 9999
            errors.add("originalTimestamp", f"corrected by sentAt, {_WINDOW_REASON}")
            return received_at
        return _in_window(
            corrected, "originalTimestamp", errors, received_at, "corrected by sentAt, "
        )
    if original:
        return _in_window(original, "originalTimestamp", errors, received_at)
    return received_at


# Stored times must read back: PostgreSQL keeps years before 1 AD and after 9999, which
# Python (and so psycopg) cannot load, and no real event is that old or that far ahead.
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP_AHEAD = timedelta(hours=24)  # device clocks run fast; a day is plenty
_WINDOW_REASON = "must be between 2000-01-01 and 24 hours from now"


def _in_window(
    value: datetime, field: str, errors: _Errors, received_at: datetime, qualifier: str = ""
) -> datetime:
    if not EARLIEST_TIMESTAMP <= value <= received_at + MAX_TIMESTAMP_AHEAD:
        errors.add(field, f"{qualifier}{_WINDOW_REASON}")
        return received_at
    return value


def _datetime(value, field: str, errors: _Errors) -> datetime | None:
    """An aware datetime in UTC, or None (with an error unless the field was absent)."""
    if value is None:
        return None
    if type(value) is not str:
        errors.add(field, f"must be an ISO-8601 date-time string, not {_json_type(value)}")
        return None
    if len(value) > MAX_TIMESTAMP_LENGTH:
        errors.add(field, f"is longer than {MAX_TIMESTAMP_LENGTH} characters")
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        errors.add(field, "is not an ISO-8601 date-time (e.g. 2026-11-23T20:14:00Z)")
        return None
    if parsed.utcoffset() is None:
        errors.add(field, "must include a UTC offset (e.g. 2026-11-23T20:14:00Z or +01:00)")
        return None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0; 9999-12-31T23:00-05:00 in 10000
        errors.add(field, _WINDOW_REASON)
        return None


# --- Traits and properties ---------------------------------------------------------------------


def _json_object(value, field: str, errors: _Errors) -> dict | None:
    """traits/properties: an object within the key, string and nesting limits."""
    if value is None:
        return {}
    if type(value) is not dict:
        errors.add(field, f"must be an object, not {_json_type(value)}")
        return None
    _check_tree(value, (field,), errors)
    return value


def _check_tree(container, path: tuple, errors: _Errors) -> None:
    """Walk an object/array; path strings are only built for the values that fail."""
    is_dict = type(container) is dict
    # Children of this container sit len(path) levels below traits/properties.
    nested_allowed = len(path) < MAX_NESTING_DEPTH
    for key, value in container.items() if is_dict else enumerate(container):
        if is_dict:
            reason = _string_problem(key, MAX_KEY_LENGTH, what="key")
            if reason:
                errors.add(_dotted(path, key), reason)
        kind = type(value)
        if kind is str:
            reason = _string_problem(value, MAX_STRING_LENGTH)
            if reason:
                errors.add(_dotted(path, key), reason)
        elif kind is dict or kind is list:
            if not value:
                continue
            if nested_allowed:
                _check_tree(value, (*path, key), errors)
            else:
                errors.add(
                    _dotted(path, key),
                    f"nests too deeply: objects and arrays may nest at most {MAX_NESTING_DEPTH} "
                    f"levels below {path[0]}",
                )


def _string_problem(value: str, limit: int, what: str = "value") -> str | None:
    """Why PostgreSQL or our columns cannot take this string, or None."""
    if len(value) > limit:
        return f"{what} is {len(value):,} characters long; the limit is {limit:,}"
    if "\x00" in value:
        return f"{what} contains a NUL character (\\u0000), which cannot be stored"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{what} contains an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return None


# --- Well-known traits held in Customer columns ---------------------------------------------------

_CONTEXT_COLUMNS = ("timezone", "locale")


def _profile_columns(traits: dict | None, context: dict, errors: _Errors) -> dict:
    """email, phone, timezone, locale: from traits (or context, where Segment sends the last two).

    They are taken out of ``traits`` so each lives in one place, the Customer column.
    """
    columns: dict = {}
    traits = traits if traits is not None else {}
    for column, check in _COLUMN_CHECKS.items():
        field, value = f"traits.{column}", traits.pop(column, None)
        if value is None and column in _CONTEXT_COLUMNS:
            field, value = f"context.{column}", context.get(column)
        if value is None or value == "" or errors.has(field):
            continue
        if type(value) is not str:
            errors.add(field, f"must be a string, not {_json_type(value)}")
            continue
        try:
            columns[column] = check(value)
        except ValidationError as exc:
            errors.add(field, exc.messages[0])
    return columns


def _check_email(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_EMAIL_LENGTH:
        raise ValidationError(f"is longer than {MAX_EMAIL_LENGTH} characters")
    try:
        validate_email(value)
    except ValidationError:
        raise ValidationError("is not a valid email address") from None
    return normalise_email(value)


def _check_phone(value: str) -> str:
    """Stored in canonical E.164 form, so its hash matches the suppression list's. Not
    stripped: E.164 has no whitespace, and a stray newline means a broken export."""
    return canonical_e164(value)


def _check_timezone(value: str) -> str:
    validate_timezone(value)
    return value


def _check_locale(value: str) -> str:
    reason = _string_problem(value, MAX_LOCALE_LENGTH)
    if reason:
        raise ValidationError(reason)
    return value


_COLUMN_CHECKS = {
    "email": _check_email,
    "phone": _check_phone,
    "timezone": _check_timezone,
    "locale": _check_locale,
}


# --- Small helpers -------------------------------------------------------------------------------


def _dotted(path: tuple, key) -> str:
    return ".".join(str(p) for p in (*path, key))


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
