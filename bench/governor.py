#!/usr/bin/env python
"""What the frequency governor costs the journey engine, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chorus_bench .venv/bin/python bench/governor.py [--quick]

One database server (DATABASE_URL, default the URL above; created and migrated if needed).
A warm-up, then three drains of the same size, one after the other, each on a ``qcluster``
with 2 workers (Q_WORKERS=2) started after its policy was written, the engine's poller
``tick`` and one ``drain`` enqueued at once, as bench/engine.py does:

0. *warm-up*: 500 of the uniform customers through the uniform drain, ungoverned, on the
   cluster that then runs drain 1; not measured (whichever drain ran first was
   consistently the slowest).
1. *uniform, ungoverned*: N customers (20,000; 2,000 with ``--quick``) each enter one
   journey entry → email → exit (marketing), all due at once. No caps, no spacing, no quiet
   hours: the governor has nothing to enforce, so it neither locks nor reads history.
2. *uniform, governed*: the same, under the shipped default policy, written from the data
   migration that ships it (orchestrator/migrations/0007_default_frequency_policy.py:
   3 per 24 h and 8 per 7 days across channels, 1 SMS per 24 h, 30 min spacing, SMS and
   push quiet hours). Every message, verdict and enrollment of the benchmark's customers is
   deleted before each drain, so nobody starts near a cap and both drains send all N.
3. *hot, governed*: N sends to 50 customers (N/50 journeys × 50 customers), under the same
   rules with every cap raised to 1,000 and no spacing: the governor must lock each
   customer and count a history growing to N/50 messages, but holds nothing back. With
   2 workers, batches share customers and wait on each other's row locks.

``sends/s`` = messages queued ÷ drain window; the window runs from the first claim (the
earliest EnrollmentStep.at) to the last step or ``sent`` (whichever is later), as in
bench/engine.py, so delivery after commit is inside it. Printed, each as ``name: value``:
the raw ``*_sends_per_s`` figures, ``governed_over_ungoverned`` (2 ÷ 1, aim ≥ 0.85),
``hot_over_uniform`` (3 ÷ 2, aim ≥ 0.5) and ``cap_violations``: after each governed
drain, the benchmark's counted messages are recounted from the ledger by a checker of its
own (not the governor's code) against every enabled rule of the policy then in force,
over every rolling window (those ending at each counted message). Aim: 0.

Before each drain the tables it loads are vacuumed and analysed (fresh statistics, no dead
index entries left by the last drain's deletes), the same for all three. A drain that stops
making progress for 30 s (every send deferred, say) fails loudly, naming what held the
sends back. The shipped default policy is written back at the end.
Customers are kept between runs (created once, set-based).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import uuid
from bisect import bisect_right
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/chorus_bench"
PREFIX = "Governor bench"
HOT_CUSTOMERS = 50
HOT_CAP = 1000
WARM_UP_SENDS = 500
STALL_S = 30
DRAIN_TIMEOUT_S = 900
LOG = h.ROOT / "bench" / "out" / "governor-qcluster.log"
# Counted by caps: everything but what never went (written out here: the checker does not
# borrow the ledger's or the governor's reading).
NOT_COUNTED = ("suppressed", "deferred", "failed")

EMAIL = {
    "subject": "Your picks are back in stock",
    "html": '<p>Hi {{ customer.first_name }}, the things you liked are back.</p>'
    '<p><a href="https://example.com/unsubscribe">Unsubscribe</a></p>',
}


# --- Policy -------------------------------------------------------------------------------


def shipped_policy():
    """The default policy's rows, as the data migration that ships it writes them."""
    return importlib.import_module("orchestrator.migrations.0007_default_frequency_policy")


def write_policy(rules: list[dict], settings: dict, quiet_hours: list) -> None:
    from django.db import transaction

    from orchestrator.governor.loading import forget_policy
    from orchestrator.governor.models import FrequencyRule, GovernorSettings, QuietHoursRule

    with transaction.atomic():
        FrequencyRule.objects.all().delete()
        QuietHoursRule.objects.all().delete()
        GovernorSettings.objects.update_or_create(pk=GovernorSettings.SINGLETON_PK, defaults=settings)
        for rule in rules:
            FrequencyRule.objects.create(**rule)
        for channel, start, end in quiet_hours:
            QuietHoursRule.objects.create(channel=channel, start=start, end=end)
    forget_policy()  # the workers start after this, and read it fresh


