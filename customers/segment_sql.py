"""SQL building blocks for segments: numbers read out of JSON, and comparisons on them.

JSON values are compared as numbers only when they are numbers (or strings that spell a
plain decimal number). Comparing jsonb directly orders by type first (every string sorts
below every number), and casting arbitrary text raises and would fail the whole query, so
the cast is guarded by a type check. PostgreSQL casts to ``numeric`` (never overflows for a
jsonb number); SQLite, the embedded default, casts to REAL.
"""

from __future__ import annotations

import functools
from decimal import Decimal

from django.db import NotSupportedError
from django.db.models import BooleanField, Expression, F, FloatField, Func, Q
from django.db.models.fields.json import KeyTransform, compile_json_path

# A plain decimal number written as text, bounded so the cast can never overflow.
NUMERIC_TEXT = r"^\s*-?[0-9]{1,30}(\.[0-9]{1,30})?\s*$"

SQL_OPERATORS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class _JSONPathFunc(Func):
    """A value read at ``path`` inside a JSON column, written per backend (PostgreSQL, SQLite)."""

    def __init__(self, field: str, path: tuple[str, ...]):
        super().__init__(F(field))
        self.path = tuple(path)

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"Segments do not support the {connection.vendor} backend.")


class JSONNumber(_JSONPathFunc):
    """The number at ``path`` inside a JSON column, or NULL when it is not a number."""

    output_field = FloatField()

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        path = list(self.path)
        node, text = f"({column} #> %s::text[])", f"({column} #>> %s::text[])"
        sql = (
            f"CASE jsonb_typeof({node}) WHEN 'number' THEN {text}::numeric "
            f"WHEN 'string' THEN CASE WHEN {text} ~ %s THEN trim({text})::numeric END END"
        )
        return sql, (*params, path, *params, path, *params, path, NUMERIC_TEXT, *params, path)

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        path = compile_json_path(self.path)
        value = f"json_extract({column}, %s)"
        sql = (
            f"CASE json_type({column}, %s) WHEN 'integer' THEN {value} WHEN 'real' THEN {value} "
            f"WHEN 'text' THEN CASE WHEN {value} REGEXP %s THEN CAST(trim({value}) AS REAL) END END"
        )
        return sql, (*params, path, *params, path, *params, path, *params, path, NUMERIC_TEXT, *params, path)


class JSONPresent(_JSONPathFunc):
    """True when ``path`` inside a JSON column holds a value other than JSON null."""

    output_field = BooleanField()

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"COALESCE(jsonb_typeof({column} #> %s::text[]) <> 'null', false)"
        return sql, (*params, list(self.path))

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"COALESCE(json_type({column}, %s) <> 'null', 0)"
        return sql, (*params, compile_json_path(self.path))


class NumberCompare(Func):
    """``expression <op> number``, with the number bound as numeric on PostgreSQL."""

    output_field = BooleanField()

    def __init__(self, expression, operator: str, number: int | float):
        super().__init__(expression)
        self.operator = SQL_OPERATORS[operator]
        self.number = number

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        number = Decimal(str(self.number)) if connection.vendor == "postgresql" else self.number
        return f"({sql} {self.operator} %s)", (*params, number)


def number_q(expression, operator: str, number: int | float) -> Q:
    return Q(NumberCompare(expression, operator, number))


def json_present(field: str, path: tuple[str, ...]) -> Q:
    """The key exists and is not JSON null (never NULL itself, so it negates safely)."""
    return Q(JSONPresent(field, path))


class JSONKeyLookup(Expression):
    """A Django lookup (``exact``, ``in``, ``icontains``) on the value at ``path`` in a JSON column.

    Built from explicit key transforms, never from a ``traits__a__b`` keyword: there a key
    named like a lookup or transform (``score.gt``, ``a.in``, ``a.year``) would be read as
    one and fail to compile. The lookup is made once the column is resolved, so the value is
    prepared by the column's own field exactly as the keyword form would prepare it.
    """

    conditional = True
    output_field = BooleanField()

    def __init__(self, field: str, path: tuple[str, ...], lookup: str, value):
        super().__init__()
        # "column", not "field": Expression.field is the output field.
        self.column, self.path, self.lookup, self.value = field, tuple(path), lookup, value

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        column = F(self.column).resolve_expression(query, allow_joins, reuse, summarize, for_save)
        key = functools.reduce(lambda inner, name: KeyTransform(name, inner), self.path, column)
        return key.get_lookup(self.lookup)(key, self.value)


def json_q(field: str, path: tuple[str, ...], operator: str, value) -> Q:
    """A condition on one JSON value. Negations (neq, not_in) include a missing key."""
    if operator == "eq":
        return Q(JSONKeyLookup(field, path, "exact", value))
    if operator == "in":
        return Q(JSONKeyLookup(field, path, "in", list(value)))
    if operator == "contains":
        return Q(JSONKeyLookup(field, path, "icontains", value))
    if operator == "exists":
        return json_present(field, path)
    if operator == "not_exists":
        return ~json_present(field, path)
    if operator in ("neq", "not_in"):
        positive = json_q(field, path, "eq" if operator == "neq" else "in", value)
        return ~json_present(field, path) | ~positive
    return number_q(JSONNumber(field, path), operator, value)
