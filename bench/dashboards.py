#!/usr/bin/env python
"""How fast the cadence dashboard's panels answer on a realistic ledger, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chorus_bench_dashboards .venv/bin/python bench/dashboards.py [--quick]

One database (DATABASE_URL, default the URL above; created and migrated if needed). It
*empties* the tables it fills, so it refuses a database whose name does not contain
"bench". Generated with COPY (psycopg's ``cursor.copy``), never row by row:

- 200,000 customers, 12 live journeys (tags by team) with their versions;
- 5,000,000 messages over the last 90 days: skewed per customer (a few get many), by
  channel (email 50 %, push 25 %, in-app 15 %, SMS 10 %), 85 % marketing, 80 % from a
  journey, statuses as a ledger has them (mostly sent/delivered/opened/clicked; some
  bounced, failed, suppressed, deferred, unknown);
- 1,000,000 events, 300,000 governor verdicts (suppressions and deferrals: about 7 % of
  the sends), 12,000 opt-outs (2 % of the audience a month) and 400,000 enrollments
  inside the journeys (due over the next 8 days, some waiting).

``--quick`` (within 60 s): 20,000 customers, 200,000 messages, 40,000 events and the rest
scaled alike. Then the rollups are rebuilt from the ledger once
(``rebuild_dashboard_rollups``, what a bulk import is followed by; the listener keeps them
exact afterwards), the tables analysed, and each panel loaded ``--runs`` times (after one
warm-up) with the dashboard's default filters (the last 30 days, every journey, channel
and category): the panel's queries and its figures, as the page builds them.

Printed, one ``name: value`` per line at the end: the sizes, ``generate_s``,
``rollup_rebuild_s``, ``panel_p95_ms_<panel>`` per panel as the page loads it and
``panel_p95_ms_max`` (aim: under 300 ms at full scale). Upcoming load and journey overlap
read the enrollments and are shared through the cache for a minute (panels/shared.py), so
their page loads are cache hits: ``panel_compute_p95_ms_<panel>`` is what computing them
afresh costs, once a minute per filter set.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/chorus_bench_dashboards"
FULL = {"customers": 200_000, "messages": 5_000_000, "events": 1_000_000, "verdicts": 300_000,
        "opt_outs": 12_000, "enrollments": 400_000}
QUICK = {"customers": 20_000, "messages": 200_000, "events": 40_000, "verdicts": 12_000,
         "opt_outs": 500, "enrollments": 16_000}
HISTORY_DAYS = 90
CHANNELS = ["email"] * 50 + ["push"] * 25 + ["in_app"] * 15 + ["sms"] * 10
STATUSES = (["delivered"] * 40 + ["opened"] * 20 + ["sent"] * 15 + ["clicked"] * 10 + ["bounced"] * 3
            + ["failed"] * 2 + ["suppressed"] * 5 + ["deferred"] * 2 + ["unknown"] * 1 + ["converted"] * 2)
EVENTS = ["Session Started", "Product Viewed", "Added to Cart", "Order Completed", "App Opened"]
TAGS = [["lifecycle"], ["growth"], ["retention", "growth"], ["transactional-ops"], []]
RULES = [("3 marketing a day", "defer"), ("8 a week", "defer"), ("1 SMS a day", "suppress"), ("min spacing", "defer"),
         ("quiet hours sms", "defer"), ("quiet hours push", "defer"), ("consent", "suppress"), ("priority", "defer")]
OPT_OUT_STATUSES = ["opted_out", "unsubscribed", "stopped", "complained"]
RUNS = 15


def graph(n: int) -> dict:
    channel = ["email", "push", "sms", "in_app"][n % 4]
    nodes = [{"id": "entry", "kind": "entry", "config": {}}, {"id": "wait", "kind": "delay", "config": {}},
             {"id": "first", "kind": "send", "config": {"channel": channel}},
             {"id": "event", "kind": "wait_for_event", "config": {}},
             {"id": "second", "kind": "send", "config": {"channel": "best" if n % 3 == 0 else "email"}},
             {"id": "done", "kind": "exit", "config": {}}]
    edges = [{"from": "entry", "port": "out", "to": "wait"}, {"from": "wait", "port": "out", "to": "first"},
             {"from": "first", "port": "out", "to": "event"}, {"from": "event", "port": "timed_out", "to": "second"},
             {"from": "event", "port": "happened", "to": "done"}, {"from": "second", "port": "out", "to": "done"}]
    return {"nodes": nodes, "edges": edges}


# --- COPY ------------------------------------------------------------------------------------


def _constant(field, now_text: str) -> str | None:
    """The text COPY writes for a column we do not fill, or None when the database fills it."""
    from django.db.models import NOT_PROVIDED

    if field.null or field.db_default is not NOT_PROVIDED:
        return None
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now_text
    default = field.get_default()
    if isinstance(default, dict | list):
        return json.dumps(default)
    if isinstance(default, bool):
        return "t" if default else "f"
    if isinstance(default, dt.datetime):
        return now_text
    return "" if default is None else str(default)


def copy(model, columns: list[str], lines, now: dt.datetime) -> int:
    """COPY tab-separated ``lines`` (values of ``columns``, model field names) into the table;
    every other required column gets its field's default. Returns the rows written."""
    from django.db import connection

    now_text = now.isoformat()
    given = set(columns)
    extra = [(f, _constant(f, now_text)) for f in model._meta.concrete_fields
             if f.name not in given and not f.primary_key]
    extra = [(f, text) for f, text in extra if text is not None]
    names = [model._meta.get_field(c).column for c in columns] + [f.column for f, _ in extra]
    suffix = "".join("\t" + text for _, text in extra) + "\n"
    table = connection.ops.quote_name(model._meta.db_table)
    written = 0
    with connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY {table} ({', '.join(connection.ops.quote_name(n) for n in names)}) FROM STDIN"
    ) as pipe:
        chunk: list[str] = []
        for line in lines:
            chunk.append(line + suffix)
            if len(chunk) >= 20_000:
                pipe.write("".join(chunk))
                written += len(chunk)
                chunk = []
        pipe.write("".join(chunk))
        written += len(chunk)
    return written


