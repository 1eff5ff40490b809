"""Settings helpers fail loudly, naming the variable."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from orchestrator.env import database_from_url, env_bool, env_int, env_list, env_str


def test_env_int_names_the_variable_on_garbage(monkeypatch):
    monkeypatch.setenv("Q_WORKERS", "many")
    with pytest.raises(ImproperlyConfigured, match=r"^Q_WORKERS: expected an integer, got 'many'$"):
        env_int("Q_WORKERS", 2)


def test_env_int_enforces_minimum(monkeypatch):
    monkeypatch.setenv("Q_WORKERS", "0")
    with pytest.raises(ImproperlyConfigured, match="Q_WORKERS: must be at least 1"):
        env_int("Q_WORKERS", 2, minimum=1)


def test_env_bool_rejects_unknown_words(monkeypatch):
    monkeypatch.setenv("DEBUG", "perhaps")
    with pytest.raises(ImproperlyConfigured, match="DEBUG: expected a boolean"):
        env_bool("DEBUG")


def test_required_string_names_the_variable(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY: this environment variable is required"):
        env_str("SECRET_KEY", required=True)


def test_env_list_splits_and_strips(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", " a.example.com, b.example.com ,,")
    assert env_list("ALLOWED_HOSTS") == ["a.example.com", "b.example.com"]


def test_database_url_parses_postgres_with_options():
    db = database_from_url("DATABASE_URL", "postgres://chorus:s%40cret@db.internal:6432/chorus?sslmode=require")
    assert db == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "chorus",
        "USER": "chorus",
        "PASSWORD": "s@cret",
        "HOST": "db.internal",
        "PORT": "6432",
        "OPTIONS": {"sslmode": "require"},
    }


def test_database_url_rejects_unknown_scheme():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL: unsupported scheme 'mysql'"):
        database_from_url("DATABASE_URL", "mysql://root@localhost/chorus")


def test_database_url_requires_a_database_name():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL: the URL names no database"):
        database_from_url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/")
