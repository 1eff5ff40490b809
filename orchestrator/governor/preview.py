"""The policy preview: "what would this policy have done to the last 7 days?", before saving it.

``preview()`` replays the governor (``rules.judge``) over the sends of the last ``WINDOW``
twice, under the saved policy and under a proposed one, so the admin sees both side by
side. Nothing is written.

What counts as an attempt: every message the ledger queued in the window, whatever became
of it, except those consent or a missing address stopped (they would be stopped under any
policy). A message the live governor suppressed is an attempt: another policy might let
it go. Attempts are judged at their ``queued_at``, in that order.

History: the customer's counted messages (``COUNTED_STATUSES``) in the ``history_window``
before the window, as the live governor reads them, then the sends the replay allowed (a
send the provider failed stops counting, as it does live).

Deferrals are replayed as the engine does them: the send comes back at the verdict's
``until`` and is judged again then, in time order with the other attempts; it is counted
once, as deferred, whether or not it is deferred again. A send coming back after the
window's end is "still waiting". A send suppressed, at once or when it came back, is
counted as suppressed under the rule that suppressed it.

What the replay cannot know: a live deferral writes its message only when the send goes,
so the ledger shows it at the moment it went, not when it was due; a node's ``on_cap``
(skip or exit instead of waiting for a cap) is not in the ledger, so every cap holds a
send back as "defer" does; and what a journey would have done next had a send gone
differently (a customer who left at a capped exit) is not replayed.
"""

from __future__ import annotations

import copy
import datetime as dt
import heapq
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from channels_app.ledger import COUNTED_STATUSES
from channels_app.models import Message, MessageStatus
from customers.enums import Channel
from journeys.models import Journey
from orchestrator.governor.loading import read_policy
from orchestrator.governor.models import GovernorVerdict
from orchestrator.governor.policy import Candidate, Decision, PastMessage, Policy
from orchestrator.governor.rules import history_window, judge

WINDOW = dt.timedelta(days=7)
NO_JOURNEY = "No journey (API)"
# The rules dispatch.decide names when consent or a missing address stops a send: not the
# frequency policy's doing, so such messages are not attempts the policy decides.
NOT_POLICY_RULES = ("consent", "reachability")


class Outcome(StrEnum):
    ALLOWED = "allowed"
    DEFERRED = "deferred"  # held back, then sent later within the window
    WAITING = "waiting"  # held back and still waiting when the window ends
    SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class Attempt:
    """A send a journey (or the API) asked for: the candidate as first judged, and whose it is."""

    customer_id: int
    candidate: Candidate  # channel, category, the moment asked, time zone, journey tags
    journey: str = NO_JOURNEY  # the journey's name, for the report
    counts: bool = True  # False when the provider failed it: it never reached the customer


@dataclass
class Tally:
    allowed: int = 0
    deferred: int = 0
    waiting: int = 0
    suppressed: int = 0

    @property
    def held(self) -> int:
        """Deferred at least once and not suppressed: sent later, or still waiting."""
        return self.deferred + self.waiting

    @property
    def total(self) -> int:
        return self.allowed + self.held + self.suppressed

    def add(self, outcome: Outcome, count: int = 1) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + count)


@dataclass(frozen=True)
class PreviewReport:
    """One policy's replay: every attempt counted once, by outcome."""

    total: Tally
    by_channel: dict[str, Tally]
    by_journey: dict[str, Tally]
    by_rule: dict[str, Tally]  # attempts not allowed, by the rule that held or suppressed them


@dataclass(frozen=True)
class Ledger:
    """The window's attempts in time order, and each customer's counted messages before it."""

    start: dt.datetime
    end: dt.datetime
    attempts: list[Attempt]
    seed_history: dict[int, list[PastMessage]]


# --- The replay: pure -------------------------------------------------------------------------


def replay(
    policy: Policy, attempts: Sequence[Attempt], *, seed_history: Mapping[int, Sequence[PastMessage]], end: dt.datetime
) -> PreviewReport:
    """Judge every attempt in time order, deferred ones again at their ``until``.

    One customer after another: no rule looks at anyone else's messages, so each replay
    keeps a queue of a handful of sends instead of the whole week's."""
    lookback = history_window(policy)
    outcomes: Counter[tuple[str, str, str, Outcome]] = Counter()
    for customer_id, theirs in _by_customer(attempts).items():
        past = list(seed_history.get(customer_id, ()))
        for attempt, outcome, rule in _replay_customer(policy, theirs, past, lookback, end):
            outcomes[attempt.candidate.channel, attempt.journey, rule, outcome] += 1
    return _report(outcomes)


