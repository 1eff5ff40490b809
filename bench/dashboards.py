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
  inside the journeys (due over the next 8 days, some waiting);
- for measurement, 60,000 settled enrollments (exited over the last 60 days, a quarter
  converted with a value, 5 % holdout) and their own 1 to 4 sent messages each, on top
  of the 5,000,000. ``--keep`` adds them to a ledger made before they existed.

``--quick`` (within 60 s): 20,000 customers, 200,000 messages, 40,000 events and the rest
scaled alike. Then the rollups are rebuilt from the ledger once
(``rebuild_dashboard_rollups``, what a bulk import is followed by; the listener keeps them
exact afterwards), the tables analysed, and each panel loaded ``--runs`` times (after one
warm-up) with the dashboard's default filters (the last 30 days, every journey, channel
and category): the panel's queries and its figures, as the page builds them.

Printed, one ``name: value`` per line at the end: the sizes, ``generate_s``,
``rollup_rebuild_s``, ``panel_p95_ms_<panel>`` per panel as the page loads it (nothing is
cached: every load computes afresh) and ``panel_p95_ms_max`` (aim: under 300 ms at full
scale); then ``panel_p95_ms_measure_<query>`` for the measurement page's queries on the
journey with most conversions (KPIs, touch sequences, attribution with the default
7-day lookback) and attribution across every journey. ``panel_p95_ms_max`` covers the
cadence dashboard's panels only.
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
        "opt_outs": 12_000, "enrollments": 400_000, "settled_enrollments": 60_000}
QUICK = {"customers": 20_000, "messages": 200_000, "events": 40_000, "verdicts": 12_000,
         "opt_outs": 500, "enrollments": 16_000, "settled_enrollments": 2_400}
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
MEASURE_RUNS = 5  # the measurement page is read less often than the dashboard: fewer runs


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
    from orchestrator.dashboards.models import (
        CustomerDay,
        MixCount,
        PressureBucket,
    )

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


def journey_versions() -> list[tuple[int, int]]:
    """(journey, live version) of the bench's journeys, as make_journeys returned them."""
    from journeys.models import Journey

    return list(Journey.objects.filter(name__startswith="Bench journey").order_by("pk").values_list("pk", "live_version_id"))


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



SETTLED_KEY = "bench-settled-"


def has_settled_messages() -> bool:
    from channels_app.models import Message

    return Message.objects.filter(idempotency_key__startswith=SETTLED_KEY).exists()


def make_settled_enrollments(n: int, rng, customers, journeys, now) -> None:
    """Exited enrollments for measurement (a quarter converted, 5 % holdout), then each
    one's own 1 to 4 sent messages between its entry and its exit: what touch sequences
    group and attribution credits."""
    from orchestrator.engine.models import Enrollment

    def lines():
        for i in range(n):
            journey, version = journeys[i % len(journeys)]
            entered = moment(rng, now, 60)
            exited = entered + dt.timedelta(seconds=rng.random() * 5 * 86400)
            converted = rng.random() < 0.25
            reason, at, value = ("converted", exited.isoformat(), f"{rng.randint(5, 300)}.00") if converted else (
                "completed", "\\N", "\\N")
            yield (f"{journey}\t{version}\t{skewed(rng, customers)}\texited\tdone\t{SETTLED_KEY}{i}"
                   f"\t{entered.isoformat()}\t{exited.isoformat()}\t{reason}\t{at}\t{value}"
                   f"\t{'t' if rng.random() < 0.05 else 'f'}")

    if not Enrollment.objects.filter(trigger_key__startswith=SETTLED_KEY).exists():
        copy(Enrollment, ["journey", "version", "customer", "state", "current_node", "trigger_key", "entered_at",
                          "exited_at", "exit_reason", "converted_at", "conversion_value", "holdout"], lines(), now)
    make_settled_messages(rng, now)


def make_settled_messages(rng, now) -> None:
    from channels_app.models import Message
    from orchestrator.engine.models import Enrollment

    # Read whole before the COPY starts: a connection in COPY runs no other query (and the
    # generator below only runs inside the COPY).
    rows = list(Enrollment.objects.filter(trigger_key__startswith=SETTLED_KEY, holdout=False).order_by("pk")
                .values_list("pk", "customer_id", "journey_id", "entered_at", "exited_at"))

    def lines():
        for pk, customer, journey, entered, exited in rows:
            for k in range(rng.randint(1, 4)):
                sent = (entered + (exited - entered) * rng.random()).isoformat()
                yield (f"{10**12 + pk * 8 + k:032x}\t{customer}\t{rng.choice(CHANNELS)}\tmarketing\t{journey}\t{pk}"
                       f"\tdelivered\t{SETTLED_KEY}{pk}-{k}\t{sent}\t{sent}\t{sent}")

    copy(Message, ["public_id", "customer", "channel", "category", "journey_id", "enrollment_id", "status",
                   "idempotency_key", "queued_at", "sent_at", "updated_at"], lines(), now)


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
    make_settled_enrollments(sizes["settled_enrollments"], rng, customers, journeys, now)
    log("events, verdicts, opt-outs and enrollments written")
    assert CustomerDay.objects.count() == 0


