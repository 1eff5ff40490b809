#!/usr/bin/env python
"""Journey engine throughput, lateness and segment entry on PostgreSQL, next to pgbench.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chorus_bench .venv/bin/python bench/engine.py [--quick]

One run on one database server (DATABASE_URL, default the URL above; created and
migrated if needed), in this order, nothing else of ours running during each phase:

1. ``pgbench_tps``: ``pgbench -i -s 10`` into a database of its own on the same server
   (``<name>_pgbench``), then ``pgbench -c 2 -j 2 -T 10`` (the default tpcb-like script).
   Our figures are divided by it, so they can be compared across machines.
2. The drain. N customers (default 20,000) enter a three-step journey,
   entry → send (email) → exit, through segment entry: all due at once. A ``qcluster``
   with 2 workers is started (``python manage.py qcluster``, Q_WORKERS=2) and the
   engine's poller ``tick`` and one ``drain`` are enqueued at once (in production the
   poller is started by a django-q2 schedule every minute).

   A *step* is one logged node execution: an EnrollmentStep row (entry, send, exit: three
   per customer). A *message* is a Message of the journey that reached ``sent`` (the
   outbox provider records it). The window runs from the first claim (the earliest step
   of the journey) to the last step or ``sent``, whichever is later:
   ``steps_per_s`` = steps / window, ``messages_per_s`` = sent messages / window, and
   ``steps_per_pgbench_tps`` = steps_per_s / pgbench_tps (aim ≥ 1.0, stretch 3).
3. ``lateness_p95_s``: while the drain runs, this process inserts probes, 2 every 0.2 s:
   enrollments of a second journey (entry → delay → exit) already asleep in the delay,
   due 0.5 s after they are inserted, i.e. timers falling due under the load. A probe's
   lateness is the time the step after its delay ran (the exit's EnrollmentStep.at: the
   moment its batch was claimed) minus its due time; the figure is the 95th percentile
   over every probe inserted between the first claim and the last customer's exit (aim
   ≤ 2 s). Claims take steps that fell due in the last 10 s first, then the backlog oldest
   first, so a timer falling due under a launch backlog waits for about one batch, not for
   the backlog. Probes send nothing, so they add
   little load of their own. A step's ``at`` is when its batch was claimed, not when the
   batch committed, so this process also notes when it first sees each probe exited
   (polled every 0.2 s): ``lateness_visible_p95_s``.
4. ``enrol_100k_s``: with the cluster stopped, the time ``enrol_segment`` alone takes to
   enter a 100,000-customer segment into a live journey: one INSERT … SELECT (aim < 10 s).

``--quick``: 500 customers and a 5 s pgbench on its existing tables; within 60 s.
Customers are kept between runs (created once, set-based; the drain's opted in to
marketing email); the benchmark's journeys, and every enrollment, step, message and
governor verdict of its customers (whatever journey wrote them: old messages would fill
their frequency caps) are deleted before and after. The drain runs under the frequency
policy the database holds (the shipped default when migrated); each customer gets one
email, so no cap binds. A drain, delivery or probe wait that makes no progress for 30 s
fails with the governor's verdicts and the qcluster's log instead of hanging. Ends by
printing each figure as ``name: value``.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/chorus_bench"
PREFIX = "Engine bench"
ENROL_CUSTOMERS = 100_000
PGBENCH_SCALE = 10
PROBES_PER_ROUND, PROBE_EVERY_S, PROBE_DUE_AFTER_S = 2, 0.2, 0.5
DRAIN_TIMEOUT_S = 900
STALL_S = 30  # a drain, delivery or probe wait that makes no progress this long fails
LOG = h.ROOT / "bench" / "out" / "engine-qcluster.log"


# --- Setting up ------------------------------------------------------------------------------


setup_django, sql = h.setup_django, h.sql


def ensure_customers(kind: str, count: int, *, email: bool) -> None:
    """Customers ``engbench-<kind>-1..count`` with trait engine_bench=<kind>, made set-based
    once; with ``email``, opted in to marketing email (checked every run: a database from
    before marketing needed an opt-in has customers without one)."""
    from customers.models import Customer

    if not Customer.objects.filter(external_id=f"engbench-{kind}-{count}").exists():
        address = f"'engbench-{kind}-' || g || '@example.com'" if email else "''"
        sql(
            "INSERT INTO customers_customer (external_id, email, phone, timezone, locale, traits,"
            " first_seen_at, last_seen_at, created_at, updated_at)"
            f" SELECT 'engbench-{kind}-' || g, {address}, '', '', '',"
            " jsonb_build_object('engine_bench', %s, 'first_name', 'Ada'), now(), now(), now(), now()"
            " FROM generate_series(1, %s) AS g ON CONFLICT (external_id) DO NOTHING",
            [kind, count],
        )
        sql("ANALYZE customers_customer")
    if email:
        sql(
            "INSERT INTO customers_consent (customer_id, channel, category, status, source, changed_at)"
            " SELECT id, 'email', 'marketing', 'opted_in', 'engine bench', now() FROM customers_customer"
            " WHERE traits->>'engine_bench' = %s"
            " ON CONFLICT (customer_id, channel, category) DO UPDATE SET status = 'opted_in'",
            [kind],
        )


def delete_bench_data() -> None:
    """Every journey, enrollment, step, message, verdict and segment an earlier run left
    behind: all of the benchmark customers' messages, verdicts and enrollments, whatever
    journey wrote them. Messages left by another journey (or a journey deleted without its
    messages) would count toward the customers' frequency caps: past the cap every send
    is deferred and the drain never ends."""
    from django.db import connection, transaction

    from customers.models import Segment
    from journeys.models import Journey

    ids = list(Journey.objects.filter(name__startswith=PREFIX).values_list("pk", flat=True))
    customers = "SELECT id FROM customers_customer WHERE external_id LIKE 'engbench-%%'"
    with transaction.atomic():
        messages = f"SELECT id FROM channels_app_message WHERE customer_id IN ({customers}) OR journey_id = ANY(%s)"
        sql(f"DELETE FROM channels_app_outboxmessage WHERE message_id IN ({messages})", [ids])
        sql(f"DELETE FROM channels_app_messagetransition WHERE message_id IN ({messages})", [ids])
        sql(f"DELETE FROM channels_app_message WHERE id IN ({messages})", [ids])
        sql(f"DELETE FROM orchestrator_governorverdict WHERE customer_id IN ({customers})")
        enrollments = f"SELECT id FROM orchestrator_enrollment WHERE customer_id IN ({customers}) OR journey_id = ANY(%s)"
        sql(f"DELETE FROM orchestrator_enrollmentstep WHERE enrollment_id IN ({enrollments}) OR journey_id = ANY(%s)", [ids, ids])
        sql(f"DELETE FROM orchestrator_enrollment WHERE id IN ({enrollments})", [ids])
        # What sends taught about the customers (channel affinity, active hours), where kept.
        for table in {"customers_channelaffinity", "customers_activityprofile"} & set(connection.introspection.table_names()):
            sql(f"DELETE FROM {table} WHERE customer_id IN ({customers})")
        if ids:
            # The bulky rows went set-based above; the journeys go through the ORM, which
            # follows whatever else refers to them.
            Journey.objects.filter(pk__in=ids).update(live_version=None)
            Journey.objects.filter(pk__in=ids).delete()
        Segment.objects.filter(name__startswith=PREFIX).delete()
        # A poller or helper killed by the last run's shutdown left its lease and queue rows.
        sql("DELETE FROM orchestrator_schedulerlease")
        sql("DELETE FROM django_q_ormq")


def segment(name: str, kind: str):
    from customers.models import Segment

    condition = {"type": "trait", "trait": "engine_bench", "operator": "eq", "value": kind}
    return Segment.objects.create(name=name, definition={"match": "all", "conditions": [condition]})


def live_journey(name: str, nodes: list[dict], **settings):
    """Created and published through the authoring services, as the API does."""
    from journeys.services import JourneyInput, do_create_journey, do_publish_journey

    edges = [{"from": a["id"], "port": "out", "to": b["id"]} for a, b in zip(nodes, nodes[1:], strict=False)]
    journey = do_create_journey(JourneyInput(name=name, graph={"nodes": nodes, "edges": edges}, **settings), None)
    do_publish_journey(journey, None)
    journey.refresh_from_db()
    return journey


def node(node_id: str, kind: str, **config) -> dict:
    return {"id": node_id, "kind": kind, "config": config, "position": {"x": 0, "y": 0}}


EMAIL = node("email", "send", channel="email", content={"email": {
    "subject": "{{ customer.first_name }}, your picks are back in stock",
    "html": "<p>Hi {{ customer.first_name }}, the things you liked are back.</p>"
            '<p><a href="https://example.com/unsubscribe">Unsubscribe</a></p>',  # the content rules want one
}})


# --- pgbench ---------------------------------------------------------------------------------


def pgbench_binary() -> str:
    found = shutil.which("pgbench") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))[::-1]), None)
    if not found:
        sys.exit("pgbench: not found on PATH or in /usr/lib/postgresql/*/bin")
    return found


def run_pgbench(url: str, *, seconds: int, init: bool) -> float:
    parsed = urlparse(url)
    database = parsed.path.lstrip("/") + "_pgbench"
    h.ensure_database(parsed._replace(path=f"/{database}").geturl())
    conn = ["-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres"]
    env = {**os.environ, **({"PGPASSWORD": parsed.password} if parsed.password else {})}
    binary = pgbench_binary()

    def pgbench(*args: str) -> str:
        result = subprocess.run([binary, *conn, *args, database], env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            sys.exit(f"pgbench {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return result.stdout

    if init or not _pgbench_ready(database):
        pgbench("-i", "-q", "-s", str(PGBENCH_SCALE))
    match = re.search(r"tps = ([\d.]+)", pgbench("-c", "2", "-j", "2", "-T", str(seconds)))
    if not match:
        sys.exit("pgbench: no 'tps = …' in its output")
    return float(match.group(1))


def _pgbench_ready(database: str) -> bool:
    import psycopg
    from django.db import connection

    settings = connection.settings_dict
    try:
        with psycopg.connect(
            host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432, user=settings["USER"],
            password=settings["PASSWORD"] or None, dbname=database,
        ) as conn:
            return conn.execute("SELECT count(*) FROM pgbench_branches").fetchone()[0] == PGBENCH_SCALE
    except psycopg.Error:
        return False


# --- The drain under a qcluster ----------------------------------------------------------------


def qcluster(env: dict[str, str]):
    return h.qcluster(env, LOG)


def qcluster_log(log) -> str:
    return h.log_tail(log, LOG)


class Probes:
    """Timers falling due under the load: enrollments asleep in a delay, due shortly."""

    def __init__(self, journey, customer_ids: list[int]):
        self.journey, self.customer_ids = journey, customer_ids
        self.due: dict[int, object] = {}
        self.seen_done: dict[int, object] = {}  # when this process first saw each one exited

    def insert(self) -> None:
        from django.utils import timezone

        from orchestrator.engine.models import Enrollment, EnrollmentState, Phase

        now = timezone.now()
        due = now + timedelta(seconds=PROBE_DUE_AFTER_S)
        start = len(self.due)
        rows = Enrollment.objects.bulk_create(
            Enrollment(
                journey_id=self.journey.pk, version_id=self.journey.live_version_id,
                customer_id=self.customer_ids[(start + i) % len(self.customer_ids)],
                state=EnrollmentState.ACTIVE, current_node="wait", phase=Phase.RESUME, due_at=due,
                trigger_key=f"probe-{start + i}", entered_at=now, context={},
            )
            for i in range(PROBES_PER_ROUND)
        )
        self.due.update({row.pk: due for row in rows})

    def round(self) -> None:
        """What the drain loop does at each poll: note the probes done, insert the next two."""
        self.look()
        self.insert()

    def look(self) -> None:
        from django.utils import timezone

        from orchestrator.engine.models import Enrollment, EnrollmentState

        pending = [pk for pk in self.due if pk not in self.seen_done]
        now = timezone.now()
        done = Enrollment.objects.filter(pk__in=pending, state=EnrollmentState.EXITED).values_list("pk", flat=True)
        self.seen_done.update({pk: now for pk in done})

    def visible_lateness(self) -> list[float]:
        return sorted((seen - self.due[pk]).total_seconds() for pk, seen in self.seen_done.items())

    def lateness(self) -> list[float]:
        from orchestrator.engine.models import EnrollmentStep

        ran = EnrollmentStep.objects.filter(journey_id=self.journey.pk, node_id="done").values_list("enrollment_id", "at")
        return sorted((at - self.due[pk]).total_seconds() for pk, at in ran)


def wait_until(condition, *, timeout: float, what: str, log, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"{what}: not done within {timeout:.0f}s; qcluster said:\n{qcluster_log(log)}")
        time.sleep(every)


def held_back() -> str:
    """What the governor said of the benchmark's customers, by rule: why a drain is stuck."""
    from django.db.models import Count

    from orchestrator.governor.models import GovernorVerdict

    rows = (
        GovernorVerdict.objects.filter(customer__external_id__startswith="engbench-")
        .values("decision", "rule").annotate(n=Count("id")).order_by("-n")[:10]
    )
    found = [f"  {row['n']} {row['decision']} by {row['rule']!r}" for row in rows]
    return "Governor verdicts for the benchmark's customers:\n" + ("\n".join(found) or "  none")