def policy_off() -> None:
    write_policy([], {**shipped_policy().SETTINGS, "min_spacing_minutes": 0}, [])


def policy_default() -> None:
    shipped = shipped_policy()
    write_policy(shipped.RULES, shipped.SETTINGS, shipped.QUIET_HOURS)


def policy_hot() -> None:
    """The shipped rules with room for every hot send, and no spacing."""
    shipped = shipped_policy()
    rules = [{**rule, "max_count": HOT_CAP} for rule in shipped.RULES]
    write_policy(rules, {**shipped.SETTINGS, "min_spacing_minutes": 0}, shipped.QUIET_HOURS)


# --- Customers and journeys ----------------------------------------------------------------


def ensure_customers(kind: str, count: int) -> list[int]:
    """Customers ``govbench-<kind>-1..count`` (trait governor_bench=<kind>), reachable by
    email and opted in to marketing email; made set-based once. Returns the first ``count``."""
    from customers.models import Customer

    if not Customer.objects.filter(external_id=f"govbench-{kind}-{count}").exists():
        h.sql(
            "INSERT INTO customers_customer (external_id, email, phone, timezone, locale, traits,"
            " first_seen_at, last_seen_at, created_at, updated_at)"
            " SELECT 'govbench-' || %s || '-' || g, 'govbench-' || %s || '-' || g || '@example.com', '', '', '',"
            " jsonb_build_object('governor_bench', %s, 'first_name', 'Ada'), now(), now(), now(), now()"
            " FROM generate_series(1, %s) AS g ON CONFLICT (external_id) DO NOTHING",
            [kind, kind, kind, count],
        )
        h.sql("ANALYZE customers_customer")
    ids = list(Customer.objects.filter(traits__governor_bench=kind).order_by("pk").values_list("pk", flat=True)[:count])
    # Marketing email goes only to those who opted in where the policy says so: say so for all.
    h.sql(
        "INSERT INTO customers_consent (customer_id, channel, category, status, source, changed_at)"
        " SELECT id, 'email', 'marketing', 'opted_in', 'governor bench', now() FROM unnest(%s::bigint[]) AS id"
        " ON CONFLICT (customer_id, channel, category) DO UPDATE SET status = 'opted_in'",
        [ids],
    )
    return ids


def live_journeys(count: int, label: str, on_cap: str = "defer") -> list[int]:
    """``count`` live journeys entry → email → exit (marketing, priority 5), in three INSERTs."""
    from django.utils import timezone

    from journeys.graph import validate_graph
    from journeys.models import Journey, JourneyStatus, JourneyVersion

    graph = {
        "nodes": [
            {"id": "entry", "kind": "entry", "config": {"trigger": "api"}, "position": {"x": 0, "y": 0}},
            {"id": "email", "kind": "send", "config": {"channel": "email", "on_cap": on_cap, "content": {"email": EMAIL}},
             "position": {"x": 0, "y": 0}},
            {"id": "done", "kind": "exit", "config": {}, "position": {"x": 0, "y": 0}},
        ],
        "edges": [{"from": "entry", "port": "out", "to": "email"}, {"from": "email", "port": "out", "to": "done"}],
    }
    problems = validate_graph(graph)
    if problems:
        sys.exit(f"the benchmark's journey is invalid: {problems}")
    journeys = Journey.objects.bulk_create(
        Journey(name=f"{PREFIX} {label} #{n}", status=JourneyStatus.LIVE, category="marketing", priority=5, reentry="always")
        for n in range(count)
    )
    now = timezone.now()
    versions = JourneyVersion.objects.bulk_create(JourneyVersion(journey=j, number=1, graph=graph, published_at=now) for j in journeys)
    for journey, version in zip(journeys, versions, strict=True):
        journey.live_version = version
    Journey.objects.bulk_update(journeys, ["live_version"])
    return [j.pk for j in journeys]


