"""The policy preview: the last 7 days of the ledger replayed under the saved policy and under
a proposed one, in the admin before saving, counted by channel, journey and rule.

Times are UTC unless a zone is named; in June New York is on EDT (UTC-4), so 22:30 local is
02:30 UTC the next day.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from channels_app.models import Message
from customers.models import Customer
from journeys.models import Journey
from orchestrator.governor.models import (
    FrequencyRule,
    GovernorSettings,
    GovernorVerdict,
    PolicyChange,
    QuietHoursRule,
)
from orchestrator.governor.policy import Candidate, CapRule, PastMessage, Policy, QuietHours, Scope
from orchestrator.governor.preview import (
    NO_JOURNEY,
    Attempt,
    Comparison,
    Row,
    Tally,
    policy_with,
    preview,
    read_ledger,
    replay,
)
from orchestrator.roles import Role

UTC = dt.UTC
NY = "America/New_York"
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
NOW = dt.datetime(2026, 6, 15, 16, 0, tzinfo=UTC)  # the window is 8 June 16:00 – 15 June 16:00
WEDNESDAY = dt.datetime(2026, 6, 10, tzinfo=UTC)
LATER = dt.datetime(2026, 7, 1, tzinfo=UTC)  # a window end far past every pure scenario

DAILY_3 = CapRule("Marketing, 3 a day", Scope.ALL, 3, DAY)
SMS_QUIET = QuietHours("sms", dt.time(21, 0), dt.time(8, 0))


def at(day: dt.datetime, hour: int, minute: int = 0) -> dt.datetime:
    return day.replace(hour=hour, minute=minute)


def attempt(when, channel="email", *, customer=1, category="marketing", journey=NO_JOURNEY, tags=(), tz="UTC", counts=True):
    candidate = Candidate(channel, category, when, customer_timezone=tz, journey_tags=frozenset(tags))
    return Attempt(customer, candidate, journey, counts)


def tally(allowed=0, deferred=0, waiting=0, suppressed=0) -> Tally:
    return Tally(allowed=allowed, deferred=deferred, waiting=waiting, suppressed=suppressed)


def run(policy, attempts, *, seed=None, end=LATER):
    return replay(policy, attempts, seed_history=seed or {}, end=end)


FIVE_EMAILS = [attempt(at(WEDNESDAY, hour)) for hour in (9, 10, 11, 12, 13)]


# --- The replay ---------------------------------------------------------------------------------


def test_five_marketing_emails_in_a_day_under_a_cap_of_three_allow_three_and_defer_two():
    report = run(Policy(rules=(DAILY_3,)), FIVE_EMAILS)

    # The 12:00 and 13:00 sends both wait for 09:00 on Thursday, when the first leaves the
    # 24 h window; the 12:00 one takes that room and the 13:00 one goes at 10:00.
    assert report.total == tally(allowed=3, deferred=2)
    assert report.by_channel == {"email": tally(allowed=3, deferred=2)}
    assert report.by_rule == {"Marketing, 3 a day": tally(deferred=2)}


def test_a_deferral_past_the_horizon_is_counted_as_suppressed_under_its_rule():
    policy = Policy(rules=(DAILY_3,), defer_horizon=dt.timedelta(hours=12))

    report = run(policy, FIVE_EMAILS)

    assert report.total == tally(allowed=3, suppressed=2)
    assert report.by_rule == {"Marketing, 3 a day": tally(suppressed=2)}


def test_a_send_coming_back_after_the_window_ends_is_still_waiting():
    report = run(Policy(rules=(DAILY_3,)), FIVE_EMAILS, end=at(WEDNESDAY, 20))

    assert report.total == tally(allowed=3, waiting=2)
    assert (report.total.held, report.total.total) == (2, 5)
    assert report.by_rule == {"Marketing, 3 a day": tally(waiting=2)}


def test_a_send_deferred_then_suppressed_when_it_comes_back_counts_once_as_suppressed():
    # One a day, waiting at most 23 h 30. Wednesday 10:00 waits to Thursday 09:00 (23 h);
    # Thursday 08:00 waits for 09:00 too, finds that room taken, and Friday 09:00 is too far.
    policy = Policy(rules=(CapRule("One a day", Scope.ALL, 1, DAY),), defer_horizon=dt.timedelta(hours=23, minutes=30))
    sends = [attempt(at(WEDNESDAY, 9)), attempt(at(WEDNESDAY, 10)), attempt(at(WEDNESDAY + DAY, 8))]

    report = run(policy, sends)

    assert report.total == tally(allowed=1, deferred=1, suppressed=1)
    assert report.by_rule == {"One a day": tally(deferred=1, suppressed=1)}


def test_proposed_quiet_hours_turn_an_evening_sms_into_a_deferral_to_the_morning():
    evening_sms = attempt(dt.datetime(2026, 6, 11, 2, 30, tzinfo=UTC), "sms", tz=NY)  # 22:30 on the 10th in New York
    morning_sms = attempt(dt.datetime(2026, 6, 11, 13, 0, tzinfo=UTC), "sms", customer=2, tz=NY)  # 09:00

    assert run(Policy(), [evening_sms, morning_sms]).total == tally(allowed=2)
    report = run(Policy(quiet_hours=(SMS_QUIET,)), [evening_sms, morning_sms])

    assert report.total == tally(allowed=1, deferred=1)
    assert report.by_rule == {"quiet hours sms": tally(deferred=1)}


def test_a_deferred_send_that_goes_counts_toward_the_next_ones_at_its_new_moment():
    # 22:30 in New York: held to 08:00; a cap of one SMS a day then holds the 09:00 one.
    sms_cap = CapRule("SMS, 1 a day", Scope.CHANNEL, 1, DAY, channels=frozenset({"sms"}))
    sends = [
        attempt(dt.datetime(2026, 6, 11, 2, 30, tzinfo=UTC), "sms", tz=NY),
        attempt(dt.datetime(2026, 6, 11, 13, 0, tzinfo=UTC), "sms", tz=NY),
    ]

    report = run(Policy(rules=(sms_cap,), quiet_hours=(SMS_QUIET,)), sends)

    assert report.total == tally(deferred=2)
    assert report.by_rule == {"quiet hours sms": tally(deferred=1), "SMS, 1 a day": tally(deferred=1)}


def test_transactional_sends_are_exempt_and_do_not_use_up_a_cap_that_does_not_count_them():
    receipts = [attempt(at(WEDNESDAY, hour), category="transactional") for hour in (7, 8)]

    report = run(Policy(rules=(DAILY_3,)), [*receipts, *FIVE_EMAILS[:3]])

    assert report.total == tally(allowed=5)


def test_the_history_before_the_window_counts_as_the_live_governor_would():
    yesterday = [PastMessage("email", "marketing", at(WEDNESDAY - DAY, hour)) for hour in (14, 15, 16)]

    report = run(Policy(rules=(DAILY_3,)), FIVE_EMAILS[:1], seed={1: yesterday})

    assert report.total == tally(deferred=1)  # waits for 14:00, when Tuesday's first leaves the window


def test_a_send_the_provider_failed_does_not_count_toward_the_next():
    failed, *others = FIVE_EMAILS[:4]

    report = run(Policy(rules=(DAILY_3,)), [attempt(failed.candidate.at, counts=False), *others])

    assert report.total == tally(allowed=4)


def test_customers_are_capped_apart_and_journeys_are_counted_apart():
    sends = [
        *(attempt(at(WEDNESDAY, hour), journey="Spring sale") for hour in (9, 10, 11, 12)),
        attempt(at(WEDNESDAY, 13), customer=2, journey="Spring sale"),
        attempt(at(WEDNESDAY, 14), "push", customer=2),
    ]

    report = run(Policy(rules=(DAILY_3,)), sends)

    assert report.by_journey == {"Spring sale": tally(allowed=4, deferred=1), NO_JOURNEY: tally(allowed=1)}
    assert report.by_channel == {"email": tally(allowed=4, deferred=1), "push": tally(allowed=1)}


def test_a_tag_cap_holds_only_the_journeys_carrying_the_tag():
    growth_cap = CapRule("Growth, 1 a day", Scope.TAG, 1, DAY, tag="growth")
    sends = [
        attempt(at(WEDNESDAY, 9), journey="Onboarding", tags=("growth",)),
        attempt(at(WEDNESDAY, 10), journey="Onboarding", tags=("growth",)),
        attempt(at(WEDNESDAY, 11), journey="Receipts follow-up", tags=("lifecycle",)),
    ]

    report = run(Policy(rules=(growth_cap,)), sends)

    assert report.by_journey == {"Onboarding": tally(allowed=1, deferred=1), "Receipts follow-up": tally(allowed=1)}


# --- Reading the ledger -------------------------------------------------------------------------

_keys = itertools.count()


def person(external_id: str = "maya", tz: str = "UTC") -> Customer:
    return Customer.objects.create(external_id=external_id, timezone=tz)


def message(customer, when, channel="email", *, category="marketing", status="delivered", journey=None) -> Message:
    return Message.objects.create(
        customer=customer, channel=channel, category=category, status=status, queued_at=when,
        journey_id=journey.pk if journey else None, idempotency_key=f"preview-test:{next(_keys)}",
    )


def suppressed_by(rule: str, suppressed: Message) -> GovernorVerdict:
    return GovernorVerdict.objects.create(
        customer=suppressed.customer, decision="suppress", rule=rule, reason=rule, channel=suppressed.channel,
        category=suppressed.category, message_id=suppressed.pk, at=suppressed.queued_at,
    )


@pytest.mark.django_db
def test_attempts_are_the_window_s_messages_less_those_consent_or_an_address_stopped():
    maya = person("maya", NY)
    sale = Journey.objects.create(name="Spring sale", tags=["growth"])
    message(maya, at(WEDNESDAY, 9), journey=sale)
    message(maya, at(WEDNESDAY, 10), "sms", status="failed")
    message(maya, at(WEDNESDAY, 11), "push", status="queued")
    suppressed_by("Marketing, all channels, 24 h", message(maya, at(WEDNESDAY, 12), status="suppressed"))
    suppressed_by("consent", message(maya, at(WEDNESDAY, 13), status="suppressed"))
    suppressed_by("reachability", message(maya, at(WEDNESDAY, 14), "push", status="suppressed"))
    message(maya, at(WEDNESDAY, 15), status="suppressed")  # imported history: no verdict says why
    message(maya, NOW, "sms")  # the window ends just before now
    message(maya, NOW - 7 * DAY - HOUR, journey=sale)  # the day before the window: history
    message(maya, NOW - 7 * DAY - 2 * HOUR, status="failed")  # never reached her: not counted
    message(maya, NOW - 8 * DAY - HOUR)  # beyond the 24 h the policy looks back

    ledger = read_ledger(NOW, lookback=DAY)

    assert (ledger.start, ledger.end) == (NOW - 7 * DAY, NOW)
    assert ledger.attempts == [
        Attempt(maya.pk, Candidate("email", "marketing", at(WEDNESDAY, 9), NY, frozenset({"growth"})), "Spring sale"),
        Attempt(maya.pk, Candidate("sms", "marketing", at(WEDNESDAY, 10), NY), NO_JOURNEY, counts=False),
        Attempt(maya.pk, Candidate("push", "marketing", at(WEDNESDAY, 11), NY), NO_JOURNEY),
        Attempt(maya.pk, Candidate("email", "marketing", at(WEDNESDAY, 12), NY), NO_JOURNEY),
    ]
    assert ledger.seed_history == {maya.pk: [PastMessage("email", "marketing", NOW - 7 * DAY - HOUR, frozenset({"growth"}))]}


def test_differences_are_signed_with_thousands_separated():
    row = Row("Email", current=tally(allowed=2500, deferred=3), proposed=tally(allowed=1000, deferred=1503))

    assert row.change == {"allowed": "−1,500", "held": "+1,500", "waiting": "0", "suppressed": "0"}


@pytest.mark.django_db
def test_a_deleted_journey_s_messages_keep_a_journey_of_their_own():
    message(person(), at(WEDNESDAY, 9), journey=Journey(pk=987654))

    assert [a.journey for a in read_ledger(NOW, lookback=DAY).attempts] == ["journey #987654 (deleted)"]


def saved_daily_cap(max_count: int = 5) -> FrequencyRule:
    return FrequencyRule.objects.create(name="Marketing, daily", scope="all", max_count=max_count, window_minutes=24 * 60)


def five_emails_on_wednesday(journey_name: str = "Spring sale") -> Customer:
    maya = person("maya")
    sale = Journey.objects.create(name=journey_name)
    for hour in (9, 10, 11, 12, 13):
        message(maya, at(WEDNESDAY, hour), journey=sale)
    return maya


@pytest.mark.django_db
def test_preview_sets_the_saved_policy_beside_the_proposed_one_in_five_queries(django_assert_num_queries):
    saved_daily_cap(5)
    five_emails_on_wednesday()
    proposed = Policy(rules=(CapRule("Marketing, daily", Scope.ALL, 3, DAY),))

    with django_assert_num_queries(5):  # the saved policy (3), the ledger, the journeys
        comparison = preview(proposed, now=NOW)

    assert (comparison.start, comparison.end, comparison.attempts) == (NOW - 7 * DAY, NOW, 5)
    assert comparison.current.total == tally(allowed=5)
    assert comparison.proposed.total == tally(allowed=3, deferred=2)
    [total] = comparison.totals
    assert total.change == {"allowed": "−2", "held": "+2", "waiting": "0", "suppressed": "0"}
    assert [(row.label, row.current, row.proposed) for row in comparison.by_journey] == [
        ("Spring sale", tally(allowed=5), tally(allowed=3, deferred=2)),
    ]
    assert [(row.label, row.current, row.proposed) for row in comparison.by_rule] == [
        ("Marketing, daily", tally(), tally(deferred=2)),
    ]
    assert [row.label for row in comparison.by_channel] == ["Email"]


@pytest.mark.django_db
def test_the_proposed_policy_reads_the_edited_row_and_leaves_every_row_as_it_was():
    rule = saved_daily_cap(5)
    before = FrequencyRule.objects.values().get(pk=rule.pk)
    rule.max_count = 2
    new_quiet = QuietHoursRule(channel="sms", start=dt.time(21, 0), end=dt.time(8, 0))

    assert [r.max_count for r in policy_with(rule).rules] == [2]
    assert [r.max_count for r in policy_with(rule, removed=True).rules] == []
    assert policy_with(new_quiet).quiet_hours == (SMS_QUIET,)

    assert FrequencyRule.objects.values().get() == before
    assert not QuietHoursRule.objects.exists()
    assert new_quiet.pk is None


# --- In the admin -------------------------------------------------------------------------------


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


PREVIEW_PAGE = "admin:orchestrator_governor_preview"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def admin_client(frozen, client, make_user):
    client.force_login(make_user(Role.ADMIN, username="ada-admin"))
    return client


def rule_form(rule: FrequencyRule, **changes) -> dict:
    data = {"name": rule.name, "enabled": "on", "scope": rule.scope, "max_count": str(rule.max_count),
            "window_minutes": str(rule.window_minutes), "_preview": "Preview against the last 7 days"}
    return {**data, **changes}


def nothing_saved(before: dict) -> None:
    for model, rows in before.items():
        assert list(model.objects.order_by("pk").values()) == rows, model
    assert not PolicyChange.objects.exists()
    assert not LogEntry.objects.exists()


def policy_rows() -> dict:
    return {model: list(model.objects.order_by("pk").values()) for model in (FrequencyRule, GovernorSettings, QuietHoursRule)}


@pytest.mark.django_db
def test_previewing_a_rule_change_shows_saved_and_proposed_side_by_side_and_saves_nothing(
    admin_client, django_capture_on_commit_callbacks
):
    rule = saved_daily_cap(5)
    five_emails_on_wednesday()
    before = policy_rows()

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(url(FrequencyRule, "change", rule.pk), rule_form(rule, max_count="3"))

    assert response.status_code == 200
    comparison: Comparison = response.context["policy_preview"]
    assert (comparison.current.total, comparison.proposed.total) == (tally(allowed=5), tally(allowed=3, deferred=2))
    html = response.content.decode()
    assert "Nothing saved yet." in html
    assert "5 sends asked for between 8 Jun 2026 16:00 and 15 Jun 2026 16:00 UTC" in " ".join(html.split())
    assert '<td class="num change group-start">−2</td>' in html
    assert '<td class="num change zero">0</td>' in html
    assert 'name="max_count" value="3"' in html  # the form as edited, ready to save
    assert "Please correct the error" not in html
    nothing_saved(before)
    assert callbacks == []


@pytest.mark.django_db
def test_previewing_a_new_rule_adds_nothing(admin_client):
    five_emails_on_wednesday()
    form = {"name": "Two a day", "enabled": "on", "scope": "all", "max_count": "2", "window_minutes": "1440", "_preview": "1"}
    before = policy_rows()

    response = admin_client.post(url(FrequencyRule, "add"), form)

    assert response.status_code == 200
    comparison = response.context["policy_preview"]
    assert (comparison.current.total, comparison.proposed.total) == (tally(allowed=5), tally(allowed=2, deferred=3))
    assert [row.label for row in comparison.by_rule] == ["Two a day"]
    nothing_saved(before)


@pytest.mark.django_db
def test_previewing_new_quiet_hours_on_sms_defers_the_evening_sms(admin_client):
    maya = person("maya", NY)
    message(maya, dt.datetime(2026, 6, 11, 2, 30, tzinfo=UTC), "sms")  # 22:30 in New York
    message(maya, dt.datetime(2026, 6, 12, 2, 30, tzinfo=UTC), "email")
    form = {"channel": "sms", "enabled": "on", "start": "21:00", "end": "08:00", "_preview": "1"}

    response = admin_client.post(url(QuietHoursRule, "add"), form)

    comparison = response.context["policy_preview"]
    assert [(row.label, row.current, row.proposed) for row in comparison.by_channel] == [
        ("Email", tally(allowed=1), tally(allowed=1)),
        ("SMS", tally(allowed=1), tally(deferred=1)),
    ]
    assert not QuietHoursRule.objects.exists()


@pytest.mark.django_db
def test_previewing_a_shorter_horizon_in_the_settings_shows_suppressions(admin_client):
    saved_daily_cap(3)
    five_emails_on_wednesday()
    before = policy_rows()
    form = {"min_spacing_minutes": "0", "fallback_timezone": "UTC", "defer_horizon_hours": "12", "_preview": "1"}

    response = admin_client.post(url(GovernorSettings, "change", GovernorSettings.SINGLETON_PK), form)

    comparison = response.context["policy_preview"]
    assert (comparison.current.total, comparison.proposed.total) == (tally(allowed=3, deferred=2), tally(allowed=3, suppressed=2))
    nothing_saved(before)


@pytest.mark.django_db
def test_an_invalid_form_shows_its_errors_and_no_preview(admin_client):
    rule = saved_daily_cap(5)
    before = policy_rows()

    response = admin_client.post(url(FrequencyRule, "change", rule.pk), rule_form(rule, max_count="0"))

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["max_count"]
    assert response.context["policy_preview"] is None
    assert "Nothing saved yet." not in response.content.decode()
    nothing_saved(before)


@pytest.mark.django_db
def test_save_still_saves_and_the_change_form_offers_the_preview(admin_client):
    rule = saved_daily_cap(5)
    assert 'name="_preview"' in admin_client.get(url(FrequencyRule, "change", rule.pk)).content.decode()
    assert 'name="_preview"' in admin_client.get(url(QuietHoursRule, "add")).content.decode()
    form = {k: v for k, v in rule_form(rule, max_count="4").items() if k != "_preview"}

    response = admin_client.post(url(FrequencyRule, "change", rule.pk), form)

    assert response.status_code == 302
    assert FrequencyRule.objects.get().max_count == 4
    assert PolicyChange.objects.count() == 1


@pytest.mark.django_db
def test_the_delete_page_previews_removing_the_rule_when_asked_and_deletes_nothing(admin_client):
    rule = saved_daily_cap(3)
    five_emails_on_wednesday()
    before = policy_rows()

    plain = admin_client.get(url(FrequencyRule, "delete", rule.pk))
    response = admin_client.get(url(FrequencyRule, "delete", rule.pk), {"_preview": "1"})

    assert "policy_preview" not in plain.context and 'href="?_preview=1"' in plain.content.decode()
    comparison = response.context["policy_preview"]
    assert (comparison.current.total, comparison.proposed.total) == (tally(allowed=3, deferred=2), tally(allowed=5))
    html = response.content.decode()
    assert "Nothing deleted yet." in html and "Confirm below to delete it." in html
    nothing_saved(before)


@pytest.mark.django_db
def test_the_preview_page_replays_the_saved_policy_and_is_linked_from_the_policy_lists(admin_client):
    saved_daily_cap(3)
    five_emails_on_wednesday()

    response = admin_client.get(reverse(PREVIEW_PAGE))

    assert response.status_code == 200
    comparison = response.context["comparison"]
    assert (comparison.current.total, comparison.proposed) == (tally(allowed=3, deferred=2), None)
    rule, settings_line = response.context["policy_in_words"]
    assert rule == "Marketing, daily: at most 3 marketing messages per 24 h across all channels"
    assert settings_line.startswith("No minimum spacing; fallback time zone UTC; in-app not counted; defer up to 72 h")
    assert "Nothing saved yet." not in response.content.decode()
    for model in (FrequencyRule, GovernorSettings, QuietHoursRule):
        assert f'href="{reverse(PREVIEW_PAGE)}"' in admin_client.get(url(model, "changelist")).content.decode(), model


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.MARKETER, Role.MESSAGING])
def test_other_roles_are_sent_to_the_admin_login_and_preview_nothing(client, make_user, frozen, role):
    rule = saved_daily_cap(5)
    client.force_login(make_user(role))
    before = policy_rows()

    for response in (
        client.get(reverse(PREVIEW_PAGE)),
        client.post(url(FrequencyRule, "change", rule.pk), rule_form(rule, max_count="3")),
        client.post(url(FrequencyRule, "add"), rule_form(rule, name="Another")),
    ):
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    nothing_saved(before)


@pytest.mark.django_db
def test_staff_without_the_admin_role_are_refused(client, make_user, frozen):
    rule = saved_daily_cap(5)
    staff = make_user(username="staffer")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)

    assert client.get(reverse(PREVIEW_PAGE)).status_code == 403
    assert client.post(url(FrequencyRule, "change", rule.pk), rule_form(rule, max_count="3")).status_code == 403
