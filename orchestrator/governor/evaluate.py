"""The governor at send time: ``Governor.evaluate()``, the one entry point the send path calls.

A Governor serves one transaction (an engine batch, or one dispatch). At its first
evaluation it locks the rows of every customer it may judge, in id order, and reads their
counted messages within the policy's longest window in one query. Each verdict is then
``rules.judge`` over that history plus the sends this transaction already allowed, so two
sends in one batch cannot both take a customer's last slot, and the row lock makes any
other worker's transaction wait for ours to commit before it reads the history: caps hold
exactly under any number of workers on any number of hosts.

Priority arbitration (see ``rivals``): before judging a send, the governor sets aside
the slots that higher-priority sends due now in other batches would take; a send that
only those reservations hold back yields for a few seconds instead of taking the slot.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace

from channels_app.ledger import COUNTED_STATUSES
from channels_app.models import Message
from customers.models import Customer
from journeys.models import Journey
from orchestrator.governor.loading import load_policy
from orchestrator.governor.policy import (
    YIELD_RULE,
    Candidate,
    Decision,
    PastMessage,
    Policy,
    Verdict,
)
from orchestrator.governor.rivals import YIELD_FOR, Rival, due_rivals
from orchestrator.governor.rules import history_window, judge


class Governor:
    def __init__(self, customer_ids: Iterable[int], *, now: dt.datetime, deciding: Iterable[int] = ()):
        """``deciding``: the enrollments this transaction advances (its own sends are
        judged in priority order as they come, so they are nobody's rivals)."""
        self.customer_ids = sorted(set(customer_ids))
        self.now = now
        self.deciding = set(deciding)
        self.policy: Policy | None = None
        self.history: dict[int, list[PastMessage]] = defaultdict(list)
        self.rivals: dict[int, list[Rival]] = {}

    def evaluate(self, customer_id: int, candidate: Candidate) -> Verdict:
        """Judge one send; an allowed send counts toward the next ones in this transaction."""
        if self.policy is None:
            self._load()
        history = self.history[customer_id]
        if history and history[-1].at > candidate.at:
            # Another worker's batch, begun a moment after ours, sent first: judge at its
            # moment, or its messages would look like this send's future and not count.
            candidate = replace(candidate, at=history[-1].at)
        reserved, by = self._reservations(customer_id, candidate)
        verdict = judge(self.policy, candidate, history + reserved if reserved else history)
        if not verdict.allowed and reserved:
            # Held back with the rivals' slots set aside: by them (yield), or by the real
            # history alone (that verdict, with its true counts and until).
            verdict = judge(self.policy, candidate, history)
            if verdict.allowed:
                return _yield_to(by, candidate, self.now)
            return verdict
        if verdict.allowed:
            history.append(PastMessage(candidate.channel, candidate.category, candidate.at, candidate.journey_tags))
        return verdict

    def peek(self, customer_id: int, candidate: Candidate) -> Verdict:
        """What ``evaluate`` would say of this send now, without counting it: for choosing
        among channels before one is dispatched (a best-channel send node)."""
        if self.policy is None:
            self._load()
        history = self.history[customer_id]
        if history and history[-1].at > candidate.at:
            candidate = replace(candidate, at=history[-1].at)
        reserved, _ = self._reservations(customer_id, candidate)
        return judge(self.policy, candidate, history + reserved)

    def _reservations(self, customer_id: int, candidate: Candidate) -> tuple[list[PastMessage], list[Rival]]:
        """The slots higher-priority rivals would take, each judged in priority order
        against the history and the reservations before it, as their workers will be."""
        reserved: list[PastMessage] = []
        by: list[Rival] = []
        for rival in self.rivals.get(customer_id, ()):
            if rival.priority <= candidate.priority:
                break  # highest first: the rest do not outrank this send
            wanted = PastMessage(rival.channel, rival.category, candidate.at, rival.tags)
            rival_send = Candidate(rival.channel, rival.category, candidate.at, candidate.customer_timezone, rival.tags, rival.priority)
            if judge(self.policy, rival_send, self.history[customer_id] + reserved).allowed:
                reserved.append(wanted)
                by.append(rival)
        return reserved, by

    def _load(self) -> None:
        self.policy = load_policy()
        if not self.policy.restricts_anything:
            return  # nothing to count against: no lock, no history
        # The lock that makes caps exact: concurrent deciders for these customers queue here.
        list(Customer.objects.select_for_update().filter(pk__in=self.customer_ids).order_by("pk").values_list("pk"))
        since = self.now - history_window(self.policy)
        rows = list(
            Message.objects.filter(
                customer_id__in=self.customer_ids, queued_at__gt=since, status__in=list(COUNTED_STATUSES)
            ).values_list("customer_id", "channel", "category", "queued_at", "journey_id")
        )
        tags = _journey_tags({journey_id for *_, journey_id in rows if journey_id})
        for customer_id, channel, category, at, journey_id in sorted(rows, key=lambda r: r[3]):
            self.history[customer_id].append(PastMessage(channel, category, at, tags.get(journey_id, frozenset())))
        self.rivals = due_rivals(self.customer_ids, now=self.now, exclude=self.deciding)


def _yield_to(rivals: list[Rival], candidate: Candidate, now: dt.datetime) -> Verdict:
    first = rivals[0]
    names = f"“{first.journey_name}” (priority {first.priority})"
    if len(rivals) > 1:
        names += f" and {len(rivals) - 1} more"
    return Verdict(
        Decision.DEFER, until=now + YIELD_FOR, rule=YIELD_RULE,
        reason=f"yields to higher-priority {names}, due now, for the slot this send would take",
        counts={"priority": candidate.priority, "rivals": [{"journey_id": r.journey_id, "priority": r.priority} for r in rivals]},
    )


def _journey_tags(journey_ids: set[int]) -> dict[int, frozenset[str]]:
    if not journey_ids:
        return {}
    return {pk: frozenset(tags or []) for pk, tags in Journey.objects.filter(pk__in=journey_ids).values_list("pk", "tags")}
