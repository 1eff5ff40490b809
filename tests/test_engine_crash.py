"""Every send exactly once while engine workers are killed with SIGKILL at random moments.

Eight hundred customers enter a live journey (entry → SMS → email → push → update profile
→ exit: 4,800 logged steps, 2,400 messages). Three worker processes run the real engine on
the test database: claim a small batch (``SELECT … FOR UPDATE SKIP LOCKED``), advance it,
deliver its messages after commit, and sweep stranded messages. Every 50–300 ms one of
them, at random, is killed with SIGKILL (mid-transaction, mid-delivery, between the two:
wherever it happens to be) and a fresh one takes its place, until every enrollment has
exited. A last sweep then delivers what the dead left queued or half-sent.

Nothing may be lost and nothing sent twice: every enrollment completed with exactly one
step per node, exactly one message per (enrollment, send node), every message sent, its
ledger history queued → sending → sent exactly once, and exactly one provider record per
message. Resends after a crash reach the provider under the message's own idempotency
key, which the outbox absorbs (counted in ``attempts``).

Workers are forked from one prepared process, so a replacement starts in milliseconds
instead of the seconds Django's start-up takes. The kill schedule runs on the wall clock:
the workers are separate processes, so time-machine cannot move their time. The audience
is sized for the suite's time budget on a 2-core machine (about 15 s).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import close_old_connections, connection
from django.db.models import Count
from django.utils import timezone

from channels_app.delivery import recover_stranded
from channels_app.models import Message, MessageStatus, MessageTransition, OutboxMessage
from customers.enums import Category, Channel, ConsentStatus, PushPlatform
from customers.models import Consent, ContactPoint, Customer, Segment
from orchestrator.engine.entry import enrol_segment
from orchestrator.engine.models import Enrollment, EnrollmentState, EnrollmentStep, ExitReason
from orchestrator.engine.runner import run_due
from tests.journey_factories import linear_graph, make_live_journey, node
from tests.worker_processes import worker_database_url

pytestmark = [
    # Committed data: the workers are other processes on the test database.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: worker processes share the database and claim with SKIP LOCKED",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = 800
SEND_NODES = ("sms", "email", "push")
WORKERS = 3
BATCH_SIZE = 3
KILL_EVERY_SECONDS = (0.05, 0.3)
# Liveness, judged by progress rather than by the clock alone: the chaos fails when the
# enrollments stop draining for STALL_SECONDS (a lost claim, a stuck lock), or run past
# CHAOS_DEADLINE_SECONDS. Alone it drains in ~45 s; beside the rest of the suite on two
# cores it gets half the CPU, so a fixed 75 s made it fail on load, not on a fault.
STALL_SECONDS = 20
CHAOS_DEADLINE_SECONDS = 180
MIN_KILLS = 5
# Workers sweep stranded messages without the production waits. Queued: at once (the claim
# is a conditional UPDATE, so racing the worker that queued it costs nothing). Sending:
# after a second, so a live worker's delivery (milliseconds) is left alone and what gets
# resent is what a killed worker left half-sent; the outbox absorbs the resend.
SWEEP_QUEUED_AFTER = timedelta(0)
SWEEP_SENDING_AFTER = timedelta(seconds=1)


def crash_graph(segment_id: int) -> dict:
    # Content the channel content rules accept: the workers are separate processes, where
    # the test suite's switch (conftest) does not reach, and refused content is never sent.
    unsubscribe = '<p><a href="https://example.com/unsubscribe">Unsubscribe</a></p>'
    return linear_graph(
        node("entry", "entry", trigger="segment", segment_id=segment_id),
        node("sms", "send", channel="sms",
             content={"sms": {"body": "Hi {{ customer.first_name }}, 20% off today. Reply STOP to opt out"}}),
        node("email", "send", channel="email",
             content={"email": {"subject": "For you, {{ customer.first_name }}", "html": f"<p>20% off today</p>{unsubscribe}"}}),
        node("push", "send", channel="push", content={"push": {"title": "20% off", "body": "Today only"}}),
        node("mark", "update_profile", trait="offer_journey", value="done"),
        node("done", "exit"),
    )


def launch_audience(count: int) -> int:
    """Customers reachable on every channel, a segment of them, and a journey entering it."""
    customers = Customer.objects.bulk_create(
        Customer(
            external_id=f"crash-{n}", email=f"crash-{n}@example.com", phone=f"+1212555{n:04d}",
            traits={"first_name": f"Ada{n}", "cohort": "crash"},
        )
        for n in range(count)
    )
    ContactPoint.objects.bulk_create(
        ContactPoint(customer=c, channel=Channel.PUSH, platform=PushPlatform.IOS, address=f"fcm-crash-{c.pk}")
        for c in customers
    )
    Consent.objects.bulk_create(
        Consent(customer=c, channel=channel, category=Category.MARKETING, status=ConsentStatus.OPTED_IN, source="test")
        for c in customers for channel in (Channel.EMAIL, Channel.SMS, Channel.PUSH)
    )
    segment = Segment.objects.create(
        name="Crash cohort",
        definition={"match": "all", "conditions": [{"type": "trait", "trait": "cohort", "operator": "eq", "value": "crash"}]},
    )
    journey = make_live_journey(crash_graph(segment.pk), name="Crash journey")
    return enrol_segment(journey, now=timezone.now())


# --- The worker: what each forked process runs until it is killed --------------------------


def worker_name(pid: int) -> str:
    return f"chorus-crash-worker-{pid}"


def work(batch_size: int) -> None:
    """Run due steps, deliver after commit, sweep stranded messages; forever (in a child)."""
    zygote = os.getppid()
    os.environ["PGAPPNAME"] = worker_name(os.getpid())  # lets the test see what it interrupts
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # let go of the zygote's pipes
    os.dup2(devnull, 1)
    while os.getppid() == zygote:  # the zygote gone means the test went away
        try:
            stats = run_due(batch_size=batch_size, max_batches=1)
            recover_stranded(queued_older_than=SWEEP_QUEUED_AFTER, sending_older_than=SWEEP_SENDING_AFTER)
        except Exception:
            # Reported to the test through stderr; a real worker would take its next task.
            traceback.print_exc()
            close_old_connections()
            continue
        if not stats.enrollments:
            time.sleep(0.02)
    os._exit(0)


# Imports Django and the engine once, then forks a worker per line read from stdin and
# answers with its pid. On EOF (the test is gone) it kills its whole process group.
_ZYGOTE = """
import os, signal, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
import django
django.setup()
from tests.test_engine_crash import work
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps killed workers
print("ready", flush=True)
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        work(int(line))
    print(pid, flush=True)