@contextmanager
def without_indexes(model):
    """Drop the table's plain indexes and foreign keys while it is loaded, then build them
    again: one sort per index and one join per key instead of millions of random index
    inserts and per-row key checks. Unique constraints stay."""
    from django.db import connection

    table = model._meta.db_table
    quoted = connection.ops.quote_name(table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN"
            " (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)", [table, table],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass"
            " AND contype = 'f'", [table],
        )
        keys = cursor.fetchall()
        for name, _ in keys:
            cursor.execute(f"ALTER TABLE {quoted} DROP CONSTRAINT {connection.ops.quote_name(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for _, definition in indexes:
                cursor.execute(definition)
            for name, definition in keys:
                cursor.execute(f"ALTER TABLE {quoted} ADD CONSTRAINT {connection.ops.quote_name(name)} {definition}")


def ids_of(model) -> list[int]:
    return list(model.objects.order_by("pk").values_list("pk", flat=True))


# --- Generation --------------------------------------------------------------------------------


def empty_tables() -> None:
    from django.db import connection

    from channels_app.models import Message
    from customers.models import Customer
    from journeys.models import Journey
    from orchestrator.dashboards.models import CustomerDay, MixCount, PressureBucket

    tables = [m._meta.db_table for m in (Customer, Message, Journey, CustomerDay, PressureBucket, MixCount)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in tables)} RESTART IDENTITY CASCADE")


def make_journeys(now: dt.datetime) -> list[tuple[int, int]]:
    from journeys.models import Journey, JourneyStatus, JourneyVersion

    made = []
    for n in range(12):
        journey = Journey.objects.create(name=f"Bench journey {n + 1:02d}", status=JourneyStatus.LIVE, tags=TAGS[n % 5],
                                         category="transactional" if n == 11 else "marketing")
        version = JourneyVersion.objects.create(journey=journey, number=1, graph=graph(n), published_at=now)
        Journey.objects.filter(pk=journey.pk).update(live_version=version)
        made.append((journey.pk, version.pk))
    return made


