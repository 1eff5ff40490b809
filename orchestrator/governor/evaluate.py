"""The governor at send time: ``Governor.evaluate()``, the one entry point the send path calls.

A Governor serves one transaction (an engine batch, or one dispatch). At its first
evaluation it locks the rows of every customer it may judge, in id order, and reads their
counted messages within the policy's longest window in one query. Each verdict is then
``rules.judge`` over that history plus the sends this transaction already allowed, so two
sends in one batch cannot both take a customer's last slot, and the row lock makes any
other worker's transaction wait for ours to commit before it reads the history: caps hold
exactly under any number of workers on any number of hosts.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

from channels_app.ledger import COUNTED_STATUSES
from channels_app.models import Message
from customers.models import Customer
from journeys.models import Journey
from orchestrator.governor.loading import load_policy
from orchestrator.governor.policy import Candidate, PastMessage, Policy, Verdict
from orchestrator.governor.rules import history_window, judge


class Governor:
    def __init__(self, customer_ids: Iterable[int], *, now: dt.datetime):
        self.customer_ids = sorted(set(customer_ids))
        self.now = now
        self.policy: Policy | None = None
        self.history: dict[int, list[PastMessage]] = defaultdict(list)

    def evaluate(self, customer_id: int, candidate: Candidate) -> Verdict:
        """Judge one send; an allowed send counts toward the next ones in this transaction."""
        if self.policy is None:
            self._load()
        verdict = judge(self.policy, candidate, self.history[customer_id])
        if verdict.allowed:
            self.history[customer_id].append(
                PastMessage(candidate.channel, candidate.category, candidate.at, candidate.journey_tags)
            )
        return verdict

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


def _journey_tags(journey_ids: set[int]) -> dict[int, frozenset[str]]:
    if not journey_ids:
        return {}
    return {pk: frozenset(tags or []) for pk, tags in Journey.objects.filter(pk__in=journey_ids).values_list("pk", "tags")}
