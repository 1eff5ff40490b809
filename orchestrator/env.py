"""Typed access to environment variables that fails loudly, naming the variable.

Every setting Chorus reads from the environment goes through these helpers, so a
typo'd or malformed value stops start-up with a message that says which variable
is wrong and why, instead of silently falling back to a default.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = _raw(name)
    if value:
        return value
    if required:
        raise ImproperlyConfigured(f"{name}: this environment variable is required but is not set")
    return default


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}: expected a boolean (1/0, true/false, yes/no), got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {number}")
    return number


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if not value:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_fernet_keys(name: str, *, required: bool = False) -> list[str]:
    """A comma-separated list of Fernet keys (32 url-safe base64 bytes each), newest first.

    Each is checked now, so a malformed key stops start-up rather than the first send that
    needs a secret; the error names the key's position, never its value."""
    from cryptography.fernet import Fernet

    keys = env_list(name)
    if not keys and required:
        raise ImproperlyConfigured(f"{name}: this environment variable is required but is not set (comma-separated Fernet keys)")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(f"{name}: key {position} is not a Fernet key (32 url-safe base64-encoded bytes)") from None
    return keys


def database_from_url(name: str, url: str) -> dict:
    """Turn ``postgres://user:pass@host:port/db?sslmode=require`` into a DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql", "sqlite"}:
        raise ImproperlyConfigured(
            f"{name}: unsupported scheme {parsed.scheme!r}; use postgres://… or sqlite:///path"
        )
    if parsed.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parsed.path[1:]) or ":memory:"}
    database = unquote(parsed.path.lstrip("/"))
    if not database:
        raise ImproperlyConfigured(f"{name}: the URL names no database (postgres://host:5432/NAME)")
    options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        "OPTIONS": options,
    }
