"""The frequency policy as frozen values, so the decision is a pure function of them.

Admins edit the policy in Django admin (orchestrator.governor.models); ``load_policy``
turns the rows into a ``Policy`` that ``rules.judge`` reads. Nothing here touches the
database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

# Channel values (customers.enums.Channel) whose marketing needs an explicit opt-in, as
# shipped: email, SMS and push; an in-app inbox message needs none.
MARKETING_OPT_IN_DEFAULT = frozenset({"email", "sms", "push"})


class Scope(StrEnum):
    ALL = "all"  # every channel together
    CHANNEL = "channel"  # one channel
    CHANNELS = "channels"  # a set of channels together
    TAG = "tag"  # messages of journeys carrying a tag (e.g. a team)


class Decision(StrEnum):
    ALLOW = "allow"
    DEFER = "defer"
    SUPPRESS = "suppress"


# The rule a verdict names when a send yields its slot to a higher-priority send (rivals).
YIELD_RULE = "priority"


@dataclass(frozen=True)
class CapRule:
    """At most ``max_count`` counted messages in any rolling ``window`` within the scope."""

    name: str
    scope: Scope
    max_count: int
    window: dt.timedelta
    channels: frozenset[str] = frozenset()  # CHANNEL (one) and CHANNELS
    tag: str = ""  # TAG
    # Transactional messages never wait for a cap, but may still use up its room.
    counts_transactional: bool = False


@dataclass(frozen=True)
class QuietHours:
    """No marketing on ``channel`` between ``start`` and ``end``, customer's local time.
    ``start`` after ``end`` spans midnight (21:00–08:00)."""

    channel: str
    start: dt.time
    end: dt.time


@dataclass(frozen=True)
class Policy:
    rules: tuple[CapRule, ...] = ()
    min_spacing: dt.timedelta | None = None  # between any two marketing messages
    quiet_hours: tuple[QuietHours, ...] = ()
    fallback_timezone: str = "UTC"  # for customers without a time zone
    in_app_counts: bool = False  # whether in-app messages count toward caps
    # A deferral that would end later than this after the send was due suppresses instead.
    defer_horizon: dt.timedelta = dt.timedelta(days=3)
    # Channels on which marketing needs an explicit opt-in; elsewhere no consent row is
    # enough (channels_app.reachability applies it, not the governor's rules).
    marketing_opt_in_channels: frozenset[str] = MARKETING_OPT_IN_DEFAULT

    @property
    def restricts_anything(self) -> bool:
        """False when there is nothing to enforce: no caps, no spacing, no quiet hours."""
        return bool(self.rules or self.min_spacing or self.quiet_hours)


@dataclass(frozen=True)
class PastMessage:
    """A message the customer received (or will: queued), as caps count it."""

    channel: str
    category: str
    at: dt.datetime
    journey_tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Candidate:
    """The send being decided."""

    channel: str
    category: str
    at: dt.datetime  # when it would go (aware)
    customer_timezone: str = ""
    journey_tags: frozenset[str] = frozenset()
    priority: int = 5


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    until: dt.datetime | None = None  # DEFER: the next moment every rule allows
    reason: str = ""  # human: names the rule and what it saw
    rule: str = ""  # the rule's name ("quiet hours sms", "min spacing", a CapRule name)
    counts: dict = field(default_factory=dict)  # what the rule counted, e.g. {"count": 3, "max": 3}
    # Every rule that held the send back, in the order met (not part of equality: the rule
    # and counts above are what a verdict is compared by).
    rules_hit: tuple[str, ...] = field(default=(), compare=False)

    @property
    def always_defers(self) -> bool:
        """Quiet hours alone, or a yield to a higher-priority send: the send waits
        whatever its node says to do on caps (it is not capped)."""
        return self.rule == YIELD_RULE or self.only_quiet_hours

    @property
    def only_quiet_hours(self) -> bool:
        """Held back by quiet hours alone (no cap or spacing): the node's on-cap choice
        does not apply."""
        hits = self.rules_hit or ((self.rule,) if self.rule else ())
        return bool(hits) and all(rule.startswith("quiet hours") for rule in hits)

    @property
    def allowed(self) -> bool:
        return self.decision == Decision.ALLOW