def analyse() -> None:
    """Statistics, and the visibility map a table at rest has from autovacuum: without it
    the covering indexes' index-only scans fall back to the heap after a bulk load."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


# --- Timing ------------------------------------------------------------------------------------


def _p95_ms(call, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return h.percentile(sorted(times), 95)


def time_panels(runs: int, now: dt.datetime) -> dict[str, float]:
    """p95 of each panel as the page loads it: its queries and its figures, afresh."""
    from orchestrator.dashboards.filters import parse_filters
    from orchestrator.dashboards.panels.registry import PANELS

    filters, errors = parse_filters({}, now.date())
    assert not errors
    timed: dict[str, float] = {}
    for key, module in PANELS.items():
        module.load(filters, now).figures()  # warm-up: plans and buffers, not measured
        timed[key] = _p95_ms(lambda m=module: m.load(filters, now).figures(), runs)
    return timed


def time_measurement(runs: int) -> dict[str, float]:
    """p95 of the measurement page's queries, with its default filters (every period,
    7-day lookback and half-life), on the journey with most conversions."""
    from django.db.models import Count

    from orchestrator.engine.models import Enrollment
    from orchestrator.measurement.kpis import journey_kpis
    from orchestrator.measurement.ledger import Period, journey_attribution
    from orchestrator.measurement.sequences import touch_sequences

    top = (Enrollment.objects.filter(converted_at__isnull=False).values("journey_id").annotate(n=Count("*"))
           .order_by("-n").first())
    if top is None:
        return {}
    journey, week = top["journey_id"], dt.timedelta(days=7)
    queries = {
        "kpis": lambda: journey_kpis(journey),
        "sequences": lambda: touch_sequences(journey),
        "attribution": lambda: journey_attribution([journey], Period(), week, week),
        "attribution_all": lambda: journey_attribution(None, Period(), week, week),
    }
    timed: dict[str, float] = {}
    for key, query in queries.items():
        query()
        timed[key] = _p95_ms(query, runs)
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a twenty-fifth of the ledger; finishes within 60 s")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"timed loads per panel (default {RUNS})")
    parser.add_argument("--measure-runs", type=int, default=MEASURE_RUNS,
                        help=f"timed runs per measurement query (default {MEASURE_RUNS})")
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

    from customers.models import Customer
    from orchestrator.dashboards.rollups import do_rebuild_rollups

    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {text}", file=sys.stderr, flush=True)

    call_command("migrate", interactive=False, verbosity=0)
    now = timezone.now()
    figures: dict[str, float] = {}
    added = False
    if not args.keep:
        generate(sizes, now, log)
        figures["generate_s"] = time.monotonic() - started
    elif not has_settled_messages():
        # A ledger kept from before the measurement rows: add them, then rebuild (they
        # come with messages the rollups must count).
        make_settled_enrollments(sizes["settled_enrollments"], random.Random(20261204), ids_of(Customer),
                                 journey_versions(), now)
        log("settled enrollments added to the kept ledger")
        added = True
    if not args.keep or added:
        rebuild_started = time.monotonic()
        do_rebuild_rollups()
        figures["rollup_rebuild_s"] = time.monotonic() - rebuild_started
        log("rollups rebuilt")
    analyse()
    panels = time_panels(args.runs, now)
    log("panels timed")
    measured = time_measurement(args.measure_runs)
    log("measurement timed")
    for name, value in sizes.items():
        print(f"{name}: {value}")
    for name, value in figures.items():
        print(f"{name}: {value:.1f}")
    for key, value in panels.items():
        print(f"panel_p95_ms_{key}: {value:.1f}")
    print(f"panel_p95_ms_max: {max(panels.values()):.1f}")
    for key, value in measured.items():
        print(f"panel_p95_ms_measure_{key}: {value:.1f}")
    print(f"elapsed_s: {time.monotonic() - started:.1f}")


if __name__ == "__main__":
    main()
