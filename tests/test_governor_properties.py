"""Properties of the governor's decision over generated moments, zones, policies and histories.

Half the moments are drawn within a day and a half of a real daylight-saving change in
the customer's zone, quiet-hour ends favour the small hours, and one property puts every
send right at a change with the window ending in the skipped or repeated wall times, so
the DST corners are met on every run rather than by luck. The oracles below restate the
rules independently of ``rules.py``.
"""

from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from django.conf import settings
from hypothesis import event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from orchestrator.governor.policy import (
    Candidate,
    CapRule,
    Decision,
    PastMessage,
    Policy,
    QuietHours,
    Scope,
)
from orchestrator.governor.rules import judge

ZONES = (
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",  # UTC-3:30, DST
    "America/Santiago",  # southern-hemisphere DST at midnight
    "America/Sao_Paulo",  # DST until 2019
    "Europe/London",
    "Europe/Paris",
    "Africa/Casablanca",  # DST suspended each Ramadan
    "Asia/Kolkata",  # +5:30, no DST
    "Asia/Kathmandu",  # +5:45
    "Asia/Tehran",  # +3:30, DST until 2022
    "Australia/Adelaide",  # +9:30, DST
    "Australia/Lord_Howe",  # half-hour DST
    "Pacific/Chatham",  # +12:45, DST at 02:45
)
CHANNELS = ("email", "sms", "push", "in_app")
TAGS = ("growth", "retention")
MINUTE = timedelta(minutes=1)
FIRST, LAST = datetime(2000, 1, 1), datetime(2040, 12, 31)

# Enough to meet the DST corners every run, few enough for the file to take seconds.
EXAMPLES = hypothesis_settings(max_examples=200, deadline=None)
FEW_EXAMPLES = hypothesis_settings(max_examples=60, deadline=None)


# --- Daylight-saving changes, found by scanning each zone's offsets ------------------


@cache
def transitions(zone_name: str, year: int) -> tuple[datetime, ...]:
    """The instants (to the second) at which the zone's UTC offset changed in `year`."""
    zone = ZoneInfo(zone_name)
    day = datetime(year, 1, 1, tzinfo=UTC)
    found = []
    while day.year == year:
        following = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
            found.append(_bisect_change(day, following, zone))
        day = following
    return tuple(found)


