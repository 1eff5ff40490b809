"""The frequency policy as admins store it: validation, shipped defaults, and loading it for sends."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from orchestrator.governor import loading
from orchestrator.governor.loading import GENERATION_KEY, forget_policy, load_policy
from orchestrator.governor.models import (
    FrequencyRule,
    GovernorSettings,
    QuietHoursRule,
    ScopeChoices,
)
from orchestrator.governor.policy import CapRule, Policy, QuietHours, Scope

pytestmark = [pytest.mark.django_db, pytest.mark.governed]

DEFAULT_POLICY = Policy(
    rules=(
        CapRule(name="Marketing, all channels, 24 h", scope=Scope.ALL, max_count=3, window=dt.timedelta(hours=24)),
        CapRule(name="Marketing, all channels, 7 days", scope=Scope.ALL, max_count=8, window=dt.timedelta(days=7)),
        CapRule(
            name="Marketing SMS, 24 h", scope=Scope.CHANNEL, max_count=1, window=dt.timedelta(hours=24),
            channels=frozenset({"sms"}),
        ),
    ),
    min_spacing=dt.timedelta(minutes=30),
    quiet_hours=(
        QuietHours(channel="push", start=dt.time(21), end=dt.time(8)),
        QuietHours(channel="sms", start=dt.time(21), end=dt.time(8)),
    ),
    fallback_timezone="UTC",
    in_app_counts=False,
    defer_horizon=dt.timedelta(hours=72),
)


@pytest.fixture(autouse=True)
def _fresh_policy_cache():
    forget_policy()
    yield
    forget_policy()


@pytest.fixture
def clock(monkeypatch):
    """The loader's monotonic clock, moved by hand."""
    now = {"t": 1000.0}
    monkeypatch.setattr(loading._cached, "clock", lambda: now["t"])
    return now


def rule(**fields) -> FrequencyRule:
    values = {"name": "Test rule", "scope": Scope.ALL, "channels": [], "tag": "", "max_count": 3, "window_minutes": 60}
    return FrequencyRule(**{**values, **fields})


def errors_of(obj) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as excinfo:
        obj.full_clean()
    return excinfo.value.message_dict


# --- Validation -----------------------------------------------------------------------------


def test_scope_choices_are_the_policy_scopes():
    assert set(ScopeChoices.values) == {s.value for s in Scope}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"scope": Scope.CHANNEL, "channels": []}, "channels", "exactly one channel"),
        ({"scope": Scope.CHANNEL, "channels": ["sms", "email"]}, "channels", "exactly one channel"),
        ({"scope": Scope.CHANNELS, "channels": ["sms"]}, "channels", "at least two channels"),
        ({"scope": Scope.CHANNELS, "channels": ["sms", "sms"]}, "channels", "at least two channels"),
        ({"scope": Scope.ALL, "channels": ["sms"]}, "channels", "leave the channels empty"),
        ({"scope": Scope.TAG, "tag": "growth", "channels": ["email"]}, "channels", "leave the channels empty"),
        ({"scope": Scope.CHANNEL, "channels": ["fax"]}, "channels", "Unknown channel(s): fax"),
        ({"scope": Scope.CHANNEL, "channels": "sms"}, "channels", "A list of channel names"),
        ({"scope": Scope.TAG, "tag": "  "}, "tag", "needs the tag"),
        ({"scope": Scope.ALL, "tag": "growth"}, "tag", "Only a tag rule has a tag"),
        ({"max_count": 0}, "max_count", "greater than or equal to 1"),
        ({"window_minutes": 0}, "window_minutes", "greater than or equal to 1"),
        ({"window_minutes": 43_201}, "window_minutes", "less than or equal to 43200"),
        ({"scope": "weekly"}, "scope", "not a valid choice"),
    ],
)
def test_inconsistent_frequency_rule_is_refused_on_the_field_at_fault(fields, field, message):
    errors = errors_of(rule(**fields))
    assert list(errors) == [field]
    assert message in errors[field][0]


def test_rule_names_are_unique():
    rule(name="Daily").save()
    assert list(errors_of(rule(name="Daily"))) == ["name"]


