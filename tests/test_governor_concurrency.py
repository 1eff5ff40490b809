"""Caps hold exactly when many journeys fire at one customer at the same moment, from
several processes at once.

Each trial (a seeded ``random.Random``; the seed is in every failure message, and
``CHORUS_GOVERNOR_SEED=<seed>`` replays that workload first) builds a fresh customer,
opted in and reachable on email, SMS and push, and 50 live journeys entry → send → exit:
each send on a random channel, marketing, with a random ``on_cap`` (defer, skip, exit) and a
random priority 1–10. The policy has one rule, at most 3 marketing messages per 24 h
across all channels (no spacing, no quiet hours). The customer enters all 50, due now, and
3–4 worker processes start together (a barrier) and run the real engine (``run_due``, a
random small batch each, so batches interleave) until nothing is due now. Deferred sends
wait for tomorrow: time is not moved.

Then, read back from the database: exactly 3 counted messages, 0 cap violations (an
independent checker below recounts every rolling window), a verdict or a suppressed message
for every other send, consistent with its node's ``on_cap``, and no enrollment lost: each
has exited or waits at its send node, due after the last worker stopped looking (tomorrow
for a cap; seconds on for a send that yielded to a higher-priority one).

A second test runs several customers through shared journeys under two overlapping caps
(1 marketing SMS per 24 h and 3 per 24 h across channels): whichever is more restrictive
binds, under concurrency too. A third checks that the 3 sends that went out are those of
the 3 highest-priority journeys (priority arbitration across workers).

Workers are forked per trial from one prepared process (a zygote that imported Django
once), so a trial's workers start in milliseconds, each with its own connection and its
own freshly loaded policy. The seed fixes the workload, not the interleaving: that is the
operating system's, and is what the trials sample.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from channels_app.models import Message, MessageStatus
from customers.enums import Category, Channel, ConsentStatus, PushPlatform
from customers.models import Consent, ContactPoint, Customer
from journeys.graph import validate_graph
from journeys.models import Journey, JourneyStatus, JourneyVersion
from orchestrator.engine.entry import new_enrollment
from orchestrator.engine.models import (
    Enrollment,
    EnrollmentState,
    EnrollmentStep,
    ExitReason,
    Phase,
)
from orchestrator.engine.steps import content_refusal
from orchestrator.governor.loading import forget_policy
from orchestrator.governor.models import (
    FrequencyRule,
    GovernorSettings,
    GovernorVerdict,
    QuietHoursRule,
)
from orchestrator.governor.policy import YIELD_RULE
from tests.journey_factories import linear_graph, node
from tests.worker_processes import worker_database_url

pytestmark = [
    # Committed data: the workers are other processes on the test database.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: worker processes share the database and lock customers' rows",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
TRIALS = 20
OVERLAP_TRIALS = 5
PRIORITY_TRIALS = 5
JOURNEYS = 50
CAP = 3
DAY = dt.timedelta(hours=24)
CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.PUSH)
ON_CAP = ("defer", "skip", "exit")
WORKERS = (3, 4)
BATCH_SIZES = (1, 6)
WORKER_TIMEOUT_SECONDS = 30

ALL_CHANNELS_RULE = "Marketing, all channels, 24 h"
SMS_RULE = "Marketing SMS, 24 h"

# What went out, or will, or may have: the statuses a cap must count. Written out here
# rather than taken from the ledger, so the checker does not share the governor's reading.
NOT_COUNTED = frozenset({MessageStatus.SUPPRESSED, MessageStatus.DEFERRED, MessageStatus.FAILED})

# Content every channel's content rules accept (and no Liquid to fail rendering), so only
# the governor holds sends back.
CONTENT = {
    Channel.EMAIL: {
        "subject": "Back in stock",
        "html": '<p>The things you liked are back.</p><p><a href="https://example.com/unsubscribe">Unsubscribe</a></p>',
    },
    Channel.SMS: {"body": "Back in stock: 20% off today. Reply STOP to opt out"},
    Channel.PUSH: {"title": "Back in stock", "body": "20% off today"},
}


# --- The independent checker --------------------------------------------------------------


@dataclass(frozen=True)
class Cap:
    """At most ``max_count`` marketing messages in any rolling ``window``; ``channels``
    None counts every channel."""

    name: str
    max_count: int
    window: dt.timedelta
    channels: frozenset[str] | None = None


def cap_violations(sent: list[tuple[str, dt.datetime]], caps: list[Cap]) -> list[str]:
    """Every rolling window holding more than a cap allows, over one customer's counted
    marketing messages (channel, queued_at). A window's count only grows when a message
    enters it, so the windows ending at each message's moment are all the windows there are."""
    found = []
    for cap in caps:
        times = sorted(at for channel, at in sent if cap.channels is None or channel in cap.channels)
        for end in times:
            inside = sum(1 for at in times if end - cap.window < at <= end)
            if inside > cap.max_count:
                found.append(f"{cap.name}: {inside} > {cap.max_count} in the window ending {end.isoformat()}")
    return found