def enter(journey_ids: list[int], customer_ids: list[int]) -> int:
    """Every customer into every journey, at its entry node, all due now (one INSERT … SELECT)."""
    return h.sql(
        "INSERT INTO orchestrator_enrollment (journey_id, version_id, customer_id, state, current_node, phase,"
        " due_at, waiting_for, context, holdout, trigger_key, step_seq, entered_at, exit_reason,"
        " touch_sequence, updated_at)"
        " SELECT j.id, j.live_version_id, c.id, 'active', 'entry', 'arrive', now(), '', '{}'::jsonb, false,"
        " 'bench', 0, now(), '', '[]'::jsonb, now()"
        " FROM journeys_journey j CROSS JOIN unnest(%s::bigint[]) AS c(id) WHERE j.id = ANY(%s)",
        [customer_ids, journey_ids],
    )


def clear(customer_ids: list[int]) -> None:
    """Every message, verdict, step and enrollment of these customers (whatever journey
    wrote them), what sends taught about them, and the benchmark's journeys."""
    from django.db import connection, transaction

    from journeys.models import Journey

    with transaction.atomic():
        messages = "SELECT id FROM channels_app_message WHERE customer_id = ANY(%s)"
        h.sql(f"DELETE FROM channels_app_outboxmessage WHERE message_id IN ({messages})", [customer_ids])
        h.sql(f"DELETE FROM channels_app_messagetransition WHERE message_id IN ({messages})", [customer_ids])
        h.sql("DELETE FROM channels_app_message WHERE customer_id = ANY(%s)", [customer_ids])
        h.sql("DELETE FROM orchestrator_governorverdict WHERE customer_id = ANY(%s)", [customer_ids])
        enrollments = "SELECT id FROM orchestrator_enrollment WHERE customer_id = ANY(%s)"
        h.sql(f"DELETE FROM orchestrator_enrollmentstep WHERE enrollment_id IN ({enrollments})", [customer_ids])
        h.sql("DELETE FROM orchestrator_enrollment WHERE customer_id = ANY(%s)", [customer_ids])
        # What sends taught about the customers (channel affinity, active hours): each drain
        # starts from none, or the first would pay for creating rows the others only update.
        for table in OPTIONAL_CUSTOMER_TABLES & set(connection.introspection.table_names()):
            h.sql(f"DELETE FROM {table} WHERE customer_id = ANY(%s)", [customer_ids])
        journeys = Journey.objects.filter(name__startswith=PREFIX)
        h.sql("DELETE FROM orchestrator_enrollmentstep WHERE journey_id = ANY(%s)", [list(journeys.values_list("pk", flat=True))])
        h.sql("DELETE FROM orchestrator_enrollment WHERE journey_id = ANY(%s)", [list(journeys.values_list("pk", flat=True))])
        journeys.update(live_version=None)
        journeys.delete()


def clear_queue() -> None:
    """Queue rows and leases a stopped (or killed) cluster left: with no cluster running."""
    h.sql("DELETE FROM orchestrator_schedulerlease")
    h.sql("DELETE FROM django_q_ormq")


@contextmanager
def cluster(env: dict[str, str]):
    """A qcluster with 2 workers, started after the policy was written (its workers read it
    fresh); yields its log. The work is done when it stops: idle pollers are not waited for."""
    clear_queue()
    with h.qcluster(env, LOG, grace=0.5) as (_, log):
        yield log
    clear_queue()


class Canary:
    """Proof that the workers judged under the policy written: one more customer, whose
    tightest email cap in force is already full (that many emails an hour ago), enters a
    journey that skips on caps. Governed, its send must be suppressed with a verdict naming
    a cap; ungoverned, it goes. Its send is not one of the N measured."""

    def __init__(self, customer_id: int):
        self.customer_id = customer_id

    def enter(self, name: str) -> list[int]:
        from django.utils import timezone

        from channels_app.models import Message

        before = timezone.now() - timedelta(hours=1)
        Message.objects.bulk_create(
            Message(
                customer_id=self.customer_id, channel="email", category="marketing", status="sent",
                idempotency_key=f"govbench-canary:{uuid.uuid4().hex}", queued_at=before, sent_at=before,
            )
            for _ in range(min((c.max_count for c in caps_in_force() if c.channels is None or "email" in c.channels), default=1))
        )
        journeys = live_journeys(1, f"{name} canary", on_cap="skip")
        enter(journeys, [self.customer_id])
        return journeys

    def check(self, name: str, *, governed: bool) -> None:
        from orchestrator.governor.models import GovernorVerdict

        verdicts = list(GovernorVerdict.objects.filter(customer_id=self.customer_id).values_list("decision", "rule"))
        capped = [rule for decision, rule in verdicts if decision == "suppress" and rule]
        if governed and not capped:
            sys.exit(f"{name}: the canary was not held back ({verdicts}): the workers did not apply the policy")
        if not governed and verdicts:
            sys.exit(f"{name}: the canary was held back ({verdicts}) with the governor off")