def skewed(rng: random.Random, ids: list[int]) -> int:
    """A customer id, the first ones far more often (a few people get most messages)."""
    return ids[int(len(ids) * rng.random() ** 2.2)]


def make_customers(n: int, now: dt.datetime) -> list[int]:
    from customers.models import Customer

    t = now.isoformat()
    copy(Customer, ["external_id", "email", "first_seen_at", "last_seen_at", "created_at", "updated_at"],
         (f"bench-{i}\tbench{i}@example.com\t{t}\t{t}\t{t}\t{t}" for i in range(n)), now)
    return ids_of(Customer)


def moment(rng: random.Random, now: dt.datetime, days: int) -> dt.datetime:
    return now - dt.timedelta(seconds=rng.random() * days * 86400)


def message_lines(n: int, rng: random.Random, customers: list[int], journeys: list[tuple[int, int]], now: dt.datetime):
    for i in range(n):
        queued = moment(rng, now, HISTORY_DAYS).isoformat()
        status = rng.choice(STATUSES)
        journey = rng.choice(journeys)[0] if rng.random() < 0.8 else "\\N"
        category = "marketing" if rng.random() < 0.85 else "transactional"
        sent = queued if status not in ("suppressed", "deferred", "failed") else "\\N"
        yield (f"{i:032x}\t{skewed(rng, customers)}\t{rng.choice(CHANNELS)}\t{category}\t{journey}\t{status}"
               f"\tbench-{i}\t{queued}\t{sent}\t{queued}")


def make_messages(n: int, rng, customers, journeys, now) -> None:
    from channels_app.models import Message

    with without_indexes(Message):
        copy(Message, ["public_id", "customer", "channel", "category", "journey_id", "status", "idempotency_key",
                       "queued_at", "sent_at", "updated_at"], message_lines(n, rng, customers, journeys, now), now)


def make_events(n: int, rng, customers, now) -> None:
    from customers.models import Event

    def lines():
        for _ in range(n):
            at = moment(rng, now, HISTORY_DAYS).isoformat()
            yield f"{skewed(rng, customers)}\t{rng.choice(EVENTS)}\t{{}}\t{at}\t{at}\tbench\t\\N"

    with without_indexes(Event):
        copy(Event, ["customer", "name", "properties", "occurred_at", "received_at", "source", "source_message_id"],
             lines(), now)


def make_verdicts(n: int, rng, customers, journeys, now) -> None:
    from orchestrator.governor.models import GovernorVerdict

    def lines():
        for _ in range(n):
            at = moment(rng, now, HISTORY_DAYS)
            rule, decision = rng.choice(RULES)
            until = (at + dt.timedelta(minutes=rng.randint(5, 4000))).isoformat() if decision == "defer" else "\\N"
            journey = rng.choice(journeys)[0] if rng.random() < 0.9 else "\\N"
            yield (f"{skewed(rng, customers)}\t{decision}\t{until}\t{rule}\t{rule}\t{rng.choice(CHANNELS)}\tmarketing"
                   f"\t{journey}\t{at.isoformat()}")

    with without_indexes(GovernorVerdict):
        copy(GovernorVerdict, ["customer", "decision", "until", "rule", "reason", "channel", "category", "journey_id",
                               "at"], lines(), now)


def make_opt_outs(n: int, rng, customers, now) -> None:
    from customers.models import ConsentChange

    def lines():
        for _ in range(n):
            at = moment(rng, now, HISTORY_DAYS).isoformat()
            yield f"{skewed(rng, customers)}\t{rng.choice(CHANNELS)}\tmarketing\t{rng.choice(OPT_OUT_STATUSES)}\tbench\t{at}"

    with without_indexes(ConsentChange):
        copy(ConsentChange, ["customer", "channel", "category", "status", "source", "changed_at"], lines(), now)


