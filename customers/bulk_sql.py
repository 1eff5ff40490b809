"""Bulk inserts and updates for the ingestion hot path.

On PostgreSQL the rows travel as one jsonb parameter expanded by ``jsonb_to_recordset``:
Django's psycopg backend binds parameters client-side, and quoting every value of a
100-event batch one by one (``bulk_create``, ``bulk_update``) cost more CPU than the
database spent storing them. Other databases (the embedded SQLite) use the ORM or
portable SQL. Rows are dicts keyed by field name (attname for foreign keys, ``pk`` for
the primary key), all rows of one call with the same keys in the same order; values must
already be valid for their columns.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache

from django.db import connection


def insert_ignoring_conflicts(model, rows: list[dict]) -> int | None:
    """INSERT rows, skipping any that violate a unique constraint (``ignore_conflicts``).

    Returns how many were inserted on PostgreSQL; None elsewhere (bulk_create cannot tell).
    """
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**row) for row in rows], ignore_conflicts=True)
        return None
    sql, columns = _insert_sql(model, tuple(rows[0]))
    with connection.cursor() as cursor:
        cursor.execute(sql, [_as_json(rows, columns)])
        return cursor.rowcount


def upsert_returning(
    model,
    rows: list[dict],
    *,
    conflict: str,
    merge: tuple[tuple[str, str], ...],
    returning: tuple[str, ...],
) -> list[tuple]:
    """PostgreSQL only: INSERT whole rows; on a conflict on the unique field ``conflict``,
    set each field of ``merge`` to ``FUNCTION(current, proposed)`` (e.g. LEAST, GREATEST).
    With no ``merge``, an existing row is only locked (lock-or-create), not changed.

    Returns the ``returning`` columns of every row, followed by whether it was created.
    Rows should be sorted by ``conflict`` so concurrent upserts lock rows in one order.
    """
    sql, columns = _upsert_sql(model, tuple(rows[0]), conflict, merge, returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, [_as_json(rows, columns)])
        return cursor.fetchall()


@lru_cache(maxsize=16)
def _upsert_sql(model, names, conflict, merge, returning) -> tuple[str, tuple[str, ...] | None]:
    insert, columns = _insert_sql(model, names, alias="t")
    updates = ", ".join(
        f"{_column(model, n)} = {fn}(t.{_column(model, n)}, EXCLUDED.{_column(model, n)})"
        for n, fn in merge
    )
    if not merge:  # DO UPDATE (unlike DO NOTHING) locks and returns the existing row
        updates = f"{_column(model, conflict)} = EXCLUDED.{_column(model, conflict)}"
    result = ", ".join(f"t.{_column(model, name)}" for name in returning)
    sql = (
        f"{insert} ON CONFLICT ({_column(model, conflict)}) DO UPDATE SET {updates} "
        f"RETURNING {result}, (t.xmax = 0) AS created"  # xmax is 0 on a freshly inserted row
    )
    return sql, columns


def update_by_pk(model, rows: list[dict]) -> None:
    """UPDATE each row (a dict with ``pk`` and the fields to set) in one statement."""
    if not rows:
        return
    names = tuple(rows[0])
    if connection.vendor != "postgresql":
        _update_with_case(model, rows, [name for name in names if name != "pk"])
        return
    sql, columns = _update_sql(model, names)
    with connection.cursor() as cursor:
        cursor.execute(sql, [_as_json(rows, columns)])


@lru_cache(maxsize=64)
def _insert_sql(
    model, names: tuple[str, ...], alias: str = ""
) -> tuple[str, tuple[str, ...] | None]:
    fields = [model._meta.get_field(name) for name in names]
    columns = ", ".join(_quote(f.column) for f in fields)
    table = _quote(model._meta.db_table) + (f" AS {alias}" if alias else "")
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {columns} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS r({_record_spec(fields)})"
    )
    if not alias:
        sql += " ON CONFLICT DO NOTHING"
    return sql, _renamed(names, fields)


@lru_cache(maxsize=64)
def _update_sql(model, names: tuple[str, ...]) -> tuple[str, tuple[str, ...] | None]:
    fields = [model._meta.pk if name == "pk" else model._meta.get_field(name) for name in names]
    table, pk = _quote(model._meta.db_table), _quote(model._meta.pk.column)
    assignments = ", ".join(
        f"{_quote(f.column)} = r.{_quote(f.column)}" for f in fields if not f.primary_key
    )
    sql = (
        f"UPDATE {table} SET {assignments} FROM jsonb_to_recordset(%s::jsonb) AS r({_record_spec(fields)}) "
        f"WHERE {table}.{pk} = r.{pk}"
    )
    return sql, _renamed(names, fields)


def _update_with_case(model, rows: list[dict], names: list[str]) -> None:
    """The portable form: ``SET col = CASE pk WHEN … THEN … END`` per field."""
    pk = _quote(model._meta.pk.column)
    assignments, params = [], []
    for name in names:
        field = model._meta.get_field(name)
        column = _quote(field.column)
        whens = " ".join(["WHEN %s THEN %s"] * len(rows))
        assignments.append(f"{column} = CASE {pk} {whens} ELSE {column} END")
        for row in rows:
            params += (row["pk"], field.get_db_prep_save(row[name], connection))
    placeholders = ", ".join(["%s"] * len(rows))
    params += [row["pk"] for row in rows]
    sql = f"UPDATE {_quote(model._meta.db_table)} SET {', '.join(assignments)} WHERE {pk} IN ({placeholders})"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _renamed(names: tuple[str, ...], fields: list) -> tuple[str, ...] | None:
    """Column names when a row key differs from its column (``pk`` → ``id``), else None."""
    columns = tuple(f.column for f in fields)
    return None if columns == names else columns


def _as_json(rows: list[dict], columns: tuple[str, ...] | None) -> str:
    """The rows as one JSON array keyed by column, as ``jsonb_to_recordset`` expects."""
    if columns is not None:
        rows = [dict(zip(columns, row.values(), strict=True)) for row in rows]
    return json.dumps(rows, default=_json_default, separators=(",", ":"))


def _record_spec(fields: list) -> str:
    return ", ".join(f"{_quote(f.column)} {f.db_type(connection)}" for f in fields)


def _column(model, name: str) -> str:
    return _quote(model._meta.get_field(name).column)


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
