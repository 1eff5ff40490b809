"""Suppression hashes: keyed, normalised by kind, and the key is required in production."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from customers.models import hash_identifier

HEX64 = set("0123456789abcdef")


def test_external_ids_differing_only_in_case_hash_differently():
    assert hash_identifier("external_id", "AbC") != hash_identifier("external_id", "abc")


def test_external_id_is_hashed_exactly_even_with_spaces():
    assert hash_identifier("external_id", " u1") != hash_identifier("external_id", "u1")


def test_email_hash_ignores_case_and_surrounding_space():
    assert hash_identifier("email", " Maya@Example.COM ") == hash_identifier("email", "maya@example.com")


def test_phone_hash_ignores_surrounding_space_only():
    assert hash_identifier("phone", " +14155550100\n") == hash_identifier("phone", "+14155550100")
    assert hash_identifier("phone", "+14155550100") != hash_identifier("phone", "+14155550101")


def test_the_same_value_of_two_kinds_hashes_differently():
    assert hash_identifier("email", "a@example.com") != hash_identifier("external_id", "a@example.com")


def test_hash_is_keyed_not_a_plain_digest_anyone_can_recompute(settings):
    digest = hash_identifier("phone", "+14155550100")
    assert len(digest) == 64 and set(digest) <= HEX64
    assert digest != hashlib.sha256(b"+14155550100").hexdigest()
    settings.SUPPRESSION_HASH_KEY = "another key"
    assert hash_identifier("phone", "+14155550100") != digest


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        hash_identifier("fax", "+14155550100")


def _import_settings(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"SUPPRESSION_HASH_KEY", "DEBUG", "REDIS_URL"}}
    return subprocess.run(
        [sys.executable, "-c", "import orchestrator.settings as s; print(s.SUPPRESSION_HASH_KEY)"],
        env={**base, **env}, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=60,
    )


PRODUCTION = {
    "CHORUS_PRODUCTION": "1",
    "SECRET_KEY": "x" * 50,
    "CHORUS_SECRET_KEYS": "dGVzdC1wcm92aWRlci1zZWNyZXRzLWtleS0zMmJ5dGU=",
    "ALLOWED_HOSTS": "chorus.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/chorus",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def test_production_refuses_to_start_without_a_suppression_hash_key():
    result = _import_settings(**PRODUCTION)
    assert result.returncode != 0
    assert "SUPPRESSION_HASH_KEY: this environment variable is required but is not set" in result.stderr


def test_production_uses_the_suppression_hash_key_from_the_environment():
    result = _import_settings(**PRODUCTION, SUPPRESSION_HASH_KEY="k" * 40)
    assert (result.returncode, result.stdout) == (0, "k" * 40 + "\n")


def test_phone_hash_uses_the_canonical_e164_form():
    from customers.models import hash_identifier

    assert hash_identifier("phone", "+4402079460000") == hash_identifier("phone", "+442079460000")
    assert hash_identifier("phone", " +442079460000 ") == hash_identifier("phone", "+442079460000")


def test_production_refuses_to_start_without_redis():
    without_redis = {k: v for k, v in PRODUCTION.items() if k != "REDIS_URL"}
    result = _import_settings(**without_redis, SUPPRESSION_HASH_KEY="k" * 40)
    assert result.returncode != 0
    assert "REDIS_URL: this environment variable is required but is not set" in result.stderr
