"""The governor's decision as a pure function: policy + candidate send + history -> verdict.

No database and no clock: the caller passes the customer's counted messages (statuses in
``channels_app.ledger.COUNTED_STATUSES``, reaching back ``history_window(policy)``, the
candidate's own ledger row left out) and the moment the send would go.

Marketing sends must pass every rule at once: quiet hours, minimum spacing and each cap
in scope. When one blocks, ``judge`` looks for the earliest moment at which *all* of them
allow, since leaving quiet hours can land on a full cap and a cap freeing up can land in
quiet hours. Past ``policy.defer_horizon`` the send is suppressed instead.

Scope of in-app messages: with ``policy.in_app_counts`` off, in-app messages neither count
toward nor are held back by spacing, all-channel and tag caps. A channel rule that names
in-app explicitly still counts it: otherwise such a rule could never bite.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from zoneinfo import ZoneInfo

from customers.enums import Category, Channel
from orchestrator.engine.timing import customer_zone, local_instant
from orchestrator.governor.policy import (
    Candidate,
    CapRule,
    Decision,
    PastMessage,
    Policy,
    QuietHours,
    Scope,
    Verdict,
)

# Each round moves the moment strictly forward to a distinct event (a quiet-hours end, a
# message leaving a window, a spacing gap closing), so real policies settle in a handful
# of rounds; the bound only guards against a pathological history.
MAX_ROUNDS = 1000
TRANSACTIONAL_EXEMPT = "transactional: exempt from caps, spacing and quiet hours"


@dataclass(frozen=True)
class _Block:
    """One rule saying "not now" at some moment, and when that stops being true."""

    rule: str
    reason: str
    until: dt.datetime | None  # None: this rule never allows the send (a cap of 0)
    counts: dict = field(default_factory=dict)


_Check = Callable[[dt.datetime], _Block | None]


def judge(policy: Policy, candidate: Candidate, history: Sequence[PastMessage]) -> Verdict:
    """Allow the candidate, defer it until every rule allows, or suppress it."""
    if candidate.at.tzinfo is None or candidate.at.utcoffset() is None:
        raise ValueError("candidate.at must be an aware datetime")
    if candidate.category == Category.TRANSACTIONAL:
        return Verdict(Decision.ALLOW, reason=TRANSACTIONAL_EXEMPT)
    zone = policy_zone(policy, candidate.customer_timezone)
    # Read once into a tuple: each rule filters it again, so a one-shot iterator won't do.
    checks = _checks(policy, candidate, tuple(history), zone)
    return _settle(policy, candidate, checks, zone)


def history_window(policy: Policy) -> dt.timedelta:
    """How far before the candidate's moment the caller must read the customer's messages."""
    spans = [rule.window for rule in policy.rules]
    if policy.min_spacing:
        spans.append(policy.min_spacing)
    return max(spans, default=dt.timedelta(0))


def policy_zone(policy: Policy, customer_timezone: str) -> ZoneInfo:
    """The customer's zone, else the policy's fallback, else CHORUS_DEFAULT_TIMEZONE."""
    for name in (customer_timezone, policy.fallback_timezone):
        # customer_zone hands back the settings default for a bad name: a different key.
        if name and (zone := customer_zone(name)).key == name:
            return zone
    return customer_zone("")


# --- Combining the rules ------------------------------------------------------------


def _settle(
    policy: Policy, candidate: Candidate, checks: list[_Check], zone: ZoneInfo
) -> Verdict:
    """Walk forward from candidate.at to the first moment no check blocks."""
    deadline = candidate.at + policy.defer_horizon
    moment, steps = candidate.at, []
    for _ in range(MAX_ROUNDS):
        blocks = [block for check in checks if (block := check(moment))]
        if not blocks:
            return _allow_or_defer(moment, steps)
        binding = _latest(blocks)
        steps.append(binding)
        if binding.until is None or binding.until > deadline:
            return _suppress(steps, _beyond(binding.until, policy.defer_horizon, zone))
        moment = binding.until
    return _suppress(steps, f"no allowed moment found in {MAX_ROUNDS} steps")


def _latest(blocks: list[_Block]) -> _Block:
    """The most restrictive block: the one that clears last (never beats any moment)."""
    never = [block for block in blocks if block.until is None]
    return never[0] if never else max(blocks, key=lambda block: block.until)


def _allow_or_defer(moment: dt.datetime, steps: list[_Block]) -> Verdict:
    if not steps:
        return Verdict(Decision.ALLOW)
    binding = steps[-1]
    return Verdict(
        Decision.DEFER,
        until=moment.astimezone(dt.UTC),
        reason=_story(steps),
        rule=binding.rule,
        counts=binding.counts,
        rules_hit=_hits(steps),
    )


def _suppress(steps: list[_Block], why: str) -> Verdict:
    binding = steps[-1]
    reason = f"{_story(steps)}; {why}"
    return Verdict(Decision.SUPPRESS, reason=reason, rule=binding.rule, counts=binding.counts, rules_hit=_hits(steps))


def _hits(steps: list[_Block]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(step.rule for step in steps))


def _story(steps: list[_Block]) -> str:
    """The blocks in the order they were met; a rule met again in a row is told once."""
    followers = [*steps[1:], None]
    told = [s for s, after in zip(steps, followers, strict=True) if after is None or after.rule != s.rule]
    return "; then ".join(step.reason for step in told)


def _beyond(until: dt.datetime | None, horizon: dt.timedelta, zone: ZoneInfo) -> str:
    if until is None:
        return "it allows no message at all"
    local = until.astimezone(zone)
    return f"next allowed {local:%Y-%m-%d %H:%M} {zone.key}, beyond the {span(horizon)} defer horizon"


# --- The individual rules -----------------------------------------------------------


def _checks(
    policy: Policy, candidate: Candidate, history: Sequence[PastMessage], zone: ZoneInfo
) -> list[_Check]:
    """One check per rule that governs this candidate, in the order they are reported."""
    quiet_hours = [quiet for quiet in policy.quiet_hours if quiet.channel == candidate.channel]
    checks: list[_Check] = [partial(_quiet_block, quiet, zone) for quiet in quiet_hours]
    if policy.min_spacing and _counted_channel(policy, candidate.channel):
        marketing = sorted(m.at for m in history if _spaced(policy, m))
        checks.append(partial(_spacing_block, policy.min_spacing, marketing))
    for rule in policy.rules:
        if _in_scope(rule, policy, candidate.channel, candidate.journey_tags):
            counted = sorted(m.at for m in history if _counts_toward(rule, policy, m))
            checks.append(partial(_cap_block, rule, counted))
    return checks


def _quiet_block(quiet: QuietHours, zone: ZoneInfo, moment: dt.datetime) -> _Block | None:
    if not in_quiet_hours(quiet, moment.astimezone(zone).time()):
        return None
    until = next_wall_time(moment, zone, quiet.end)
    window = f"{quiet.start:%H:%M}–{quiet.end:%H:%M} {zone.key}"
    return _Block(
        rule=f"quiet hours {quiet.channel}",
        reason=f"quiet hours for {quiet.channel} ({window}) until {until.astimezone(zone):%H:%M}",
        until=until,
        counts={"start": f"{quiet.start:%H:%M}", "end": f"{quiet.end:%H:%M}", "timezone": zone.key},
    )


def _spacing_block(
    spacing: dt.timedelta, marketing: list[dt.datetime], moment: dt.datetime
) -> _Block | None:
    # Only messages up to `moment`: later ones are the future of this send, not its past.
    earlier = bisect_right(marketing, moment)
    if not earlier or moment >= marketing[earlier - 1] + spacing:
        return None
    last = marketing[earlier - 1]
    return _Block(
        rule="min spacing",
        reason=f"{span(spacing)} spacing: last marketing message {_elapsed(moment - last)} ago",
        until=last + spacing,
        counts={"minutes_since_last": _minutes(moment - last), "min_spacing_minutes": _minutes(spacing)},
    )


def _cap_block(rule: CapRule, counted: list[dt.datetime], moment: dt.datetime) -> _Block | None:
    # The rolling window is (moment - window, moment]: a message leaves it exactly `window` later.
    in_window = counted[bisect_right(counted, moment - rule.window) : bisect_right(counted, moment)]
    if len(in_window) < rule.max_count:
        return None
    # Room opens when the (count - max + 1)-th oldest leaves; a cap of 0 never opens.
    until = in_window[len(in_window) - rule.max_count] + rule.window if rule.max_count > 0 else None
    return _Block(
        rule=rule.name,
        reason=f"cap '{rule.name}': {len(in_window)} of {rule.max_count} in the last {span(rule.window)}",
        until=until,
        counts={"count": len(in_window), "max": rule.max_count, "window_minutes": _minutes(rule.window)},
    )


# --- Who counts where ---------------------------------------------------------------


def _counted_channel(policy: Policy, channel: str) -> bool:
    """Whether a channel takes part in spacing and in all-channel and tag caps."""
    return channel != Channel.IN_APP or policy.in_app_counts


def _in_scope(rule: CapRule, policy: Policy, channel: str, tags: frozenset[str]) -> bool:
    if rule.scope in (Scope.CHANNEL, Scope.CHANNELS):
        return channel in rule.channels  # naming a channel counts it, in-app included
    if not _counted_channel(policy, channel):
        return False
    return rule.scope == Scope.ALL or (rule.scope == Scope.TAG and rule.tag in tags)


def _counts_toward(rule: CapRule, policy: Policy, message: PastMessage) -> bool:
    if message.category == Category.TRANSACTIONAL and not rule.counts_transactional:
        return False
    return _in_scope(rule, policy, message.channel, message.journey_tags)


def _spaced(policy: Policy, message: PastMessage) -> bool:
    """Spacing is between marketing messages: transactional ones never start its clock."""
    return message.category != Category.TRANSACTIONAL and _counted_channel(policy, message.channel)


# --- Local time ---------------------------------------------------------------------


def in_quiet_hours(quiet: QuietHours, local: dt.time) -> bool:
    """Whether a local wall time falls in [start, end); start after end spans midnight."""
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    # Equal start and end is an empty window (the admin forbids it; no silent all-day ban).
    return quiet.start != quiet.end and (local >= quiet.start or local < quiet.end)


def next_wall_time(after: dt.datetime, zone: ZoneInfo, wall: dt.time) -> dt.datetime:
    """The first instant after `after` showing `wall` in `zone` (a gap: the instant after it).

    Unlike timing.next_local_time, both readings of a fall-back hour count: someone in
    the repeated hour before a 01:30 end waits for its second 01:30, not a day. Yesterday
    is looked at too: a change at midnight (St John's until 2011, Santiago) repeats the
    previous day's last hour after today has begun.
    """
    today = after.astimezone(zone).date()
    days = (today + dt.timedelta(days=offset) for offset in range(-1, 3))
    return min(t for day in days for t in _readings(day, wall, zone) if t > after)


def _readings(day: dt.date, wall: dt.time, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    first = local_instant(day, wall, zone)
    second = dt.datetime.combine(day, wall, zone).replace(fold=1).astimezone(dt.UTC)
    # In a spring-forward gap the second reading is a wall time that never shows.
    return first, (second if second.astimezone(zone).time() == wall else first)


# --- Wording ------------------------------------------------------------------------


def span(delta: dt.timedelta) -> str:
    """A rule's length as admins write it: "30 min", "24 h", "7 days"."""
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _elapsed(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def _minutes(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 60)