def _by_customer(attempts: Sequence[Attempt]) -> dict[int, list[Attempt]]:
    grouped: defaultdict[int, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        grouped[attempt.customer_id].append(attempt)
    return grouped


def _replay_customer(
    policy: Policy, attempts: list[Attempt], past: list[PastMessage], lookback: dt.timedelta, end: dt.datetime
) -> Iterator[tuple[Attempt, Outcome, str]]:
    """Each attempt's outcome and the rule behind it ("" when allowed at once); the sends
    allowed join ``past``, the customer's history."""
    # (moment, order asked, attempt, the rule that first held it back)
    queue = [(attempt.candidate.at, order, attempt, "") for order, attempt in enumerate(attempts)]
    heapq.heapify(queue)
    while queue:
        moment, order, attempt, held_by = heapq.heappop(queue)
        if moment >= end:
            yield attempt, Outcome.WAITING, held_by
            continue
        candidate = attempt.candidate if moment == attempt.candidate.at else replace(attempt.candidate, at=moment)
        verdict = judge(policy, candidate, _recent(past, moment - lookback))
        if verdict.decision == Decision.DEFER:
            heapq.heappush(queue, (verdict.until, order, attempt, held_by or verdict.rule))
        elif verdict.decision == Decision.SUPPRESS:
            yield attempt, Outcome.SUPPRESSED, verdict.rule
        else:
            if attempt.counts:  # the queue pops in time order, so `past` stays sorted
                past.append(PastMessage(candidate.channel, candidate.category, moment, candidate.journey_tags))
            yield attempt, (Outcome.DEFERRED if held_by else Outcome.ALLOWED), held_by


def _recent(past: list[PastMessage], since: dt.datetime) -> list[PastMessage]:
    # judge() filters the whole history once per rule: handing it only the policy's longest
    # window keeps a busy customer's week from costing more with every send.
    return past[bisect_left(past, since, key=lambda message: message.at) :]


def _report(outcomes: Counter[tuple[str, str, str, Outcome]]) -> PreviewReport:
    total, by_channel, by_journey, by_rule = Tally(), defaultdict(Tally), defaultdict(Tally), defaultdict(Tally)
    for (channel, journey, rule, outcome), count in outcomes.items():
        for tally in (total, by_channel[channel], by_journey[journey], *((by_rule[rule],) if rule else ())):
            tally.add(outcome, count)
    return PreviewReport(total, dict(by_channel), dict(by_journey), dict(by_rule))


# --- Reading the ledger: two queries ----------------------------------------------------------


def read_ledger(end: dt.datetime, *, lookback: dt.timedelta) -> Ledger:
    """The attempts of the WINDOW before ``end`` and the counted messages ``lookback`` before it."""
    start = end - WINDOW
    rows = list(
        Message.objects.filter(_attempted(start, end) | _counted(start - lookback, start))
        .order_by("queued_at", "pk")
        .values_list("customer_id", "channel", "category", "queued_at", "journey_id", "status", "customer__timezone")
    )
    journeys = _journeys({row[4] for row in rows if row[4] is not None})
    attempts, seed = [], defaultdict(list)
    for customer_id, channel, category, at, journey_id, status, tz in rows:
        name, tags = journeys.get(journey_id, (NO_JOURNEY, frozenset()))
        if at < start:
            seed[customer_id].append(PastMessage(channel, category, at, tags))
        else:
            candidate = Candidate(channel, category, at, customer_timezone=tz, journey_tags=tags)
            attempts.append(Attempt(customer_id, candidate, name, counts=status != MessageStatus.FAILED))
    return Ledger(start, end, attempts, dict(seed))


def _attempted(start: dt.datetime, end: dt.datetime) -> Q:
    """Queued in the window, unless consent or reachability suppressed it. A suppressed
    message without a policy verdict (imported history) is taken for one of those."""
    by_policy = GovernorVerdict.objects.filter(
        decision=GovernorVerdict.Decision.SUPPRESS, at__gte=start, at__lt=end, message_id__isnull=False
    ).exclude(rule__in=NOT_POLICY_RULES)
    in_window = Q(queued_at__gte=start, queued_at__lt=end)
    return in_window & (~Q(status=MessageStatus.SUPPRESSED) | Q(pk__in=by_policy.values("message_id")))


def _counted(start: dt.datetime, end: dt.datetime) -> Q:
    return Q(queued_at__gte=start, queued_at__lt=end, status__in=list(COUNTED_STATUSES))


def _journeys(ids: set[int]) -> dict[int, tuple[str, frozenset[str]]]:
    rows = Journey.objects.filter(pk__in=ids).values_list("pk", "name", "tags") if ids else []
    found = {pk: (name, frozenset(tags or [])) for pk, name, tags in rows}
    # Messages keep a deleted journey's id: still a journey, told apart from API sends.
    return {pk: found.get(pk, (f"journey #{pk} (deleted)", frozenset())) for pk in ids}


# --- Current against proposed ------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a preview table: a channel, a journey, a rule or the total."""

    label: str
    current: Tally
    proposed: Tally | None = None

    @property
    def change(self) -> dict[str, str]:
        """Proposed minus current, signed for display: {"allowed": "+3", "held": "−2", …}."""
        if self.proposed is None:
            return {}
        names = ("allowed", "held", "waiting", "suppressed")
        return {name: _signed(getattr(self.proposed, name) - getattr(self.current, name)) for name in names}


@dataclass(frozen=True)
class Comparison:
    """The saved policy's replay, and the proposed one's when there is one."""

    start: dt.datetime
    end: dt.datetime
    attempts: int
    current: PreviewReport
    proposed: PreviewReport | None = None

    @property
    def totals(self) -> list[Row]:
        return [Row("All sends", self.current.total, self.proposed.total if self.proposed else None)]

    @property
    def by_channel(self) -> list[Row]:
        order = {channel: index for index, channel in enumerate(Channel.values)}
        rows = self._rows(lambda report: report.by_channel)
        labels = dict(Channel.choices)
        rows.sort(key=lambda row: order.get(row.label, len(order)))
        return [Row(labels.get(row.label, row.label), row.current, row.proposed) for row in rows]

    @property
    def by_journey(self) -> list[Row]:
        return sorted(self._rows(lambda report: report.by_journey), key=lambda row: (-row.current.total, row.label))

    @property
    def by_rule(self) -> list[Row]:
        def held_back(row: Row) -> int:
            return max(row.current.total, row.proposed.total if row.proposed else 0)

        return sorted(self._rows(lambda report: report.by_rule), key=lambda row: (-held_back(row), row.label))

    def _rows(self, part: Callable[[PreviewReport], dict[str, Tally]]) -> list[Row]:
        current = part(self.current)
        if self.proposed is None:
            return [Row(label, tally) for label, tally in current.items()]
        proposed = part(self.proposed)
        return [Row(label, current.get(label, Tally()), proposed.get(label, Tally())) for label in current | proposed]


def preview(proposed: Policy | None = None, *, now: dt.datetime | None = None) -> Comparison:
    """Replay the saved policy, and ``proposed`` if given, over the WINDOW before ``now``."""
    current = read_policy()
    policies = [current] if proposed is None else [current, proposed]
    ledger = read_ledger(now or timezone.now(), lookback=max(history_window(policy) for policy in policies))
    reports = [replay(policy, ledger.attempts, seed_history=ledger.seed_history, end=ledger.end) for policy in policies]
    return Comparison(ledger.start, ledger.end, len(ledger.attempts), *reports)


def policy_with(row: models.Model, *, removed: bool = False) -> Policy:
    """The policy as it would read once ``row`` (a FrequencyRule, GovernorSettings or
    QuietHoursRule as edited) is saved, or removed. Nothing is saved.

    ``read_policy`` is the one mapping from rows to a Policy, so it reads the edited row
    inside a transaction that is always rolled back (as the journey simulator runs a
    journey): what is previewed is exactly what saving would load, a new settings field
    included.
    """
    row = copy.copy(row)  # the caller's unsaved instance must not come back with a pk
    with transaction.atomic():
        if removed:
            row.delete()
        else:
            row.save()
        policy = read_policy()
        transaction.set_rollback(True)
    return policy


def _signed(number: int) -> str:
    return f"+{number:,}" if number > 0 else f"−{-number:,}" if number < 0 else "0"