os.killpg(0, signal.SIGKILL)
"""


class WorkerPool:
    """Worker processes on the test database, forked from a zygote in its own session."""

    def __init__(self, database_url: str, batch_size: int):
        self.batch_size = batch_size
        self.errors = tempfile.TemporaryFile(mode="w+")
        env = {
            **os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "orchestrator.settings",
            # A commit need not wait for the WAL flush: only a database server crash could
            # lose one, and this test kills workers, not the server. Commits stay atomic
            # and are visible to every other session at once, as with a flush.
            "PGOPTIONS": "-c synchronous_commit=off",
        }
        self.zygote = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE], cwd=ROOT, env=env, text=True, start_new_session=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
        )
        self.pids: list[int] = []
        self.kills = 0
        # What each victim's database session was doing when it was killed.
        self.killed_while: Counter[str] = Counter()
        assert self._answer() == "ready", self.worker_errors()

    def _answer(self) -> str:
        return self.zygote.stdout.readline().strip()

    def spawn(self) -> None:
        self.zygote.stdin.write(f"{self.batch_size}\n")
        self.zygote.stdin.flush()
        answer = self._answer()
        assert answer.isdigit(), f"zygote answered {answer!r}: {self.worker_errors()}"
        self.pids.append(int(answer))

    def kill_one(self, rng: random.Random) -> None:
        victim = self.pids.pop(rng.randrange(len(self.pids)))
        with connection.cursor() as cursor:
            cursor.execute("SELECT state FROM pg_stat_activity WHERE application_name = %s", [worker_name(victim)])
            row = cursor.fetchone()
        os.kill(victim, signal.SIGKILL)
        self.kills += 1
        self.killed_while[row[0] if row else "not connected"] += 1

    def worker_errors(self) -> str:
        self.errors.seek(0)
        return self.errors.read()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        os.killpg(self.zygote.pid, signal.SIGKILL)
        self.zygote.wait(timeout=10)


def not_exited() -> int:
    return Enrollment.objects.exclude(state=EnrollmentState.EXITED).count()


def run_under_fire(pool: WorkerPool, rng: random.Random) -> None:
    """Kill a random worker every 50–300 ms and start another, until everyone has exited."""
    for _ in range(WORKERS):
        pool.spawn()
    started = last_progress = time.monotonic()
    remaining = not_exited()
    while remaining:
        now = time.monotonic()
        assert now - last_progress < STALL_SECONDS and now - started < CHAOS_DEADLINE_SECONDS, (
            f"{remaining} enrollments still in the journey after {now - started:.0f}s "
            f"({now - last_progress:.0f}s without progress) and {pool.kills} kills; "
            f"worker errors:\n{pool.worker_errors()}"
        )
        time.sleep(rng.uniform(*KILL_EVERY_SECONDS))
        pool.kill_one(rng)
        pool.spawn()
        if (now_remaining := not_exited()) < remaining:
            remaining, last_progress = now_remaining, time.monotonic()


def final_sweep() -> None:
    """What a surviving worker does next: run anything due, deliver what the dead left."""
    run_due(batch_size=BATCH_SIZE)
    recover_stranded(queued_older_than=timedelta(0), sending_older_than=timedelta(0))


def test_workers_killed_at_random_lose_no_message_and_send_none_twice():
    assert launch_audience(CUSTOMERS) == CUSTOMERS

    with WorkerPool(worker_database_url(), BATCH_SIZE) as pool:
        run_under_fire(pool, random.Random())
    final_sweep()

    # Kills happened, some inside a batch's transaction, and no worker ever failed
    # (other than by being killed).
    assert pool.kills >= MIN_KILLS
    assert pool.killed_while["idle in transaction"] >= 1, pool.killed_while
    assert pool.worker_errors() == ""
    # Every enrollment walked the whole journey, each node logged exactly once.
    assert Counter(Enrollment.objects.values_list("state", "exit_reason")) == {
        (EnrollmentState.EXITED, ExitReason.COMPLETED): CUSTOMERS
    }
    per_node = Counter(EnrollmentStep.objects.values_list("node_id", "outcome"))
    assert per_node == {
        ("entry", "entered"): CUSTOMERS, ("sms", "sent"): CUSTOMERS, ("email", "sent"): CUSTOMERS,
        ("push", "sent"): CUSTOMERS, ("mark", "updated"): CUSTOMERS, ("done", "exited"): CUSTOMERS,
    }
    assert Customer.objects.filter(traits__offer_journey="done").count() == CUSTOMERS
    assert not EnrollmentStep.objects.values("enrollment_id", "node_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    # Exactly one message per (enrollment, send node): none lost, none duplicated.
    per_send = Counter(
        Message.objects.values("enrollment_id", "node_id").annotate(n=Count("id")).values_list("n", flat=True)
    )
    assert per_send == {1: CUSTOMERS * len(SEND_NODES)}
    assert Counter(Message.objects.values_list("node_id", flat=True)) == {n: CUSTOMERS for n in SEND_NODES}
    # Every message sent (none left queued, sending or unknown), one provider record each.
    assert Counter(Message.objects.values_list("status", flat=True)) == {MessageStatus.SENT: CUSTOMERS * len(SEND_NODES)}
    messages = CUSTOMERS * len(SEND_NODES)
    assert Counter(MessageTransition.objects.values_list("from_status", "to_status")) == {
        ("", MessageStatus.QUEUED): messages,
        (MessageStatus.QUEUED, MessageStatus.SENDING): messages,
        (MessageStatus.SENDING, MessageStatus.SENT): messages,
    }
    assert set(OutboxMessage.objects.values_list("message_id", flat=True)) == set(Message.objects.values_list("pk", flat=True))
    assert OutboxMessage.objects.count() == messages

    resent = OutboxMessage.objects.filter(attempts__gt=1).count()
    print(f"\nengine crash: {pool.kills} workers killed ({dict(pool.killed_while)}); {resent} provider records with attempts > 1 (resends absorbed)")
