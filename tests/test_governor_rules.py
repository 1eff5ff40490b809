"""The governor's pure decision: quiet hours, spacing, caps, their combination, DST.

Times are written in UTC with the local reading beside them; in June New York is on
EDT (UTC-4), so 22:00 local is 02:00 UTC the next day.
"""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

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
from orchestrator.governor.rules import TRANSACTIONAL_EXEMPT, history_window, judge

NY = "America/New_York"
HOUR, DAY = timedelta(hours=1), timedelta(days=1)

SMS_QUIET = QuietHours("sms", time(21, 0), time(8, 0))
ALL_3_PER_DAY = CapRule("Marketing, all channels, 24 h", Scope.ALL, 3, DAY)
SMS_1_PER_DAY = CapRule("SMS, 24 h", Scope.CHANNEL, 1, DAY, channels=frozenset({"sms"}))
NIGHT_QUIET = "quiet hours for sms (21:00–08:00 America/New_York) until 08:00"
QUIET_COUNTS = {"start": "21:00", "end": "08:00", "timezone": NY}


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def candidate(at, channel="sms", *, category="marketing", tz=NY, tags=()):
    return Candidate(channel, category, at, customer_timezone=tz, journey_tags=frozenset(tags))


def sent(at, channel="email", *, category="marketing", tags=()):
    return PastMessage(channel, category, at, journey_tags=frozenset(tags))


def quiet_policy(*quiet, **kwargs):
    return Policy(quiet_hours=quiet or (SMS_QUIET,), **kwargs)


def cap_policy(*rules, **kwargs):
    return Policy(rules=rules, **kwargs)