def drain(env: dict[str, str], customers: int, run: str) -> dict[str, float]:
    from django.db.models import Max, Min
    from django.utils import timezone
    from django_q.models import Failure
    from django_q.tasks import async_task

    from channels_app.models import Message, MessageStatus
    from customers.models import Customer
    from orchestrator.engine.entry import enrol_segment
    from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep

    ensure_customers("drain", customers, email=True)
    audience = segment(f"{PREFIX} drain {run}", "drain")
    main = live_journey(
        f"{PREFIX} drain {run}", [node("entry", "entry", trigger="segment", segment_id=audience.pk), EMAIL, node("done", "exit")],
        entry_limit=customers,
    )
    probe = live_journey(
        f"{PREFIX} probes {run}",
        [node("entry", "entry", trigger="api"), node("wait", "delay", mode="duration", amount=1, unit="seconds"), node("done", "exit")],
        reentry="always",
    )
    if enrol_segment(main, now=timezone.now()) != customers:
        sys.exit("drain: the segment did not enter every customer")
    probes = Probes(probe, list(Customer.objects.filter(traits__engine_bench="drain").values_list("pk", flat=True)[:1000]))
    inside = Enrollment.objects.filter(journey=main).exclude(state=EnrollmentState.EXITED)
    steps = EnrollmentStep.objects.filter(journey_id=main.pk)
    messages = Message.objects.filter(journey_id=main.pk)
    unsettled = (MessageStatus.QUEUED, MessageStatus.SENDING)

    started = timezone.now()
    with qcluster(env) as (_, log):
        async_task("orchestrator.engine.tasks.tick", task_name=f"bench-tick-{run}")
        async_task("orchestrator.engine.tasks.drain", task_name=f"bench-drain-{run}")
        wait_until(steps.exists, timeout=60, what="first claim", log=log, every=0.05)
        probe_inside = Enrollment.objects.filter(journey=probe).exclude(state=EnrollmentState.EXITED)
        what = "the drain"
        try:
            h.wait_for_progress(inside.count, stall_after=STALL_S, timeout=DRAIN_TIMEOUT_S, every=PROBE_EVERY_S, on_poll=probes.round)
            what = "deliveries"
            h.wait_for_progress(messages.filter(status__in=unsettled).count, stall_after=STALL_S, timeout=120)
            what = "probes"
            h.wait_for_progress(lambda: probes.look() or probe_inside.count(), stall_after=STALL_S, timeout=180)
        except h.Stalled as stalled:
            sys.exit(f"{what}: stalled ({stalled}).\n{held_back()}\nqcluster said:\n{qcluster_log(log)}")

    window = steps.aggregate(first=Min("at"), last=Max("at"))
    last_sent = messages.aggregate(last=Max("sent_at"))["last"] or window["last"]
    seconds = (max(window["last"], last_sent) - window["first"]).total_seconds()
    sent = messages.filter(status=MessageStatus.SENT).count()
    lateness, visible = probes.lateness(), probes.visible_lateness()
    failed = Failure.objects.filter(func__startswith="orchestrator.engine.tasks.", started__gte=started)
    return {
        "drain_s": seconds,
        "engine_tasks_failed": failed.count(),  # e.g. killed at Q_TIMEOUT
        "steps": steps.count(),
        "messages_sent": sent,
        "messages_not_sent": messages.count() - sent,
        "lateness_probes": len(lateness),
        "lateness_p50_s": h.percentile(lateness, 50),
        "lateness_max_s": lateness[-1] if lateness else float("nan"),
        "lateness_visible_p95_s": h.percentile(visible, 95),
        "steps_per_s": steps.count() / seconds,
        "messages_per_s": sent / seconds,
        "lateness_p95_s": h.percentile(lateness, 95),
    }


