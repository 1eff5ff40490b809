"""Helpers for tests whose engine workers are separate processes on the test database."""

from __future__ import annotations

from django.db import connection


def worker_database_url() -> str:
    """The test database (pytest-django renamed it), for the worker processes."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