@pytest.mark.parametrize(
    "fields",
    [
        {"scope": Scope.ALL},
        {"scope": Scope.CHANNEL, "channels": ["sms"]},
        {"scope": Scope.CHANNELS, "channels": ["push", "email"]},
        {"scope": Scope.TAG, "tag": "growth"},
        {"window_minutes": 43_200},
        {"window_minutes": 1, "max_count": 1},
    ],
)
def test_consistent_frequency_rules_are_valid(fields):
    rule(**fields).full_clean()


def test_channels_are_stored_once_each_in_channel_order():
    candidate = rule(scope=Scope.CHANNELS, channels=["push", "email", "push"])
    candidate.full_clean()
    assert candidate.channels == ["email", "push"]


def test_tag_is_stripped():
    candidate = rule(scope=Scope.TAG, tag="  growth ")
    candidate.full_clean()
    assert candidate.tag == "growth"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_count": 3, "window_minutes": 1440}, "at most 3 marketing messages per 24 h across all channels"),
        ({"max_count": 8, "window_minutes": 10080}, "at most 8 marketing messages per 7 days across all channels"),
        ({"scope": Scope.CHANNEL, "channels": ["sms"], "max_count": 1, "window_minutes": 1440},
         "at most 1 marketing message per 24 h on SMS"),
        ({"scope": Scope.CHANNELS, "channels": ["email", "sms", "push"], "max_count": 2, "window_minutes": 90},
         "at most 2 marketing messages per 90 min across Email, SMS and Push"),
        ({"scope": Scope.TAG, "tag": "growth", "max_count": 1, "window_minutes": 60, "counts_transactional": True},
         "at most 1 marketing message per 1 h in journeys tagged “growth”, transactional ones counted too"),
    ],
)
def test_rule_reads_in_words(fields, expected):
    assert rule(**fields).describe() == expected


def test_database_refuses_a_cap_of_zero_even_past_validation():
    with pytest.raises(IntegrityError), transaction.atomic():
        rule(max_count=0).save()


def test_database_refuses_a_window_beyond_30_days():
    with pytest.raises(IntegrityError), transaction.atomic():
        rule(window_minutes=43_201).save()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"fallback_timezone": "Mars/Olympus_Mons"}, "fallback_timezone"),
        ({"defer_horizon_hours": 0}, "defer_horizon_hours"),
        ({"defer_horizon_hours": 721}, "defer_horizon_hours"),
        ({"min_spacing_minutes": 1441}, "min_spacing_minutes"),
    ],
)
def test_invalid_governor_settings_are_refused_on_the_field_at_fault(fields, field):
    row = GovernorSettings.get()
    for name, value in fields.items():
        setattr(row, name, value)
    assert list(errors_of(row)) == [field]


def test_governor_settings_are_a_single_row():
    assert GovernorSettings.get().pk == 1
    GovernorSettings.objects.all().delete()
    assert GovernorSettings.get().pk == 1
    assert GovernorSettings.objects.count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        GovernorSettings.objects.create(id=2)


def test_quiet_hours_starting_when_they_end_are_refused_on_the_end():
    row = QuietHoursRule(channel="email", start=dt.time(9), end=dt.time(9))
    errors = errors_of(row)
    assert list(errors) == ["end"]
    assert "must differ from the start" in errors["end"][0]
    with pytest.raises(IntegrityError), transaction.atomic():
        row.save()


def test_quiet_hours_are_one_rule_per_channel():
    assert list(errors_of(QuietHoursRule(channel="sms", start=dt.time(22), end=dt.time(7)))) == ["channel"]


# --- Defaults -------------------------------------------------------------------------------


def test_migrations_ship_the_default_policy():
    assert list(
        FrequencyRule.objects.order_by("pk").values_list(
            "name", "enabled", "scope", "channels", "tag", "max_count", "window_minutes", "counts_transactional"
        )
    ) == [
        ("Marketing, all channels, 24 h", True, "all", [], "", 3, 1440, False),
        ("Marketing, all channels, 7 days", True, "all", [], "", 8, 10080, False),
        ("Marketing SMS, 24 h", True, "channel", ["sms"], "", 1, 1440, False),
    ]
    assert GovernorSettings.objects.values(
        "id", "min_spacing_minutes", "fallback_timezone", "in_app_counts", "defer_horizon_hours"
    ).get() == {"id": 1, "min_spacing_minutes": 30, "fallback_timezone": "UTC", "in_app_counts": False, "defer_horizon_hours": 72}
    assert list(QuietHoursRule.objects.order_by("channel").values_list("channel", "enabled", "start", "end")) == [
        ("push", True, dt.time(21), dt.time(8)),
        ("sms", True, dt.time(21), dt.time(8)),
    ]