def _winners_are_top_priorities(priorities: dict[int, int], winners: set[int]) -> bool:
    """Whether the sends that went out (enrollment ids) belong to the highest-priority
    journeys: no loser outranks any winner (ties broken any way)."""
    losers = [priority for pk, priority in priorities.items() if pk not in winners]
    return not winners or not losers or min(priorities[pk] for pk in winners) >= max(losers)


# --- Worker processes ---------------------------------------------------------------------


def _due_now(now: dt.datetime) -> bool:
    """Anything still due, including what another worker holds (its committed state still
    says due): the run is over only when every claim has committed."""
    return Enrollment.objects.filter(due_at__lte=now, journey__status=JourneyStatus.LIVE).exists()


def work(batch_size: int, barrier, stopped, slot: int) -> int:
    """One worker (a forked child): connect, load the policy, wait for the others, then run
    due steps until nothing is due now, and note in ``stopped[slot]`` when it last looked
    (a POSIX timestamp). Errors go to stderr, which the test reads."""
    import time
    import traceback

    from orchestrator.engine.runner import run_due
    from orchestrator.governor.loading import load_policy

    connection.ensure_connection()
    load_policy()
    barrier.wait(timeout=20)
    deadline = time.monotonic() + WORKER_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            stats = run_due(batch_size=batch_size, max_batches=1)
        except DatabaseError:
            # A deadlock victim or a serialisation failure: a bug here, reported (the
            # batch rolled back, so going on is what a real worker would do).
            traceback.print_exc()
            close_old_connections()
            continue
        if stats.enrollments:
            continue
        looked = timezone.now()
        if not _due_now(looked):
            stopped[slot] = looked.timestamp()
            return 0
        time.sleep(0.01)  # another worker holds what is due (on 2 cores, spinning slows it)
    print(f"worker {os.getpid()}: still something due after {WORKER_TIMEOUT_SECONDS}s", file=sys.stderr)
    return 2


# Imports Django and the engine once; for each line read (a JSON list of batch sizes, one
# per worker) forks that many workers behind one barrier, waits for them all and answers
# with their exit codes and when each last looked for due work. No database connection is
# open in the zygote when it forks.
_ZYGOTE = """
import json, multiprocessing, os, sys, traceback
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
import django
django.setup()
from tests.test_governor_concurrency import work
print("ready", flush=True)
for line in sys.stdin:
    sizes = json.loads(line)
    context = multiprocessing.get_context("fork")
    barrier, stopped = context.Barrier(len(sizes)), context.Array("d", len(sizes))
    pids = []
    for slot, size in enumerate(sizes):
        pid = os.fork()
        if pid == 0:
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            code = 1
            try:
                code = work(size, barrier, stopped, slot)
            except BaseException:
                traceback.print_exc()
            sys.stderr.flush()
            os._exit(code)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    print(json.dumps({"codes": codes, "stopped": list(stopped)}), flush=True)
"""