def cap_defer(rule, until, count, reason_tail):
    return Verdict(
        Decision.DEFER,
        until=until,
        reason=f"cap '{rule.name}': {count} of {rule.max_count} in the last {reason_tail}",
        rule=rule.name,
        counts={"count": count, "max": rule.max_count, "window_minutes": int(rule.window.total_seconds() // 60)},
    )


def quiet_defer(until, reason=NIGHT_QUIET, counts=QUIET_COUNTS, rule="quiet hours sms"):
    return Verdict(Decision.DEFER, until=until, reason=reason, rule=rule, counts=counts)


ALLOW = Verdict(Decision.ALLOW)

# --- Quiet hours --------------------------------------------------------------------


def test_allows_marketing_sms_at_noon_local():
    assert judge(quiet_policy(), candidate(utc(2025, 6, 10, 16, 0)), []) == ALLOW  # 12:00 EDT


def test_defers_marketing_sms_in_the_evening_until_eight_next_morning_local():
    verdict = judge(quiet_policy(), candidate(utc(2025, 6, 11, 2, 15)), [])  # 22:15 EDT
    assert verdict == quiet_defer(utc(2025, 6, 11, 12, 0))  # 08:00 EDT


def test_defers_marketing_sms_after_midnight_until_eight_the_same_morning():
    verdict = judge(quiet_policy(), candidate(utc(2025, 6, 11, 7, 0)), [])  # 03:00 EDT
    assert verdict == quiet_defer(utc(2025, 6, 11, 12, 0))


def test_quiet_hours_start_is_inside_and_end_is_outside():
    assert judge(quiet_policy(), candidate(utc(2025, 6, 11, 1, 0)), []).until == utc(2025, 6, 11, 12, 0)
    assert judge(quiet_policy(), candidate(utc(2025, 6, 11, 12, 0)), []) == ALLOW
    assert judge(quiet_policy(), candidate(utc(2025, 6, 11, 0, 59)), []) == ALLOW  # 20:59 EDT


def test_quiet_hours_of_another_channel_do_not_hold_an_email():
    assert judge(quiet_policy(), candidate(utc(2025, 6, 11, 2, 15), "email"), []) == ALLOW


def test_daytime_quiet_hours_not_spanning_midnight():
    lunch = QuietHours("push", time(12, 0), time(13, 30))
    policy = quiet_policy(lunch)
    verdict = judge(policy, candidate(utc(2025, 6, 10, 16, 45), "push"), [])  # 12:45 EDT
    assert verdict == quiet_defer(
        utc(2025, 6, 10, 17, 30),
        reason="quiet hours for push (12:00–13:30 America/New_York) until 13:30",
        counts={"start": "12:00", "end": "13:30", "timezone": NY},
        rule="quiet hours push",
    )
    assert judge(policy, candidate(utc(2025, 6, 10, 17, 30), "push"), []) == ALLOW


def test_quiet_hours_use_the_customer_half_hour_zone():
    verdict = judge(quiet_policy(), candidate(utc(2025, 6, 10, 16, 30), tz="Asia/Kolkata"), [])
    assert verdict.until == utc(2025, 6, 11, 2, 30)  # 22:00 IST -> 08:00 IST
    assert verdict.reason == "quiet hours for sms (21:00–08:00 Asia/Kolkata) until 08:00"


# --- Quiet hours across daylight-saving changes -------------------------------------


@pytest.mark.parametrize(
    ("tz", "evening", "eight_am"),
    [
        # US spring forward, 2025-03-09 02:00 EST -> 03:00 EDT: a night one hour shorter.
        (NY, utc(2025, 3, 9, 3, 0), utc(2025, 3, 9, 12, 0)),
        # US fall back, 2025-11-02 02:00 EDT -> 01:00 EST: a night one hour longer.
        (NY, utc(2025, 11, 2, 2, 0), utc(2025, 11, 2, 13, 0)),
        # EU spring forward, 2025-03-30 02:00 CET -> 03:00 CEST.
        ("Europe/Paris", utc(2025, 3, 29, 22, 0), utc(2025, 3, 30, 6, 0)),
        # EU fall back, 2025-10-26 03:00 CEST -> 02:00 CET.
        ("Europe/Paris", utc(2025, 10, 25, 21, 0), utc(2025, 10, 26, 7, 0)),
        # UK spring forward, 2025-03-30 01:00 GMT -> 02:00 BST.
        ("Europe/London", utc(2025, 3, 29, 22, 0), utc(2025, 3, 30, 7, 0)),
    ],
)
def test_quiet_hours_end_at_eight_local_across_dst_changes(tz, evening, eight_am):
    verdict = judge(quiet_policy(), candidate(evening, tz=tz), [])  # 22:00 or 23:00 local
    assert verdict.decision == Decision.DEFER
    assert verdict.until == eight_am
    assert verdict.reason == f"quiet hours for sms (21:00–08:00 {tz}) until 08:00"


def test_quiet_hours_ending_inside_the_spring_gap_end_at_the_change():
    policy = quiet_policy(QuietHours("sms", time(21, 0), time(2, 30)))
    # 23:00 EST; 02:30 does not exist on 2025-03-09: the clock goes 01:59:59 -> 03:00.
    verdict = judge(policy, candidate(utc(2025, 3, 9, 4, 0)), [])
    assert verdict.until == utc(2025, 3, 9, 7, 0)  # 03:00 EDT
    assert verdict.reason == "quiet hours for sms (21:00–02:30 America/New_York) until 03:00"
    assert judge(policy, candidate(verdict.until), []) == ALLOW


def test_quiet_hours_ending_in_the_repeated_hour_end_at_each_reading():
    policy = quiet_policy(QuietHours("sms", time(21, 0), time(1, 30)))
    # 2025-11-02 in New York: 01:00-01:59 shows twice, first EDT (05:xx UTC), then EST (06:xx UTC).
    assert judge(policy, candidate(utc(2025, 11, 2, 5, 10)), []).until == utc(2025, 11, 2, 5, 30)
    assert judge(policy, candidate(utc(2025, 11, 2, 5, 45)), []) == ALLOW  # 01:45 EDT
    # 01:10 EST, the wall clock is back inside the window: wait for the second 01:30.
    assert judge(policy, candidate(utc(2025, 11, 2, 6, 10)), []).until == utc(2025, 11, 2, 6, 30)


# --- Which time zone ----------------------------------------------------------------


def test_a_customer_without_time_zone_gets_the_policy_fallback():
    policy = quiet_policy(fallback_timezone="Europe/Paris")
    verdict = judge(policy, candidate(utc(2025, 6, 10, 20, 0), tz=""), [])  # 22:00 CEST
    assert verdict.until == utc(2025, 6, 11, 6, 0)
    assert verdict.reason == "quiet hours for sms (21:00–08:00 Europe/Paris) until 08:00"


def test_an_unknown_customer_time_zone_gets_the_policy_fallback():
    policy = quiet_policy(fallback_timezone="Europe/Paris")
    assert judge(policy, candidate(utc(2025, 6, 10, 20, 0), tz="Mars/Olympus"), []).until == utc(
        2025, 6, 11, 6, 0
    )


def test_an_unknown_fallback_gets_the_site_default(settings):
    settings.CHORUS_DEFAULT_TIMEZONE = "Asia/Tokyo"
    policy = quiet_policy(fallback_timezone="Nowhere/Special")
    verdict = judge(policy, candidate(utc(2025, 6, 10, 13, 0), tz=""), [])  # 22:00 JST
    assert verdict.until == utc(2025, 6, 10, 23, 0)  # 08:00 JST


# --- Minimum spacing ----------------------------------------------------------------

SPACED = Policy(min_spacing=timedelta(minutes=30))


def test_defers_until_thirty_minutes_after_the_last_marketing_message():
    verdict = judge(SPACED, candidate(utc(2025, 6, 10, 16, 12)), [sent(utc(2025, 6, 10, 16, 0))])
    assert verdict == Verdict(
        Decision.DEFER,
        until=utc(2025, 6, 10, 16, 30),
        reason="30 min spacing: last marketing message 12 min ago",
        rule="min spacing",
        counts={"minutes_since_last": 12, "min_spacing_minutes": 30},
    )


def test_allows_exactly_thirty_minutes_after_the_last_marketing_message():
    assert judge(SPACED, candidate(utc(2025, 6, 10, 16, 30)), [sent(utc(2025, 6, 10, 16, 0))]) == ALLOW


def test_spacing_measures_from_the_latest_message_of_any_channel():
    history = [sent(utc(2025, 6, 10, 15, 50), "push"), sent(utc(2025, 6, 10, 16, 5), "email")]
    assert judge(SPACED, candidate(utc(2025, 6, 10, 16, 12)), history).until == utc(2025, 6, 10, 16, 35)


def test_transactional_messages_do_not_start_the_spacing_clock():
    history = [sent(utc(2025, 6, 10, 16, 10), category="transactional")]
    assert judge(SPACED, candidate(utc(2025, 6, 10, 16, 12)), history) == ALLOW


def test_spacing_ignores_in_app_unless_in_app_counts():
    history = [sent(utc(2025, 6, 10, 16, 10), "in_app")]
    assert judge(SPACED, candidate(utc(2025, 6, 10, 16, 12)), history) == ALLOW
    counting = Policy(min_spacing=timedelta(minutes=30), in_app_counts=True)
    assert judge(counting, candidate(utc(2025, 6, 10, 16, 12)), history).until == utc(2025, 6, 10, 16, 40)


def test_an_in_app_candidate_is_not_spaced_unless_in_app_counts():
    history = [sent(utc(2025, 6, 10, 16, 10))]
    assert judge(SPACED, candidate(utc(2025, 6, 10, 16, 12), "in_app"), history) == ALLOW


def test_spacing_under_a_minute_is_told_in_seconds():
    verdict = judge(SPACED, candidate(utc(2025, 6, 10, 16, 0, 45)), [sent(utc(2025, 6, 10, 16, 0))])
    assert verdict.reason == "30 min spacing: last marketing message 45 s ago"


# --- Caps ---------------------------------------------------------------------------

# Three marketing messages on Tuesday 2025-06-10: 10:00, 14:00 and 18:00 EDT.
THREE_ON_TUESDAY = [
    sent(utc(2025, 6, 10, 14, 0), "email"),
    sent(utc(2025, 6, 10, 18, 0), "push"),
    sent(utc(2025, 6, 10, 22, 0), "sms"),
]
WEDNESDAY_9AM = utc(2025, 6, 11, 13, 0)


def test_allows_while_the_cap_has_room():
    assert judge(cap_policy(ALL_3_PER_DAY), candidate(WEDNESDAY_9AM), THREE_ON_TUESDAY[1:]) == ALLOW


def test_a_full_cap_defers_until_the_oldest_message_leaves_the_window():
    verdict = judge(cap_policy(ALL_3_PER_DAY), candidate(WEDNESDAY_9AM), THREE_ON_TUESDAY)
    assert verdict == cap_defer(ALL_3_PER_DAY, utc(2025, 6, 11, 14, 0), 3, "24 h")
    assert verdict.reason == "cap 'Marketing, all channels, 24 h': 3 of 3 in the last 24 h"
    assert verdict.counts == {"count": 3, "max": 3, "window_minutes": 1440}


def test_a_message_exactly_one_window_old_has_left_it():
    assert judge(cap_policy(ALL_3_PER_DAY), candidate(utc(2025, 6, 11, 14, 0)), THREE_ON_TUESDAY) == ALLOW


def test_a_message_after_the_candidate_is_not_in_its_window_yet():
    history = [*THREE_ON_TUESDAY[1:], sent(utc(2025, 6, 11, 13, 30))]
    assert judge(cap_policy(ALL_3_PER_DAY), candidate(WEDNESDAY_9AM), history) == ALLOW


def test_an_overfull_cap_waits_until_the_count_drops_below_the_max():
    # Lowered from 3 to 2 after three were sent: two must leave before there is room.
    two = CapRule("Marketing, all channels, 24 h", Scope.ALL, 2, DAY)
    verdict = judge(cap_policy(two), candidate(WEDNESDAY_9AM), THREE_ON_TUESDAY)
    assert verdict == cap_defer(two, utc(2025, 6, 11, 18, 0), 3, "24 h")


def test_transactional_messages_do_not_count_by_default():
    history = [*THREE_ON_TUESDAY[1:], sent(utc(2025, 6, 10, 23, 0), category="transactional")]
    assert judge(cap_policy(ALL_3_PER_DAY), candidate(WEDNESDAY_9AM), history) == ALLOW


def test_transactional_messages_count_when_the_rule_says_so():
    rule = CapRule("All, 24 h", Scope.ALL, 3, DAY, counts_transactional=True)
    history = [*THREE_ON_TUESDAY[1:], sent(utc(2025, 6, 10, 23, 0), category="transactional")]
    assert judge(cap_policy(rule), candidate(WEDNESDAY_9AM), history) == cap_defer(
        rule, utc(2025, 6, 11, 18, 0), 3, "24 h"
    )


def test_transactional_candidates_pass_a_full_cap_spacing_and_quiet_hours():
    policy = Policy(rules=(ALL_3_PER_DAY,), min_spacing=HOUR, quiet_hours=(SMS_QUIET,))
    night = utc(2025, 6, 11, 2, 30)  # 22:30 EDT, 30 minutes after the last message
    verdict = judge(policy, candidate(night, category="transactional"), THREE_ON_TUESDAY)
    assert verdict == Verdict(Decision.ALLOW, reason=TRANSACTIONAL_EXEMPT)


def test_a_channel_cap_counts_only_its_channel():
    history = [sent(utc(2025, 6, 10, 14, 0), "email"), sent(utc(2025, 6, 10, 22, 0), "sms")]
    policy = cap_policy(SMS_1_PER_DAY)
    assert judge(policy, candidate(WEDNESDAY_9AM, "email"), history) == ALLOW
    assert judge(policy, candidate(WEDNESDAY_9AM, "sms"), history) == cap_defer(
        SMS_1_PER_DAY, utc(2025, 6, 11, 22, 0), 1, "24 h"
    )
    assert judge(policy, candidate(WEDNESDAY_9AM, "sms"), history[:1]) == ALLOW


def test_a_channel_set_cap_counts_its_channels_together():
    rule = CapRule("Mobile, 24 h", Scope.CHANNELS, 2, DAY, channels=frozenset({"sms", "push"}))
    policy = cap_policy(rule)
    assert judge(policy, candidate(WEDNESDAY_9AM, "push"), THREE_ON_TUESDAY) == cap_defer(
        rule, utc(2025, 6, 11, 18, 0), 2, "24 h"
    )
    assert judge(policy, candidate(WEDNESDAY_9AM, "email"), THREE_ON_TUESDAY) == ALLOW


def test_a_tag_cap_counts_only_journeys_carrying_the_tag():
    rule = CapRule("Growth team, 7 days", Scope.TAG, 2, 7 * DAY, tag="growth")
    history = [
        sent(utc(2025, 6, 5, 14, 0), tags={"growth", "onboarding"}),
        sent(utc(2025, 6, 8, 14, 0), tags={"retention"}),
        sent(utc(2025, 6, 9, 14, 0), "push", tags={"growth"}),
    ]
    policy = cap_policy(rule)
    assert judge(policy, candidate(WEDNESDAY_9AM, tags={"growth"}), history) == cap_defer(
        rule, utc(2025, 6, 12, 14, 0), 2, "7 days"
    )
    assert judge(policy, candidate(WEDNESDAY_9AM, tags={"retention"}), history) == ALLOW


def test_in_app_neither_counts_nor_is_capped_unless_in_app_counts():
    history = [*THREE_ON_TUESDAY[1:], sent(utc(2025, 6, 10, 23, 0), "in_app")]
    policy = cap_policy(ALL_3_PER_DAY)
    assert judge(policy, candidate(WEDNESDAY_9AM), history) == ALLOW
    assert judge(policy, candidate(WEDNESDAY_9AM, "in_app"), THREE_ON_TUESDAY) == ALLOW


def test_in_app_counts_and_is_capped_when_in_app_counts():
    history = [*THREE_ON_TUESDAY[1:], sent(utc(2025, 6, 10, 23, 0), "in_app")]
    policy = cap_policy(ALL_3_PER_DAY, in_app_counts=True)
    expected = cap_defer(ALL_3_PER_DAY, utc(2025, 6, 11, 18, 0), 3, "24 h")
    assert judge(policy, candidate(WEDNESDAY_9AM), history) == expected
    assert judge(policy, candidate(WEDNESDAY_9AM, "in_app"), history) == expected


def test_a_channel_rule_naming_in_app_counts_it_whatever_the_setting():
    rule = CapRule("In-app, 24 h", Scope.CHANNEL, 1, DAY, channels=frozenset({"in_app"}))
    history = [sent(utc(2025, 6, 10, 23, 0), "in_app")]
    assert judge(cap_policy(rule), candidate(WEDNESDAY_9AM, "in_app"), history) == cap_defer(
        rule, utc(2025, 6, 11, 23, 0), 1, "24 h"
    )


def test_every_rule_must_pass_and_the_latest_release_wins():
    policy = cap_policy(ALL_3_PER_DAY, SMS_1_PER_DAY)
    # ALL is full until 14:00 UTC; the SMS cap (the 22:00 sms) until 22:00 UTC.
    assert judge(policy, candidate(WEDNESDAY_9AM), THREE_ON_TUESDAY) == cap_defer(
        SMS_1_PER_DAY, utc(2025, 6, 11, 22, 0), 1, "24 h"
    )


def test_a_cap_of_zero_suppresses():
    rule = CapRule("No SMS", Scope.CHANNEL, 0, DAY, channels=frozenset({"sms"}))
    verdict = judge(cap_policy(rule), candidate(WEDNESDAY_9AM), [])
    assert verdict == Verdict(
        Decision.SUPPRESS,
        reason="cap 'No SMS': 0 of 0 in the last 24 h; it allows no message at all",
        rule="No SMS",
        counts={"count": 0, "max": 0, "window_minutes": 1440},
    )


# --- Rules together -----------------------------------------------------------------


def test_quiet_hours_ending_on_a_full_cap_defer_further():
    rule = CapRule("Marketing, all channels, 24 h", Scope.ALL, 2, DAY)
    policy = Policy(rules=(rule,), quiet_hours=(SMS_QUIET,))
    history = [
        sent(utc(2025, 6, 10, 16, 0)),  # Tuesday 12:00 EDT
        sent(utc(2025, 6, 11, 12, 0)),  # a send already booked for Wednesday 08:00 EDT
    ]
    verdict = judge(policy, candidate(utc(2025, 6, 11, 2, 0)), history)  # Tuesday 22:00 EDT
    # At 08:00 the cap holds both; it opens when Tuesday's noon message leaves, at 12:00.
    assert verdict == Verdict(
        Decision.DEFER,
        until=utc(2025, 6, 11, 16, 0),
        reason=f"{NIGHT_QUIET}; then cap 'Marketing, all channels, 24 h': 2 of 2 in the last 24 h",
        rule="Marketing, all channels, 24 h",
        counts={"count": 2, "max": 2, "window_minutes": 1440},
    )


def test_a_cap_opening_inside_quiet_hours_waits_for_their_end():
    rule = CapRule("SMS, 12 h", Scope.CHANNEL, 1, 12 * HOUR, channels=frozenset({"sms"}))
    policy = Policy(rules=(rule,), quiet_hours=(SMS_QUIET,))
    history = [sent(utc(2025, 6, 10, 14, 0), "sms")]  # 10:00 EDT: room again at 22:00, quiet
    verdict = judge(policy, candidate(utc(2025, 6, 11, 0, 0)), history)  # 20:00 EDT
    assert verdict == quiet_defer(
        utc(2025, 6, 11, 12, 0), reason=f"cap 'SMS, 12 h': 1 of 1 in the last 12 h; then {NIGHT_QUIET}"
    )


def test_quiet_hours_and_a_cap_blocking_at_once_defer_to_the_later():
    policy = Policy(rules=(ALL_3_PER_DAY,), quiet_hours=(SMS_QUIET,))
    history = [sent(utc(2025, 6, 10, 13, 0)), sent(utc(2025, 6, 10, 13, 30)), sent(utc(2025, 6, 10, 14, 0))]
    verdict = judge(policy, candidate(utc(2025, 6, 11, 11, 0)), history)  # 07:00 EDT
    # Quiet hours end at 08:00 EDT (12:00 UTC); the cap opens at 09:00 EDT (13:00 UTC).
    assert verdict == cap_defer(ALL_3_PER_DAY, utc(2025, 6, 11, 13, 0), 3, "24 h")


def test_a_deferral_beyond_the_horizon_suppresses_naming_the_rule_and_counts():
    weekly = CapRule("Marketing, all channels, 7 days", Scope.ALL, 2, 7 * DAY)
    policy = Policy(rules=(weekly,), defer_horizon=DAY)
    history = [sent(utc(2025, 6, 8, 16, 0)), sent(utc(2025, 6, 9, 16, 0))]
    verdict = judge(policy, candidate(WEDNESDAY_9AM), history)
    assert verdict == Verdict(
        Decision.SUPPRESS,
        reason="cap 'Marketing, all channels, 7 days': 2 of 2 in the last 7 days; "
        "next allowed 2025-06-15 12:00 America/New_York, beyond the 24 h defer horizon",
        rule="Marketing, all channels, 7 days",
        counts={"count": 2, "max": 2, "window_minutes": 10080},
    )


def test_a_deferral_ending_exactly_at_the_horizon_is_kept():
    policy = Policy(rules=(ALL_3_PER_DAY,), defer_horizon=HOUR)
    verdict = judge(policy, candidate(utc(2025, 6, 11, 13, 0)), THREE_ON_TUESDAY)
    assert (verdict.decision, verdict.until) == (Decision.DEFER, utc(2025, 6, 11, 14, 0))


def test_quiet_hours_past_the_horizon_suppress():
    policy = quiet_policy(defer_horizon=HOUR)
    verdict = judge(policy, candidate(utc(2025, 6, 11, 2, 15)), [])  # 22:15 EDT
    assert verdict == Verdict(
        Decision.SUPPRESS,
        reason=f"{NIGHT_QUIET}; next allowed 2025-06-11 08:00 America/New_York, beyond the 1 h defer horizon",
        rule="quiet hours sms",
        counts=QUIET_COUNTS,
    )


def test_the_deferral_moment_is_returned_in_utc_whatever_the_history_zone():
    tokyo = ZoneInfo("Asia/Tokyo")
    history = [sent(m.at.astimezone(tokyo), m.channel) for m in THREE_ON_TUESDAY]
    verdict = judge(cap_policy(ALL_3_PER_DAY), candidate(WEDNESDAY_9AM.astimezone(tokyo)), history)
    assert verdict.until == utc(2025, 6, 11, 14, 0)
    assert verdict.until.tzinfo is UTC


def test_a_naive_moment_is_refused():
    with pytest.raises(ValueError, match="aware"):
        judge(Policy(), candidate(datetime(2025, 6, 10, 22, 15)), [])


# --- How far back to read -----------------------------------------------------------


def test_history_window_is_the_longest_rule_window_or_spacing():
    weekly = CapRule("weekly", Scope.ALL, 8, 7 * DAY)
    assert history_window(Policy(rules=(ALL_3_PER_DAY, weekly), min_spacing=HOUR)) == 7 * DAY
    assert history_window(Policy(min_spacing=timedelta(minutes=30))) == timedelta(minutes=30)
    assert history_window(Policy()) == timedelta(0)


def test_quiet_hours_ending_in_an_hour_repeated_across_midnight():
    # St John's fell back at 00:01 NDT on 2000-10-29 to 23:01 NST on the 28th: at 00:00:30
    # the clock is about to show Saturday 23:01-23:59 again, 23:30 among them.
    policy = quiet_policy(QuietHours("sms", time(0, 0), time(23, 30)))
    verdict = judge(policy, candidate(utc(2000, 10, 29, 2, 30, 30), tz="America/St_Johns"), [])
    assert verdict.until == utc(2000, 10, 29, 3, 0)  # 23:30 NST, Saturday's date