OPTIONAL_CUSTOMER_TABLES = {"customers_channelaffinity", "customers_activityprofile"}


# --- One drain ----------------------------------------------------------------------------


def drain(log, name: str, journey_ids: list[int], customer_ids: list[int], expected: int, canary: list[int]) -> float:
    """Run the entered enrollments (and the canary's) to the end on the running cluster;
    return sends/s of the measured journeys."""
    from django.db.models import Max, Min
    from django_q.tasks import async_task

    from channels_app.models import Message
    from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep

    inside = Enrollment.objects.filter(journey_id__in=journey_ids + canary).exclude(state=EnrollmentState.EXITED)
    steps = EnrollmentStep.objects.filter(journey_id__in=journey_ids)
    messages = Message.objects.filter(journey_id__in=journey_ids)
    # A poller already running (the last drain's) holds the lease and takes the work within
    # its poll interval; the drain task is a second worker on it, as at a cluster's start.
    async_task("orchestrator.engine.tasks.tick", task_name=f"govbench-tick-{uuid.uuid4().hex[:8]}")
    async_task("orchestrator.engine.tasks.drain", task_name=f"govbench-drain-{uuid.uuid4().hex[:8]}")
    try:
        h.wait_for_progress(inside.count, stall_after=STALL_S, timeout=DRAIN_TIMEOUT_S)
        unsettled = lambda: messages.filter(status__in=("queued", "sending")).count()  # noqa: E731
        h.wait_for_progress(unsettled, stall_after=STALL_S, timeout=120)
    except h.Stalled as stalled:
        sys.exit(f"{name}: the drain stalled ({stalled}).\n{held_back(customer_ids)}\nqcluster said:\n{h.log_tail(log, LOG)}")
    counted = messages.exclude(status__in=NOT_COUNTED)
    sent = counted.count()
    if sent != expected:
        sys.exit(f"{name}: {sent} messages counted, expected {expected}.\n{held_back(customer_ids)}")
    window = steps.aggregate(first=Min("at"), last=Max("at"))
    last_sent = messages.aggregate(last=Max("sent_at"))["last"] or window["last"]
    seconds = (max(window["last"], last_sent) - window["first"]).total_seconds()
    print(f"# {name}: {sent} sends in {seconds:.2f}s", flush=True)
    return sent / seconds


def held_back(customer_ids: list[int]) -> str:
    """What the governor said of the benchmark's customers, by rule: why a drain is stuck."""
    from django.db.models import Count

    from orchestrator.governor.models import GovernorVerdict

    rows = (
        GovernorVerdict.objects.filter(customer_id__in=customer_ids)
        .values("decision", "rule").annotate(n=Count("id")).order_by("-n")[:10]
    )
    found = [f"  {row['n']} {row['decision']} by {row['rule']!r}" for row in rows]
    return "Governor verdicts for the benchmark's customers:\n" + ("\n".join(found) or "  none")


# --- The independent cap checker ------------------------------------------------------------


@dataclass(frozen=True)
class Cap:
    name: str
    max_count: int
    window: timedelta
    channels: frozenset[str] | None  # None: every channel (scope all)


def caps_in_force() -> list[Cap]:
    from orchestrator.governor.models import FrequencyRule

    caps = []
    for rule in FrequencyRule.objects.filter(enabled=True):
        if rule.scope not in ("all", "channel", "channels"):
            sys.exit(f"cap checker: rule {rule.name!r} has scope {rule.scope!r}, which this benchmark does not use")
        channels = None if rule.scope == "all" else frozenset(rule.channels)
        caps.append(Cap(rule.name, rule.max_count, timedelta(minutes=rule.window_minutes), channels))
    return caps