class Workers:
    """Runs a trial's worker processes on the test database, forked from one zygote."""

    def __init__(self, database_url: str):
        self.errors = tempfile.TemporaryFile(mode="w+")
        env = {
            **os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "orchestrator.settings",
            # Commits need not wait for the WAL flush: only a server crash could lose one,
            # and they stay atomic and visible to every other session at once.
            "PGOPTIONS": "-c synchronous_commit=off",
        }
        self.zygote = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE], cwd=ROOT, env=env, text=True, start_new_session=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
        )
        assert self.zygote.stdout.readline().strip() == "ready", self.read_errors()

    def run(self, batch_sizes: list[int]) -> dt.datetime:
        """Start one worker per batch size at the same instant; when all are done, return
        when the last of them last looked: nothing was due then, and none ran after it."""
        mark = self.errors.seek(0, os.SEEK_END)
        self.zygote.stdin.write(json.dumps(batch_sizes) + "\n")
        self.zygote.stdin.flush()
        answer = self.zygote.stdout.readline().strip()
        assert answer, f"the zygote died: {self.read_errors()}"
        answer = json.loads(answer)
        codes = answer["codes"]
        errors = self.read_errors(mark)
        assert codes == [0] * len(batch_sizes) and errors == "", f"workers ended {codes}:\n{errors}"
        return dt.datetime.fromtimestamp(max(answer["stopped"]), tz=dt.UTC)

    def read_errors(self, since: int = 0) -> str:
        self.errors.flush()
        self.errors.seek(since)
        return self.errors.read()

    def close(self) -> None:
        os.killpg(self.zygote.pid, signal.SIGKILL)
        self.zygote.wait(timeout=10)


@pytest.fixture(scope="module")
def workers(django_db_setup):
    """One zygote for the module: it only needs the test database's name."""
    pool = Workers(worker_database_url())
    yield pool
    pool.close()


# --- Policy, people, journeys --------------------------------------------------------------


@pytest.fixture(autouse=True)
def _content_passes_the_content_rules():
    """A send refused for its content would look like a held-back send with no cap to blame."""
    for channel, content in CONTENT.items():
        assert content_refusal(channel, Category.MARKETING, content) == "", channel


