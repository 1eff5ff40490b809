"""API keys: the create/revoke commands, hashing at rest, authentication and the rate limit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import override_settings
from rest_framework.test import APIClient

from orchestrator.api_keys import do_create_api_key, find_key
from orchestrator.models import ApiKey

pytestmark = pytest.mark.django_db

LIST = "/api/v1/customers"


def create_key(*args) -> list[str]:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().splitlines()


def client_for(clear_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear_key}")
    return client


# --- create_api_key / revoke_api_key ----------------------------------------------------------


def test_create_prints_the_clear_key_once_as_the_last_line():
    lines = create_key("segment-prod", "--scopes", "ingest,read", "--source", "segment", "--rate-limit", "120")
    clear = lines[-1]
    assert clear.startswith("chorus_")
    assert sum(clear in line for line in lines) == 1
    key = ApiKey.objects.get(name="segment-prod")
    assert (key.scopes, key.source, key.rate_limit_per_minute) == (["ingest", "read"], "segment", 120)
    assert find_key(clear) == key
    assert client_for(clear).get(LIST).status_code == 200


def test_create_defaults_source_to_the_name_and_rate_limit_to_the_setting():
    create_key("loader", "--scopes", " ingest ")
    key = ApiKey.objects.get(name="loader")
    assert (key.scopes, key.source, key.rate_limit_per_minute) == (["ingest"], "loader", None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["k", "--scopes", "ingest,write"], "--scopes: unknown scope(s) write; choose from ingest, manage, read"),
        (["k", "--scopes", ","], "--scopes: at least one scope is required"),
        (["k", "--scopes", "read", "--rate-limit", "0"], "--rate-limit: must be at least 1 (leave it unset for the default)"),
        (["  ", "--scopes", "read"], "NAME: a name is required"),
    ],
)
def test_create_refuses_bad_input_naming_the_option(args, message):
    with pytest.raises(CommandError) as excinfo:
        create_key(*args)
    assert str(excinfo.value) == message
    assert not ApiKey.objects.exists()


def test_create_refuses_a_duplicate_name_and_keeps_the_first_key():
    first = create_key("crm", "--scopes", "read")[-1]
    with pytest.raises(CommandError, match=r"^NAME: an API key named 'crm' already exists$"):
        create_key("crm", "--scopes", "ingest")
    assert ApiKey.objects.count() == 1
    assert find_key(first).scopes == ["read"]


def test_the_clear_key_is_never_stored():
    clear = create_key("audit", "--scopes", "read")[-1]
    prefix, _, secret = clear.removeprefix("chorus_").partition(".")
    key = ApiKey.objects.get(name="audit")
    assert key.prefix == prefix
    assert key.hashed_secret == hashlib.sha256(secret.encode()).hexdigest()
    stored = repr(list(ApiKey.objects.values()))
    assert secret not in stored and clear not in stored


def test_a_wrong_secret_with_a_real_prefix_is_refused(make_api_key):
    _, clear = make_api_key(("read",))
    forged = clear[:-4] + ("AAAA" if not clear.endswith("AAAA") else "BBBB")
    response = client_for(forged).get(LIST)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_revoked_key_gets_401_at_once(make_api_key):
    _, clear = make_api_key(("read",), name="old")
    client = client_for(clear)
    assert client.get(LIST).status_code == 200
    out = StringIO()
    call_command("revoke_api_key", "old", stdout=out)
    assert "Revoked API key 'old'" in out.getvalue()
    response = client.get(LIST)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="chorus"'
    assert response.json() == {
        "error": {"code": "authentication_failed", "message": "Authorization: unknown or revoked API key."}
    }


def test_revoke_twice_says_so_and_unknown_name_is_an_error(make_api_key):
    make_api_key(("read",), name="old")
    call_command("revoke_api_key", "old", stdout=StringIO())
    revoked_at = ApiKey.objects.get(name="old").revoked_at
    out = StringIO()
    call_command("revoke_api_key", "old", stdout=out)
    assert "already revoked" in out.getvalue()
    assert ApiKey.objects.get(name="old").revoked_at == revoked_at
    with pytest.raises(CommandError, match=r"^NAME: no API key named 'nope'$"):
        call_command("revoke_api_key", "nope", stdout=StringIO())


def test_missing_or_malformed_authorization_is_401(db):
    assert APIClient().get(LIST).status_code == 401
    response = APIClient().get(LIST, HTTP_AUTHORIZATION="Token abc")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authorization: expected 'Bearer <api key>'."


# --- Rate limit -------------------------------------------------------------------------------

T = datetime(2026, 11, 23, 12, 0, 20, tzinfo=UTC)


def _limited_key(limit: int, name: str) -> APIClient:
    created = do_create_api_key(name, ["read"], rate_limit_per_minute=limit)
    return client_for(created.clear_key)


def test_a_key_over_its_per_minute_limit_gets_429_with_retry_after():
    with time_machine.travel(T, tick=False):
        client = _limited_key(3, "small")
        assert [client.get(LIST).status_code for _ in range(3)] == [200, 200, 200]
        response = client.get(LIST)
    assert response.status_code == 429
    assert response["Retry-After"] == "40"  # 12:00:20 → the window opens again at 12:01:00
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": {
            "code": "rate_limited",
            "message": "Rate limit exceeded for this API key. Expected available in 40 seconds.",
        }
    }


def test_another_key_is_unaffected_by_one_over_its_limit():
    with time_machine.travel(T, tick=False):
        busy, quiet = _limited_key(2, "busy"), _limited_key(2, "quiet")
        assert [busy.get(LIST).status_code for _ in range(3)] == [200, 200, 429]
        assert quiet.get(LIST).status_code == 200


def test_a_new_minute_resets_the_count():
    with time_machine.travel(T, tick=False) as traveller:
        client = _limited_key(2, "resets")
        assert [client.get(LIST).status_code for _ in range(3)] == [200, 200, 429]
        traveller.move_to(datetime(2026, 11, 23, 12, 0, 59, tzinfo=UTC))
        assert client.get(LIST).status_code == 429
        traveller.move_to(datetime(2026, 11, 23, 12, 1, 0, tzinfo=UTC))
        assert [client.get(LIST).status_code for _ in range(3)] == [200, 200, 429]


@override_settings(API_RATE_LIMIT_PER_MINUTE=2)
def test_keys_without_their_own_limit_use_the_setting(make_api_key):
    _, clear = make_api_key(("read",))
    client = client_for(clear)
    with time_machine.travel(T, tick=False):
        assert [client.get(LIST).status_code for _ in range(3)] == [200, 200, 429]


def test_retry_after_is_never_zero_at_the_end_of_a_window():
    with time_machine.travel(datetime(2026, 11, 23, 12, 0, 59, 900000, tzinfo=UTC), tick=False):
        client = _limited_key(1, "edge")
        client.get(LIST)
        response = client.get(LIST)
    assert response.status_code == 429
    assert response["Retry-After"] == "1"


def test_a_zero_rate_limit_is_refused_by_model_validation(make_api_key):
    from django.core.exceptions import ValidationError

    api_key, _ = make_api_key(("ingest",))
    api_key.rate_limit_per_minute = 0
    with pytest.raises(ValidationError) as raised:
        api_key.full_clean()
    assert list(raised.value.message_dict) == ["rate_limit_per_minute"]