def cap_violations(customer_ids: list[int], caps: list[Cap]) -> int:
    """Rolling windows over a cap, per customer and rule, among counted marketing messages.
    A window's count only grows when a message enters it, so the windows ending at each
    message are all that need looking at (one per message)."""
    from channels_app.models import Message

    sent: dict[int, list[tuple[str, object]]] = defaultdict(list)
    rows = (
        Message.objects.filter(customer_id__in=customer_ids, category="marketing")
        .exclude(status__in=NOT_COUNTED).values_list("customer_id", "channel", "queued_at")
    )
    for customer_id, channel, at in rows:
        sent[customer_id].append((channel, at))
    violations = 0
    for messages in sent.values():
        for cap in caps:
            times = sorted(at for channel, at in messages if cap.channels is None or channel in cap.channels)
            for end in times:
                inside = bisect_right(times, end) - bisect_right(times, end - cap.window)  # (end - window, end]
                violations += inside > cap.max_count
    return violations


# --- Main -----------------------------------------------------------------------------------


# Tables the benchmark bulk-loads and bulk-deletes: vacuumed and analysed before each drain,
# so every drain starts from fresh statistics and no dead index entries. Without it the
# claim's plan can follow stale statistics (400 new live journeys counted as 2) into a
# nested loop over a due-time index full of dead rows: seconds per claim.
LOADED_TABLES = (
    "journeys_journey", "journeys_journeyversion", "orchestrator_enrollment", "orchestrator_enrollmentstep",
    "channels_app_message", "channels_app_messagetransition", "channels_app_outboxmessage", "orchestrator_governorverdict",
)


def run_workload(log, name: str, journeys: int, customers: list[int], all_bench: list[int], canary: Canary, *, governed: bool) -> float:
    clear(all_bench)
    journey_ids = live_journeys(journeys, name)
    expected = enter(journey_ids, customers)
    canary_journeys = canary.enter(name)
    for table in LOADED_TABLES:
        h.sql(f"VACUUM ANALYZE {table}")
    sends_per_s = drain(log, name, journey_ids, customers, expected, canary_journeys)
    canary.check(name, governed=governed)
    return sends_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 sends per drain; finishes within 60 s")
    parser.add_argument("--sends", type=int, default=None, help="sends per drain (default 20,000; 2,000 with --quick)")
    args = parser.parse_args()
    sends = args.sends or (2_000 if args.quick else 20_000)
    if sends % HOT_CUSTOMERS:
        sys.exit(f"--sends: a multiple of {HOT_CUSTOMERS}, so the hot customers share them evenly")

    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    url = h.database_url()
    h.ensure_database(url)
    env = h.server_env(url)
    h.setup_django(env)
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)  # in this process: one Django start-up less

    started = time.monotonic()
    uniform = ensure_customers("uniform", sends)
    hot = ensure_customers("hot", HOT_CUSTOMERS)
    canary = Canary(ensure_customers("canary", 1)[0])
    everyone = uniform + hot + [canary.customer_id]
    figures: dict[str, float | int] = {}
    violations = 0
    try:
        policy_off()
        with cluster(env) as log:
            # Discarded: the first drain after setting up ran measurably slower than the
            # next ones (caches, statistics, the cluster's first tasks), whichever went first.
            run_workload(log, "warm-up", 1, uniform[:WARM_UP_SENDS], everyone, canary, governed=False)
            figures["uniform_ungoverned_sends_per_s"] = run_workload(log, "uniform ungoverned", 1, uniform, everyone, canary, governed=False)
        policy_default()
        with cluster(env) as log:
            figures["uniform_governed_sends_per_s"] = run_workload(log, "uniform governed", 1, uniform, everyone, canary, governed=True)
        violations += cap_violations(uniform, caps_in_force())
        policy_hot()
        with cluster(env) as log:
            figures["hot_governed_sends_per_s"] = run_workload(log, "hot governed", sends // HOT_CUSTOMERS, hot, everyone, canary, governed=True)
        violations += cap_violations(hot, caps_in_force())
    finally:
        clear(everyone)
        policy_default()

    figures["governed_over_ungoverned"] = figures["uniform_governed_sends_per_s"] / figures["uniform_ungoverned_sends_per_s"]
    figures["hot_over_uniform"] = figures["hot_governed_sends_per_s"] / figures["uniform_governed_sends_per_s"]
    figures["cap_violations"] = violations
    print(f"sends_per_drain: {sends}")
    print(f"hot_customers: {HOT_CUSTOMERS}")
    print(f"elapsed_s: {time.monotonic() - started:.1f}")
    for name, value in figures.items():
        print(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}")


if __name__ == "__main__":
    main()