def set_policy(*caps: Cap) -> None:
    """Exactly these caps; no spacing, no quiet hours. Workers load it fresh."""
    FrequencyRule.objects.all().delete()
    QuietHoursRule.objects.all().delete()
    GovernorSettings.objects.update_or_create(
        pk=GovernorSettings.SINGLETON_PK,
        defaults={"min_spacing_minutes": 0, "fallback_timezone": "UTC", "defer_horizon_hours": 72, "in_app_counts": False},
    )
    for cap in caps:
        channels = sorted(cap.channels or ())
        FrequencyRule.objects.create(
            name=cap.name, scope="channel" if channels else "all", channels=channels,
            max_count=cap.max_count, window_minutes=int(cap.window.total_seconds() // 60),
        )
    forget_policy()


def reachable_customer(name: str) -> Customer:
    """Opted in to marketing on email, SMS and push, with an address on each."""
    number = random.Random(name).randrange(10**7)
    customer = Customer.objects.create(
        external_id=name, email=f"{name}@example.com", phone=f"+1212{number:07d}", traits={"first_name": "Ada"}
    )
    ContactPoint.objects.create(customer=customer, channel=Channel.PUSH, platform=PushPlatform.IOS, address=f"fcm-{name}")
    Consent.objects.bulk_create(
        Consent(customer=customer, channel=channel, category=Category.MARKETING, status=ConsentStatus.OPTED_IN, source="test")
        for channel in CHANNELS
    )
    return customer


@dataclass(frozen=True)
class Spec:
    channel: str
    on_cap: str
    priority: int


def random_specs(rng: random.Random, count: int = JOURNEYS) -> list[Spec]:
    return [Spec(rng.choice(CHANNELS), rng.choice(ON_CAP), rng.randint(1, 10)) for _ in range(count)]


def send_graph(spec: Spec) -> dict:
    return linear_graph(
        node("entry", "entry", trigger="api"),
        node("send", "send", channel=spec.channel, on_cap=spec.on_cap, content={spec.channel: CONTENT[spec.channel]}),
        node("done", "exit"),
    )


def live_journeys(specs: list[Spec], label: str) -> list[Journey]:
    """make_live_journey for many at once (three INSERTs, not three per journey)."""
    graphs = [send_graph(spec) for spec in specs]
    for channel, on_cap in {(spec.channel, spec.on_cap) for spec in specs}:
        problems = validate_graph(send_graph(Spec(channel, on_cap, 5)))
        assert problems == [], problems
    journeys = Journey.objects.bulk_create(
        Journey(name=f"{label} #{n}", status=JourneyStatus.LIVE, priority=spec.priority, category=Category.MARKETING, reentry="always")
        for n, spec in enumerate(specs)
    )
    now = timezone.now()
    versions = JourneyVersion.objects.bulk_create(
        JourneyVersion(journey=journey, number=1, graph=graph, published_at=now) for journey, graph in zip(journeys, graphs, strict=True)
    )
    for journey, version in zip(journeys, versions, strict=True):
        journey.live_version = version
        journey.event_names = []
    Journey.objects.bulk_update(journeys, ["live_version", "event_names"])
    return journeys


def enrol_all(journeys: list[Journey], customer: Customer, now: dt.datetime) -> list[Enrollment]:
    """Into every journey at its entry node, due now: the rows the engine's entry path
    writes (``new_enrollment``), in one INSERT, so the workers see all of them or none."""
    rows = [Enrollment(**new_enrollment(j, customer.pk, f"burst:{now.isoformat()}", {}, now)) for j in journeys]
    created = Enrollment.objects.bulk_create(rows)
    return list(Enrollment.objects.filter(pk__in=[e.pk for e in created]).select_related("journey", "version"))


# --- Reading a trial back -------------------------------------------------------------------


@dataclass
class Ledger:
    """One customer's messages and verdicts, by enrollment."""

    counted: dict[int, list[Message]]
    suppressed: dict[int, list[Message]]
    verdicts: dict[int, list[GovernorVerdict]]

    @classmethod
    def read(cls, customer: Customer) -> Ledger:
        counted, suppressed, verdicts = defaultdict(list), defaultdict(list), defaultdict(list)
        for message in Message.objects.filter(customer=customer).order_by("queued_at", "id"):
            (suppressed if message.status == MessageStatus.SUPPRESSED else counted)[message.enrollment_id].append(message)
            assert message.status not in NOT_COUNTED - {MessageStatus.SUPPRESSED}, (message.pk, message.status)
        for verdict in GovernorVerdict.objects.filter(customer=customer).order_by("at", "id"):
            verdicts[verdict.enrollment_id].append(verdict)
        return cls(counted, suppressed, verdicts)

    def describe(self) -> str:
        """The counted messages and every verdict, for a failure message."""
        lines = [
            f"message {m.pk} enrollment {m.enrollment_id} journey {m.journey_id} {m.channel} {m.status} at {m.queued_at.isoformat()}"
            for messages in self.counted.values() for m in messages
        ]
        lines += [
            f"verdict {v.decision} enrollment {v.enrollment_id} {v.channel} at {v.at.isoformat()}: {v.rule}: {v.reason}"
            for verdicts in self.verdicts.values() for v in verdicts
        ]
        return "\n".join(lines)

    def sent(self) -> list[tuple[str, dt.datetime]]:
        return [(m.channel, m.queued_at) for messages in self.counted.values() for m in messages]


def check_customer(
    customer: Customer, enrollments: list[Enrollment], caps: list[Cap], *, expected_sent: int, stopped: dt.datetime
) -> set[int]:
    """Everything the trial must show for one customer, the workers having stopped at
    ``stopped``; returns the enrollments that sent."""
    ledger = Ledger.read(customer)
    assert cap_violations(ledger.sent(), caps) == [], ledger.describe()
    assert len(ledger.sent()) == expected_sent, f"{len(ledger.sent())} counted messages, expected {expected_sent}"
    winners = set()
    for enrollment in Enrollment.objects.filter(pk__in=[e.pk for e in enrollments]).select_related("journey", "version"):
        spec = send_config(enrollment)
        where = _Where(enrollment, spec)
        counted = ledger.counted.get(enrollment.pk, [])
        assert len(counted) <= 1, f"{where}: sent {len(counted)} times"
        if counted:
            winners.add(enrollment.pk)
            assert counted[0].channel == spec["channel"], where
            assert (enrollment.state, enrollment.exit_reason) == (EnrollmentState.EXITED, ExitReason.COMPLETED), where
            continue
        check_held_back(enrollment, spec, ledger, stopped, where)
    return winners


@dataclass(frozen=True)
class _Where:
    """An enrollment as a failure message names it: its send node and the steps it took
    (read only when a message is shown)."""

    enrollment: Enrollment
    spec: dict

    def __str__(self) -> str:
        return f"enrollment {self.enrollment.pk} ({self.spec}; steps {steps_of(self.enrollment)})"


def check_held_back(enrollment: Enrollment, spec: dict, ledger: Ledger, stopped: dt.datetime, where: _Where) -> None:
    """A send that did not go: a verdict or suppressed message, and its node's on_cap done."""
    verdicts = ledger.verdicts.get(enrollment.pk, [])
    suppressed = ledger.suppressed.get(enrollment.pk, [])
    assert verdicts or suppressed, f"{where}: held back with no verdict and no suppressed message"
    assert {v.decision for v in verdicts} <= {GovernorVerdict.Decision.DEFER, GovernorVerdict.Decision.SUPPRESS}, where
    if enrollment.state == EnrollmentState.EXITED:
        # Skipped (went on to the exit node) or left the journey on the cap.
        expected = ExitReason.CAPPED if spec["on_cap"] == "exit" else ExitReason.COMPLETED
        assert spec["on_cap"] in ("skip", "exit") and enrollment.exit_reason == expected, f"{where}: exited {enrollment.exit_reason}"
        assert len(suppressed) == 1 and verdicts[-1].decision == GovernorVerdict.Decision.SUPPRESS, where
        assert verdicts[-1].message_id == suppressed[0].pk, where
        return
    # Not lost: waiting at its send node, due after the workers stopped (tomorrow, or a few
    # seconds on after yielding to a higher-priority send).
    assert (enrollment.state, enrollment.current_node, enrollment.phase) == (
        EnrollmentState.ACTIVE, "send", Phase.ARRIVE
    ), f"{where}: {enrollment.state} at {enrollment.current_node}/{enrollment.phase}"
    assert enrollment.due_at is not None and enrollment.due_at > stopped, f"{where}: due {enrollment.due_at}, workers stopped {stopped}"
    assert verdicts and verdicts[-1].decision == GovernorVerdict.Decision.DEFER, where
    assert verdicts[-1].until == enrollment.due_at, where
    assert not suppressed, where


def steps_of(enrollment: Enrollment) -> list[tuple[str, str, str]]:
    return list(EnrollmentStep.objects.filter(enrollment=enrollment).order_by("id").values_list("node_id", "outcome", "detail"))


def send_config(enrollment: Enrollment) -> dict:
    config = enrollment.version.graph["nodes"][1]["config"]
    return {"channel": config["channel"], "on_cap": config["on_cap"], "priority": enrollment.journey.priority}


@contextmanager
def trial(number: int, seed: int):
    """Name the trial and its seed in any failure, so it can be replayed."""
    try:
        yield random.Random(seed)
    except AssertionError as failure:
        raise AssertionError(
            f"trial {number}, seed {seed} (replay its workload first with CHORUS_GOVERNOR_SEED={seed}): {failure}"
        ) from failure


def base_seed() -> int:
    return int(os.environ.get("CHORUS_GOVERNOR_SEED") or random.SystemRandom().randrange(2**32))


def burst(rng: random.Random, workers: Workers) -> dt.datetime:
    """3–4 workers, each with its own small batch size, started together; returns when the
    last one stopped looking for due work."""
    return workers.run([rng.randint(*BATCH_SIZES) for _ in range(rng.choice(WORKERS))])


def fifty_at_once(number: int, rng: random.Random, workers: Workers) -> tuple[list[Enrollment], set[int]]:
    """One trial of the headline scenario; returns its enrollments and the winners."""
    customer = reachable_customer(f"burst-{number}-{rng.randrange(10**9)}")
    journeys = live_journeys(random_specs(rng), f"Burst {customer.external_id}")
    enrollments = enrol_all(journeys, customer, timezone.now())
    stopped = burst(rng, workers)
    caps = [Cap(ALL_CHANNELS_RULE, CAP, DAY)]
    return enrollments, check_customer(customer, enrollments, caps, expected_sent=CAP, stopped=stopped)


# --- The tests ------------------------------------------------------------------------------


def test_fifty_journeys_firing_at_once_from_several_processes_send_exactly_the_cap(workers):
    set_policy(Cap(ALL_CHANNELS_RULE, CAP, DAY))
    seed = base_seed()
    for number in range(TRIALS):
        with trial(number, seed + number) as rng:
            enrollments, winners = fifty_at_once(number, rng, workers)
            assert len(winners) == CAP and len(enrollments) == JOURNEYS


def test_the_highest_priority_journeys_win_the_last_slots_across_workers(workers):
    set_policy(Cap(ALL_CHANNELS_RULE, CAP, DAY))
    seed = base_seed()
    for number in range(PRIORITY_TRIALS):
        with trial(number, seed + number) as rng:
            enrollments, winners = fifty_at_once(number, rng, workers)
            priorities = {e.pk: e.journey.priority for e in enrollments}
            assert _winners_are_top_priorities(priorities, winners), (
                f"sent: priorities {sorted(priorities[pk] for pk in winners)}; "
                f"top {CAP}: {sorted(priorities.values())[-CAP:]}"
            )


def expected_under_overlap(channels: list[str]) -> int:
    """How many of these sends can go under 1 SMS and 3 in all per day, whatever the order:
    the limits form a (truncated partition) matroid, so every greedy order sends as many."""
    sms = sum(1 for channel in channels if channel == Channel.SMS)
    return min(CAP, len(channels) - sms + min(1, sms))


def test_overlapping_caps_on_several_customers_the_most_restrictive_wins_under_concurrency(workers):
    caps = [Cap(ALL_CHANNELS_RULE, CAP, DAY), Cap(SMS_RULE, 1, DAY, frozenset({Channel.SMS}))]
    set_policy(*caps)
    seed = base_seed()
    for number in range(OVERLAP_TRIALS):
        with trial(number, seed + number) as rng:
            specs = random_specs(rng)
            journeys = live_journeys(specs, f"Overlap {number}-{rng.randrange(10**9)}")
            sms = [j for j, s in zip(journeys, specs, strict=True) if s.channel == Channel.SMS]
            other = [j for j, s in zip(journeys, specs, strict=True) if s.channel != Channel.SMS]
            # Each customer enters a random share; one mostly SMS, so the SMS cap binds first.
            audiences = [rng.sample(journeys, rng.randint(10, 30)) for _ in range(rng.randint(2, 3))]
            audiences.append(sms + rng.sample(other, rng.randint(0, 1)))
            now = timezone.now()
            people = []
            for n, audience in enumerate(audiences):
                customer = reachable_customer(f"overlap-{number}-{n}-{rng.randrange(10**9)}")
                people.append((customer, enrol_all(audience, customer, now)))
            stopped = burst(rng, workers)
            for customer, enrollments in people:
                channels = [send_config(e)["channel"] for e in enrollments]
                check_customer(customer, enrollments, caps, expected_sent=expected_under_overlap(channels), stopped=stopped)
                check_rules_named(customer, caps)


def check_rules_named(customer: Customer, caps: list[Cap]) -> None:
    """A held-back SMS names whichever cap bound it; any other channel can only have met the
    all-channel cap; and when room was left across channels, only the SMS cap held anyone."""
    ledger = Ledger.read(customer)
    total = len(ledger.sent())
    for verdicts in ledger.verdicts.values():
        for verdict in verdicts:
            if verdict.rule == YIELD_RULE:
                continue  # a short wait for a higher-priority send, not a cap
            if verdict.channel != Channel.SMS:
                assert verdict.rule == ALL_CHANNELS_RULE, (verdict.channel, verdict.rule)
            elif total < CAP:
                assert verdict.rule == SMS_RULE, (verdict.rule, verdict.reason)
            else:
                assert verdict.rule in {cap.name for cap in caps}, verdict.rule