def make_enrollments(n: int, rng, customers, journeys, now) -> None:
    from orchestrator.engine.models import Enrollment

    def lines():
        for i in range(n):
            journey, version = journeys[i % len(journeys)]
            node, state = rng.choice([("wait", "active"), ("first", "active"), ("event", "waiting"), ("second", "active")])
            due = (now + dt.timedelta(seconds=rng.random() * 8 * 86400)).isoformat()
            entered = moment(rng, now, 14).isoformat()
            yield (f"{journey}\t{version}\t{rng.choice(customers)}\t{state}\t{node}\t{due}\tbench-{i}\t{entered}"
                   f"\t{'t' if rng.random() < 0.05 else 'f'}")

    with without_indexes(Enrollment):
        copy(Enrollment, ["journey", "version", "customer", "state", "current_node", "due_at", "trigger_key",
                          "entered_at", "holdout"], lines(), now)


def generate(sizes: dict[str, int], now: dt.datetime, log) -> None:
    from orchestrator.dashboards.models import CustomerDay

    rng = random.Random(20261203)
    empty_tables()
    journeys = make_journeys(now)
    customers = make_customers(sizes["customers"], now)
    log(f"customers: {len(customers)}")
    make_messages(sizes["messages"], rng, customers, journeys, now)
    log("messages written")
    make_events(sizes["events"], rng, customers, now)
    make_verdicts(sizes["verdicts"], rng, customers, journeys, now)
    make_opt_outs(sizes["opt_outs"], rng, customers, now)
    make_enrollments(sizes["enrollments"], rng, customers, journeys, now)
    log("events, verdicts, opt-outs and enrollments written")
    assert CustomerDay.objects.count() == 0


def analyse() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# --- Timing ------------------------------------------------------------------------------------


def _p95_ms(call, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return h.percentile(sorted(times), 95)


def time_panels(runs: int, now: dt.datetime) -> tuple[dict[str, float], dict[str, float]]:
    """p95 of each panel as the page loads it, and, for the panels shared through the cache
    (panels/shared.py), p95 of computing them afresh (what one request a minute pays)."""
    from orchestrator.dashboards.filters import parse_filters
    from orchestrator.dashboards.panels.registry import PANELS

    filters, errors = parse_filters({}, now.date())
    assert not errors
    served: dict[str, float] = {}
    computed: dict[str, float] = {}
    for key, module in PANELS.items():
        module.load(filters, now).figures()  # warm-up: plans and caches, not measured
        served[key] = _p95_ms(lambda m=module: m.load(filters, now).figures(), runs)
        if hasattr(module, "compute"):
            computed[key] = _p95_ms(lambda m=module: m.compute(filters, now).figures(), runs)
    return served, computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a twenty-fifth of the ledger; finishes within 60 s")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"timed loads per panel (default {RUNS})")
    parser.add_argument("--keep", action="store_true",
                        help="keep the ledger and rollups already there: time the panels only")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL

    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    url = h.database_url()
    if "bench" not in urlparse(url).path:
        sys.exit("DATABASE_URL: this benchmark empties the tables it fills; name a database containing 'bench'")
    h.ensure_database(url)
    env = h.server_env(url)
    env["DB_POOL_MAX_SIZE"] = "0"
    h.setup_django(env)
    from django.core.management import call_command
    from django.utils import timezone

    from orchestrator.dashboards.rollups import do_rebuild_rollups

    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {text}", file=sys.stderr, flush=True)

    call_command("migrate", interactive=False, verbosity=0)
    now = timezone.now()
    figures: dict[str, float] = {}
    if not args.keep:
        generate(sizes, now, log)
        figures["generate_s"] = time.monotonic() - started
        rebuild_started = time.monotonic()
        do_rebuild_rollups()
        figures["rollup_rebuild_s"] = time.monotonic() - rebuild_started
        log("rollups rebuilt")
        analyse()
    panels, computed = time_panels(args.runs, now)
    log("panels timed")
    for name, value in sizes.items():
        print(f"{name}: {value}")
    for name, value in figures.items():
        print(f"{name}: {value:.1f}")
    for key, value in panels.items():
        print(f"panel_p95_ms_{key}: {value:.1f}")
    for key, value in computed.items():
        print(f"panel_compute_p95_ms_{key}: {value:.1f}")
    print(f"panel_p95_ms_max: {max(panels.values()):.1f}")
    print(f"elapsed_s: {time.monotonic() - started:.1f}")


if __name__ == "__main__":
    main()
