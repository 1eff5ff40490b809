"""The models at work in journeys: which channel a send node uses, and when a best-time
delay ends. Called by the engine's send and delay handlers (orchestrator.engine.steps).

A channel is *available* when the customer may get it (consent and an address:
``Reachability.refusal``, the rule dispatch applies) and *open* when the governor would
let it go now (``Governor.peek``, which counts nothing). A best-channel send chooses by
affinity among the open channels; when every available channel is capped it chooses
among the available ones and the governor defers or suppresses as the node says. When
none is available the first channel of the node is dispatched, so the suppression and
its reason are on the customer's timeline as for any send.

A best-time delay followed by a best-channel send chooses both together (``choose_send``)
and leaves the plan in the enrollment's context; the send keeps the planned channel if it
is still open when it arrives, and chooses again otherwise.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from channels_app.reachability import Reachability
from customers.enums import Category
from customers.models import Customer
from journeys.graph import next_node_id, nodes_by_id
from journeys.models import Journey, JourneyVersion
from journeys.nodes import BEST_CHANNEL, NodeKind, send_channels
from orchestrator.governor.evaluate import Governor
from orchestrator.governor.loading import load_policy
from orchestrator.governor.policy import Candidate
from orchestrator.governor.rules import policy_zone
from orchestrator.intelligence import store
from orchestrator.intelligence.choice import DEFAULT_EXPLORE, choose_channel, label
from orchestrator.intelligence.decide import choose_send
from orchestrator.intelligence.sendtime import best_time, peak_summary


@dataclass(frozen=True)
class ChannelPick:
    channel: str
    detail: str  # for the step log: the channel alone when there was nothing to choose
    explored: bool = False
    reason: str = ""


def rng_for(*parts: object) -> random.Random:
    """The same step always draws the same numbers: a retried step explores alike."""
    return random.Random(":".join(str(p) for p in parts))


def pick_channel(
    customer: Customer, config: Mapping, journey: Journey, *, now: datetime, governor: Governor,
    rng: random.Random, plan: Mapping | None = None,
) -> ChannelPick:
    channels = send_channels(config)
    reach = Reachability.load([customer.pk])
    refusals = {c: reach.refusal(customer, c, journey.category) for c in channels}
    available = [c for c in channels if refusals[c] is None]
    if config["channel"] != BEST_CHANNEL:
        return _first_available(channels, available, refusals)
    if not available:
        return ChannelPick(channels[0], f"{channels[0]}: no channel available", reason="none_available")
    open_ = [c for c in available if _open(governor, customer, journey, c, now)] or available
    if plan and plan.get("channel") in open_:
        return ChannelPick(plan["channel"], f"{plan['channel']} · {plan['explain']}"[:500], plan.get("explored", False), plan["reason"])
    choice = choose_channel(
        store.customer_estimates(customer.pk, now=now), open_, fallback_order=channels,
        explore_rate=float(config.get("explore", DEFAULT_EXPLORE)), rng=rng,
    )
    assert choice.channel is not None
    summary = peak_summary(store.send_time_profile(customer.pk))
    detail = f"{choice.channel} · {choice.explain()}; {summary}"
    return ChannelPick(choice.channel, detail[:500], choice.explored, choice.reason.value)


def _first_available(channels: list[str], available: list[str], refusals: Mapping) -> ChannelPick:
    if not available or available[0] == channels[0]:
        return ChannelPick(channels[0], channels[0])
    skipped = "; ".join(f"{label(c)}: {refusals[c].reason}" for c in channels[: channels.index(available[0])])
    return ChannelPick(available[0], f"{available[0]} · fell back ({skipped})"[:500], reason="fallback")


def _open(governor: Governor, customer: Customer, journey: Journey, channel: str, now: datetime) -> bool:
    candidate = Candidate(
        channel=channel, category=journey.category, at=now, customer_timezone=customer.timezone,
        journey_tags=frozenset(journey.tags or ()), priority=journey.priority,
    )
    return governor.peek(customer.pk, candidate).allowed


# --- best time ----------------------------------------------------------------------------


def best_time_delay(
    customer: Customer, config: Mapping, journey: Journey, *, node_id: str, version_id: int,
    now: datetime, rng: random.Random,
) -> tuple[datetime, str, dict | None]:
    """(when the delay ends, the step log's note, the plan for a best-channel send next)."""
    window = timedelta(hours=int(config["within_hours"]))
    policy = load_policy()
    zone = policy_zone(policy, customer.timezone)
    marketing = journey.category == Category.MARKETING
    quiet = _quiet_windows(policy) if marketing else {}
    profile = store.send_time_profile(customer.pk)
    send = _next_send(version_id, node_id)
    if send is not None and send["config"].get("channel") == BEST_CHANNEL:
        channels = send_channels(send["config"])
        reach = Reachability.load([customer.pk])
        available = [c for c in channels if reach.refusal(customer, c, journey.category) is None]
        if available:
            plan = choose_send(
                store.customer_estimates(customer.pk, now=now), profile, available, now=now, window=window, tz=zone,
                fallback_order=channels, explore_rate=float(send["config"].get("explore", DEFAULT_EXPLORE)),
                rng=rng, quiet_hours=quiet,
            )
            assert plan.channel is not None
            explain = plan.explain()
            saved = {"node": send["id"], "channel": plan.channel, "at": plan.at.isoformat(), "explain": explain,
                     "explored": plan.choice.explored, "reason": plan.choice.reason.value}
            return plan.at, f"until {plan.at:%Y-%m-%d %H:%M} UTC, with {label(plan.channel)}: {explain}"[:500], saved
    channels = _send_channels_of(send)
    windows = [w for c in channels for w in quiet.get(c, ())] if channels else [w for ws in quiet.values() for w in ws]
    timing = best_time(profile, now=now, window=window, tz=zone, quiet_hours=windows or None)
    return timing.at, f"until {timing.at:%Y-%m-%d %H:%M} UTC: {timing.explain()}"[:500], None


def _quiet_windows(policy) -> dict[str, list]:
    windows: dict[str, list] = {}
    for rule in policy.quiet_hours:
        windows.setdefault(rule.channel, []).append((rule.start, rule.end))
    return windows


def _next_send(version_id: int, node_id: str) -> dict | None:
    graph = JourneyVersion.objects.only("graph").get(pk=version_id).graph
    target = next_node_id(graph, node_id, "out")
    node = nodes_by_id(graph).get(target) if target else None
    return node if node is not None and node.get("kind") == NodeKind.SEND else None


def _send_channels_of(send: Mapping | None) -> Sequence[str]:
    if send is None:
        return ()
    try:
        return send_channels(send.get("config") or {})
    except KeyError:
        return ()