def _bisect_change(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


# --- Strategies ---------------------------------------------------------------------

anywhere = st.datetimes(min_value=FIRST, max_value=LAST, timezones=st.just(UTC))


@st.composite
def near_a_change(draw, zone_name, hours=36):
    """A moment within `hours` of one of the zone's clock changes in a drawn year."""
    changes = transitions(zone_name, draw(st.integers(2000, 2040)))
    if not changes:
        return draw(anywhere)
    offset = draw(st.integers(-hours * 3600, hours * 3600))
    return draw(st.sampled_from(changes)) + timedelta(seconds=offset)


# Zones that changed their clocks around 2010 or 2030 (not UTC, Kolkata, Kathmandu).
DST_ZONES = tuple(z for z in ZONES if any(transitions(z, year) for year in (2010, 2030)))


def changes_between(zone: ZoneInfo, start: datetime, end: datetime) -> bool:
    years = range(start.year, end.year + 1)
    return any(start < change <= end for year in years for change in transitions(zone.key, year))


def wall_times():
    # Skipped or repeated wall times of the zones above, and any minute of the day.
    near_changes = st.sampled_from([time(h, m) for h in (23, 0, 1, 2, 3) for m in (0, 15, 30, 45)])
    any_minute = st.integers(0, 1439).map(lambda m: time(m // 60, m % 60))
    return st.one_of(near_changes, any_minute)


def _nonempty(quiet: QuietHours) -> QuietHours:
    """The admin refuses start == end; nudge such a draw an hour later instead of discarding it."""
    if quiet.start != quiet.end:
        return quiet
    return QuietHours(quiet.channel, quiet.start, time((quiet.end.hour + 1) % 24, quiet.end.minute))


quiet_hours = st.builds(QuietHours, st.sampled_from(CHANNELS), wall_times(), wall_times()).map(_nonempty)


@st.composite
def cap_rules(draw):
    scope = draw(st.sampled_from(Scope))
    channels = frozenset()
    if scope == Scope.CHANNEL:
        channels = frozenset({draw(st.sampled_from(CHANNELS))})
    elif scope == Scope.CHANNELS:
        channels = frozenset(draw(st.sets(st.sampled_from(CHANNELS), min_size=2)))
    return CapRule(
        name=f"rule {draw(st.integers(0, 99))}",
        scope=scope,
        max_count=draw(st.integers(1, 4)),
        window=draw(st.sampled_from([30 * MINUTE, 60 * MINUTE, 12 * 60 * MINUTE, 1440 * MINUTE, 7 * 1440 * MINUTE])),
        channels=channels,
        tag=draw(st.sampled_from(TAGS)) if scope == Scope.TAG else "",
        counts_transactional=draw(st.booleans()),
    )


policies = st.builds(
    Policy,
    rules=st.lists(cap_rules(), max_size=3).map(tuple),
    min_spacing=st.sampled_from([None, 15 * MINUTE, 30 * MINUTE, 120 * MINUTE]),
    quiet_hours=st.lists(quiet_hours, max_size=3).map(tuple),
    fallback_timezone=st.sampled_from([*ZONES, "Bad/Zone"]),
    in_app_counts=st.booleans(),
    defer_horizon=st.sampled_from([60 * MINUTE, 1440 * MINUTE, 3 * 1440 * MINUTE, 30 * 1440 * MINUTE]),
)
tag_sets = st.frozensets(st.sampled_from(TAGS))
ANY_CATEGORY = st.sampled_from(["marketing", "marketing", "marketing", "transactional"])


@st.composite
def candidates(draw, category=ANY_CATEGORY):
    zone_name = draw(st.sampled_from(ZONES))
    at = draw(st.one_of(anywhere, near_a_change(zone_name)))
    # Now and then the customer has no zone, or a broken one: the policy's fallback applies.
    customer_tz = draw(st.sampled_from([zone_name] * 8 + ["", "Bad/Zone"]))
    return Candidate(draw(st.sampled_from(CHANNELS)), draw(category), at, customer_tz, draw(tag_sets))


@st.composite
def histories(draw, at):
    # Mostly the past week; a few already booked for the next two days.
    offsets = st.integers(-2 * 86400, 8 * 86400).map(lambda s: timedelta(seconds=s))
    message = st.builds(
        lambda channel, category, ago, tags: PastMessage(channel, category, at - ago, tags),
        st.sampled_from(CHANNELS),
        st.sampled_from(["marketing", "marketing", "transactional"]),
        offsets,
        tag_sets,
    )
    return draw(st.lists(message, max_size=12))


@st.composite
def cases(draw, category=ANY_CATEGORY):
    candidate = draw(candidates(category))
    return draw(policies), candidate, draw(histories(candidate.at))


marketing_cases = cases(category=st.just("marketing"))


# --- Oracles ------------------------------------------------------------------------


def zone_of(policy: Policy, candidate: Candidate) -> ZoneInfo:
    for name in (candidate.customer_timezone, policy.fallback_timezone):
        if name in ZONES:
            return ZoneInfo(name)
    return ZoneInfo(settings.CHORUS_DEFAULT_TIMEZONE)


def inside(quiet: QuietHours, wall: time) -> bool:
    if quiet.start < quiet.end:
        return quiet.start <= wall < quiet.end
    return wall >= quiet.start or wall < quiet.end


def is_quiet(policy: Policy, candidate: Candidate, moment: datetime) -> bool:
    wall = moment.astimezone(zone_of(policy, candidate)).time()
    return any(inside(q, wall) for q in policy.quiet_hours if q.channel == candidate.channel)


def window_end_by_stepping(quiet: QuietHours, zone: ZoneInfo, start: datetime) -> datetime:
    """The first whole minute after `start` (inside quiet hours) at which they end.

    They end when the wall clock, moving forward, leaves the window (at `end`, or just
    past it when a spring-forward change skips it), or shows `end` itself. A fall-back
    change can also drop the clock out backwards (01:59-00:59 at 01:59 EDT, falling back
    to 01:00 EST): that is not the window's end, and quiet hours wait for it.
    """
    moment, before = start.replace(second=0, microsecond=0), _minute_of_day(start, zone)
    for _ in range(3 * 1440):
        moment += MINUTE
        wall, now = moment.astimezone(zone).time(), _minute_of_day(moment, zone)
        forward = (now - before) % 1440 < 720
        if inside(quiet, _wall(before)) and not inside(quiet, wall) and (forward or wall == quiet.end):
            return moment
        before = now
    raise AssertionError("no window end within three days")


def _minute_of_day(moment: datetime, zone: ZoneInfo) -> int:
    local = moment.astimezone(zone)
    return local.hour * 60 + local.minute


def _wall(minute_of_day: int) -> time:
    return time(minute_of_day // 60, minute_of_day % 60)


def counted_channel(policy: Policy, channel: str) -> bool:
    return channel != "in_app" or policy.in_app_counts


def in_scope(rule: CapRule, policy: Policy, channel: str, tags: frozenset[str]) -> bool:
    if rule.scope in (Scope.CHANNEL, Scope.CHANNELS):
        return channel in rule.channels
    if rule.scope == Scope.TAG and rule.tag not in tags:
        return False
    return counted_channel(policy, channel)


def counted(rule: CapRule, policy: Policy, message: PastMessage) -> bool:
    category_counts = message.category == "marketing" or rule.counts_transactional
    return category_counts and in_scope(rule, policy, message.channel, message.journey_tags)


def at(candidate: Candidate, moment: datetime) -> Candidate:
    return Candidate(
        candidate.channel, candidate.category, moment, candidate.customer_timezone, candidate.journey_tags
    )


# --- Properties ---------------------------------------------------------------------


@EXAMPLES
@given(marketing_cases)
def test_marketing_is_never_allowed_inside_its_channel_quiet_hours(case):
    policy, candidate, history = case
    if is_quiet(policy, candidate, candidate.at):
        event("inside quiet hours")
        assert judge(policy, candidate, history).decision != Decision.ALLOW


@EXAMPLES
@given(marketing_cases)
def test_a_deferral_ends_at_an_allowed_moment_outside_quiet_hours_within_the_horizon(case):
    policy, candidate, history = case
    verdict = judge(policy, candidate, history)
    event(verdict.decision)
    if verdict.decision != Decision.DEFER:
        return
    assert candidate.at < verdict.until <= candidate.at + policy.defer_horizon
    assert not is_quiet(policy, candidate, verdict.until)
    assert judge(policy, at(candidate, verdict.until), history).decision == Decision.ALLOW
    # ...and not a moment too late: just before it, something still blocks.
    earlier = verdict.until - timedelta(microseconds=1)
    assert judge(policy, at(candidate, earlier), history).decision != Decision.ALLOW


@EXAMPLES
@given(marketing_cases)
def test_an_allowed_send_never_overfills_a_cap_nor_breaks_spacing(case):
    policy, candidate, history = case
    if judge(policy, candidate, history).decision != Decision.ALLOW:
        return
    sent = PastMessage(candidate.channel, candidate.category, candidate.at, candidate.journey_tags)
    after = [*history, sent]
    for rule in policy.rules:
        if in_scope(rule, policy, candidate.channel, candidate.journey_tags):
            window = [m for m in after if candidate.at - rule.window < m.at <= candidate.at]
            assert sum(counted(rule, policy, m) for m in window) <= rule.max_count
    if policy.min_spacing and counted_channel(policy, candidate.channel):
        recent = candidate.at - policy.min_spacing
        assert not any(
            recent < m.at <= candidate.at and m.category == "marketing" and counted_channel(policy, m.channel)
            for m in history
        )


@EXAMPLES
@given(marketing_cases, st.floats(0, 1))
def test_no_earlier_moment_was_allowed(case, fraction):
    """Everything between the send's moment and its deferral (or its horizon, when it
    was suppressed) is blocked, unless the clocks changed in between (see above)."""
    policy, candidate, history = case
    verdict = judge(policy, candidate, history)
    if verdict.decision == Decision.ALLOW:
        return
    last = verdict.until or candidate.at + policy.defer_horizon
    moment = candidate.at + (last - candidate.at) * fraction
    if moment == verdict.until or changes_between(zone_of(policy, candidate), candidate.at, moment):
        return
    assert judge(policy, at(candidate, moment), history).decision != Decision.ALLOW


@st.composite
def dst_corners(draw):
    """A send in the hours around a clock change, inside quiet hours ending near it."""
    zone_name = draw(st.sampled_from(DST_ZONES))
    zone = ZoneInfo(zone_name)
    changes = transitions(zone_name, draw(st.integers(2000, 2040)))
    change = draw(st.sampled_from(changes)) if changes else draw(anywhere)
    at = change + timedelta(seconds=draw(st.integers(-6 * 3600, 3 * 3600)))
    # The end lands on, in or around the skipped or repeated wall times.
    end = _shift((change - timedelta(microseconds=1)).astimezone(zone), draw(st.integers(-90, 90)))
    start = _shift(at.astimezone(zone), -draw(st.integers(0, 12 * 60)))
    candidate = Candidate("sms", "marketing", at, zone_name)
    return _nonempty(QuietHours("sms", start, end)), candidate


def _shift(local: datetime, minutes: int) -> time:
    wall = local.hour * 60 + local.minute + minutes
    return time(wall % 1440 // 60, wall % 60)


@hypothesis_settings(max_examples=300, deadline=None)
@given(dst_corners())
def test_quiet_hours_defer_to_the_first_reading_of_their_end_across_dst(corner):
    quiet, candidate = corner
    policy = Policy(quiet_hours=(quiet,), defer_horizon=timedelta(days=2))
    verdict = judge(policy, candidate, [])
    event(verdict.decision)
    if verdict.decision == Decision.DEFER:
        zone = ZoneInfo(candidate.customer_timezone)
        assert verdict.until == window_end_by_stepping(quiet, zone, candidate.at)


@FEW_EXAMPLES
@given(cases(category=st.just("transactional")))
def test_transactional_sends_are_always_allowed(case):
    assert judge(*case).decision == Decision.ALLOW


@FEW_EXAMPLES
@given(marketing_cases)
def test_every_hold_names_its_rule_and_reason(case):
    verdict = judge(*case)
    if verdict.decision == Decision.ALLOW:
        assert (verdict.until, verdict.rule, verdict.reason) == (None, "", "")
    else:
        assert verdict.rule and verdict.reason
        assert (verdict.until is None) == (verdict.decision == Decision.SUPPRESS)