# --- Segment entry at launch ------------------------------------------------------------------


def enrol_100k(run: str) -> float:
    from django.utils import timezone

    from journeys.services import JourneyAction, do_set_journey_status
    from orchestrator.engine.entry import enrol_segment

    ensure_customers("enrol", ENROL_CUSTOMERS, email=False)
    audience = segment(f"{PREFIX} launch {run}", "enrol")
    journey = live_journey(
        f"{PREFIX} launch {run}", [node("entry", "entry", trigger="segment", segment_id=audience.pk), EMAIL, node("done", "exit")]
    )
    started = time.perf_counter()
    entered = enrol_segment(journey, now=timezone.now())
    elapsed = time.perf_counter() - started
    do_set_journey_status(journey, JourneyAction.PAUSE, None)  # nobody runs them
    if entered != ENROL_CUSTOMERS:
        sys.exit(f"enrol_100k: {entered} entered, expected {ENROL_CUSTOMERS}")
    return elapsed


# --- Main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller drain; finishes within 60 s")
    parser.add_argument("--customers", type=int, default=None, help="customers in the drain (default 20,000; 500 with --quick)")
    parser.add_argument("--pgbench-seconds", type=int, default=None, help="pgbench duration (default 10; 5 with --quick)")
    args = parser.parse_args()
    customers = args.customers or (500 if args.quick else 20_000)

    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    url = h.database_url()
    h.ensure_database(url)
    env = h.server_env(url)
    h.manage(env, "migrate", "--noinput")
    setup_django(env)
    run = uuid.uuid4().hex[:8]

    delete_bench_data()
    try:
        tps = run_pgbench(url, seconds=args.pgbench_seconds or (5 if args.quick else 10), init=not args.quick)
        figures = drain(env, customers, run)
        figures["enrol_100k_s"] = enrol_100k(run)
    finally:
        delete_bench_data()

    figures["pgbench_tps"] = tps
    figures["steps_per_pgbench_tps"] = figures["steps_per_s"] / tps
    print(f"customers: {customers}")
    order = [
        "drain_s", "engine_tasks_failed", "steps", "messages_sent", "messages_not_sent", "lateness_probes", "lateness_p50_s", "lateness_max_s",
        "lateness_visible_p95_s",
        "steps_per_s", "messages_per_s", "pgbench_tps", "steps_per_pgbench_tps", "enrol_100k_s", "lateness_p95_s",
    ]
    for name in order:
        value = figures[name]
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")


if __name__ == "__main__":
    main()