def test_default_rows_pass_their_own_validation():
    for row in [*FrequencyRule.objects.all(), GovernorSettings.get(), *QuietHoursRule.objects.all()]:
        row.full_clean()


# --- Loading --------------------------------------------------------------------------------


def test_load_policy_returns_the_default_policy_in_three_queries(django_assert_num_queries):
    with django_assert_num_queries(3):
        assert load_policy() == DEFAULT_POLICY


def test_load_policy_leaves_out_disabled_rules_and_quiet_hours():
    FrequencyRule.objects.filter(name="Marketing SMS, 24 h").update(enabled=False)
    QuietHoursRule.objects.filter(channel="push").update(enabled=False)

    policy = load_policy()

    assert [r.name for r in policy.rules] == ["Marketing, all channels, 24 h", "Marketing, all channels, 7 days"]
    assert policy.quiet_hours == (QuietHours(channel="sms", start=dt.time(21), end=dt.time(8)),)


def test_load_policy_reads_settings_and_tag_rules():
    GovernorSettings.objects.update(min_spacing_minutes=0, fallback_timezone="Europe/Paris", in_app_counts=True, defer_horizon_hours=6)
    FrequencyRule.objects.create(name="Growth", scope=Scope.TAG, tag="growth", max_count=2, window_minutes=120, counts_transactional=True)

    policy = load_policy()

    assert (policy.min_spacing, policy.fallback_timezone, policy.in_app_counts, policy.defer_horizon) == (
        None, "Europe/Paris", True, dt.timedelta(hours=6),
    )
    assert policy.rules[-1] == CapRule(
        name="Growth", scope=Scope.TAG, max_count=2, window=dt.timedelta(hours=2), tag="growth", counts_transactional=True,
    )


def test_load_policy_without_settings_row_uses_the_model_defaults():
    GovernorSettings.objects.all().delete()
    FrequencyRule.objects.all().delete()
    QuietHoursRule.objects.all().delete()
    assert load_policy() == Policy(min_spacing=dt.timedelta(minutes=30), defer_horizon=dt.timedelta(hours=72))


def test_policy_is_served_from_memory_within_the_ttl(clock, django_assert_num_queries):
    first = load_policy()
    FrequencyRule.objects.update(enabled=False)  # behind the cache's back: no forget
    clock["t"] += loading.TTL_SECONDS - 0.1
    with django_assert_num_queries(0):
        assert load_policy() is first


def test_policy_is_reread_after_the_ttl_when_no_generation_is_known(clock):
    cache.delete(GENERATION_KEY)  # never set, evicted, or a per-process cache
    load_policy()
    FrequencyRule.objects.update(enabled=False)
    clock["t"] += loading.TTL_SECONDS
    assert load_policy().rules == ()


def test_policy_is_kept_past_the_ttl_while_the_generation_has_not_moved(clock, django_assert_num_queries):
    assert cache.get(GENERATION_KEY) is not None  # set by the fixture's forget_policy()
    first = load_policy()
    clock["t"] += 10 * loading.TTL_SECONDS
    with django_assert_num_queries(0):
        assert load_policy() is first


def test_forget_policy_in_one_process_reaches_the_others_within_the_ttl(clock):
    stale = load_policy()
    FrequencyRule.objects.update(enabled=False)
    other_process_memo = loading._cached.memo

    forget_policy()  # what the admin's process runs on commit
    loading._cached.memo = other_process_memo  # this process now stands for another one

    assert load_policy() is stale
    clock["t"] += loading.TTL_SECONDS
    assert load_policy().rules == ()


def test_forget_policy_drops_this_process_memo_at_once(clock):
    load_policy()
    FrequencyRule.objects.update(enabled=False)
    forget_policy()
    assert load_policy().rules == ()
