"""The frequency policy in the admin: who may see it, inline errors, and the audit trail of every change."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from orchestrator.governor import loading
from orchestrator.governor.loading import forget_policy, load_policy
from orchestrator.governor.models import (
    FrequencyRule,
    GovernorSettings,
    PolicyChange,
    QuietHoursRule,
)
from orchestrator.roles import Role

POLICY_MODELS = [FrequencyRule, GovernorSettings, QuietHoursRule, PolicyChange]
RULE_FORM = {
    "name": "Growth team, 2 per day", "enabled": "on", "scope": "tag", "tag": "growth",
    "max_count": "2", "window_minutes": "1440",
}


# These tests are about the shipped policy rows themselves.
pytestmark = pytest.mark.governed


@pytest.fixture(autouse=True)
def _fresh_policy_cache():
    forget_policy()
    yield
    forget_policy()


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def admin_user(make_user):
    return make_user(Role.ADMIN, username="ada-admin")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def a_change(admin_user):
    return PolicyChange.objects.create(
        user=admin_user, username=admin_user.username, model_label="orchestrator.frequencyrule", object_id="1",
        object_repr="Marketing, all channels, 24 h", action="changed", before={"max_count": 3}, after={"max_count": 4},
    )


def daily_rule() -> FrequencyRule:
    return FrequencyRule.objects.get(name="Marketing, all channels, 24 h")


def rule_form(obj: FrequencyRule, **changes) -> dict:
    data = {
        "name": obj.name, "scope": obj.scope, "channels": obj.channels, "tag": obj.tag,
        "max_count": str(obj.max_count), "window_minutes": str(obj.window_minutes),
    }
    if obj.enabled:
        data["enabled"] = "on"
    if obj.counts_transactional:
        data["counts_transactional"] = "on"
    return {**data, **changes}


# --- Who may see it ---------------------------------------------------------------------------


def test_policy_pages_render_for_the_admin_role(admin_client, a_change):
    for model in POLICY_MODELS:
        assert admin_client.get(url(model, "changelist")).status_code == 200, model
        obj = model.objects.order_by("pk").first()
        assert admin_client.get(url(model, "change", obj.pk)).status_code == 200, model
    assert admin_client.get(url(FrequencyRule, "add")).status_code == 200
    assert admin_client.get(url(QuietHoursRule, "add")).status_code == 200


def test_rule_list_says_each_rule_in_words(admin_client):
    html = admin_client.get(url(FrequencyRule, "changelist")).content.decode()
    assert "At most 3 marketing messages per 24 h across all channels" in html
    assert "At most 8 marketing messages per 7 days across all channels" in html
    assert "At most 1 marketing message per 24 h on SMS" in html
    html = admin_client.get(url(QuietHoursRule, "changelist")).content.decode()
    assert "No marketing SMS 21:00–08:00, customer&#x27;s local time" in html


@pytest.mark.parametrize("role", [Role.MARKETER, Role.MESSAGING])
def test_other_roles_are_sent_to_the_admin_login(client, make_user, role, a_change):
    client.force_login(make_user(role))
    for model in POLICY_MODELS:
        obj = model.objects.order_by("pk").first()
        for page in (url(model, "changelist"), url(model, "change", obj.pk)):
            response = client.get(page)
            assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login")), page
    response = client.post(url(FrequencyRule, "add"), RULE_FORM)
    assert response.status_code == 302
    assert not FrequencyRule.objects.filter(name=RULE_FORM["name"]).exists()
    assert PolicyChange.objects.count() == 1


def test_staff_without_the_admin_role_cannot_see_the_policy(client, make_user, a_change):
    staff = make_user(username="staffer")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    for model in POLICY_MODELS:
        assert client.get(url(model, "changelist")).status_code == 403, model
    assert client.post(url(FrequencyRule, "change", daily_rule().pk), rule_form(daily_rule(), max_count="9")).status_code == 403
    assert daily_rule().max_count == 3


# --- Saving, with inline errors ---------------------------------------------------------------


def test_adding_a_rule_records_who_and_what(admin_client, admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url(FrequencyRule, "add"), RULE_FORM)

    assert response.status_code == 302
    rule = FrequencyRule.objects.get(name=RULE_FORM["name"])
    assert (rule.created_by, rule.updated_by) == (admin_user, admin_user)
    change = PolicyChange.objects.get()
    assert (change.user, change.username, change.action, change.model_label, change.object_id, change.object_repr) == (
        admin_user, "ada-admin", "created", "orchestrator.frequencyrule", str(rule.pk), RULE_FORM["name"],
    )
    assert change.before is None
    assert change.after == {
        "name": "Growth team, 2 per day", "enabled": True, "scope": "tag", "channels": [], "tag": "growth",
        "max_count": 2, "window_minutes": 1440, "counts_transactional": False,
    }


def test_changing_a_rule_records_before_and_after(admin_client, admin_user):
    rule = daily_rule()
    response = admin_client.post(url(FrequencyRule, "change", rule.pk), rule_form(rule, max_count="4"))

    assert response.status_code == 302
    change = PolicyChange.objects.get()
    assert (change.action, change.object_id, change.user) == ("changed", str(rule.pk), admin_user)
    assert (change.before["max_count"], change.after["max_count"]) == (3, 4)
    assert {k: v for k, v in change.before.items() if k != "max_count"} == {
        k: v for k, v in change.after.items() if k != "max_count"
    }
    assert daily_rule().updated_by == admin_user


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"scope": "channel", "channels": []}, "channels", "exactly one channel"),
        ({"scope": "channels", "channels": ["sms"]}, "channels", "at least two channels"),
        ({"scope": "tag", "tag": ""}, "tag", "needs the tag"),
        ({"window_minutes": "50000"}, "window_minutes", "less than or equal to 43200"),
        ({"max_count": "0"}, "max_count", "greater than or equal to 1"),
    ],
)
def test_inconsistent_rule_is_shown_with_its_error_and_nothing_changes(admin_client, changes, field, message):
    rule = daily_rule()
    before = FrequencyRule.objects.values().get(pk=rule.pk)

    response = admin_client.post(url(FrequencyRule, "change", rule.pk), rule_form(rule, **changes))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and message in errors[field][0]
    assert FrequencyRule.objects.values().get(pk=rule.pk) == before
    assert not PolicyChange.objects.exists()


def test_settings_are_one_page_changed_in_place(admin_client, admin_user):
    settings_row = GovernorSettings.get()
    assert admin_client.get(url(GovernorSettings, "add")).status_code == 403
    assert admin_client.post(url(GovernorSettings, "delete", settings_row.pk), {"post": "yes"}).status_code == 403

    response = admin_client.post(
        url(GovernorSettings, "change", settings_row.pk),
        {"min_spacing_minutes": "0", "fallback_timezone": "Europe/London", "defer_horizon_hours": "24",
         "marketing_opt_in_channels": ["email", "sms", "push"]},
    )

    assert response.status_code == 302
    assert GovernorSettings.objects.values("min_spacing_minutes", "fallback_timezone", "in_app_counts", "defer_horizon_hours").get() == {
        "min_spacing_minutes": 0, "fallback_timezone": "Europe/London", "in_app_counts": False, "defer_horizon_hours": 24,
    }
    change = PolicyChange.objects.get()
    assert (change.model_label, change.object_id, change.action) == ("orchestrator.governorsettings", "1", "changed")
    opt_in = {"marketing_opt_in_channels": ["email", "sms", "push"]}
    assert change.before == {"min_spacing_minutes": 30, "fallback_timezone": "UTC", "in_app_counts": False, "defer_horizon_hours": 72} | opt_in
    assert change.after == {"min_spacing_minutes": 0, "fallback_timezone": "Europe/London", "in_app_counts": False, "defer_horizon_hours": 24} | opt_in


def test_settings_refuse_an_unknown_time_zone(admin_client):
    response = admin_client.post(
        url(GovernorSettings, "change", 1),
        {"min_spacing_minutes": "30", "fallback_timezone": "Europe/Atlantis", "defer_horizon_hours": "72"},
    )
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["fallback_timezone"]
    assert GovernorSettings.get().fallback_timezone == "UTC"
    assert not PolicyChange.objects.exists()


def test_quiet_hours_change_records_times_and_refuses_an_empty_window(admin_client):
    sms = QuietHoursRule.objects.get(channel="sms")
    form = {"channel": "sms", "enabled": "on", "start": "22:00", "end": "22:00"}
    response = admin_client.post(url(QuietHoursRule, "change", sms.pk), form)
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["end"]

    response = admin_client.post(url(QuietHoursRule, "change", sms.pk), {**form, "end": "07:30"})

    assert response.status_code == 302
    change = PolicyChange.objects.get()
    assert change.before == {"channel": "sms", "enabled": True, "start": "21:00:00", "end": "08:00:00"}
    assert change.after == {"channel": "sms", "enabled": True, "start": "22:00:00", "end": "07:30:00"}


# --- Deleting ---------------------------------------------------------------------------------


def test_deleting_a_rule_records_its_last_fields(admin_client, admin_user):
    rule = daily_rule()
    response = admin_client.post(url(FrequencyRule, "delete", rule.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not FrequencyRule.objects.filter(pk=rule.pk).exists()
    change = PolicyChange.objects.get()
    assert (change.action, change.object_id, change.object_repr, change.user) == ("deleted", str(rule.pk), rule.name, admin_user)
    assert change.before["max_count"] == 3 and change.after is None


def test_bulk_delete_records_one_change_per_row(admin_client):
    rules = list(FrequencyRule.objects.order_by("pk")[:2])
    response = admin_client.post(
        url(FrequencyRule, "changelist"),
        {"action": "delete_selected", "_selected_action": [r.pk for r in rules], "post": "yes"},
    )

    assert response.status_code == 302
    assert list(FrequencyRule.objects.values_list("name", flat=True)) == ["Marketing SMS, 24 h"]
    assert sorted(PolicyChange.objects.values_list("action", "object_repr")) == sorted(("deleted", r.name) for r in rules)


# --- The cache follows the admin --------------------------------------------------------------


def test_an_admin_save_is_seen_by_the_next_send_at_once(admin_client, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(loading._cached, "clock", lambda: 1000.0)  # time stands still: only forgetting can refresh
    assert load_policy().rules[0].max_count == 3

    rule = daily_rule()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url(FrequencyRule, "change", rule.pk), rule_form(rule, max_count="5"))

    assert load_policy().rules[0].max_count == 5


def test_a_refused_save_forgets_nothing(admin_client, django_capture_on_commit_callbacks):
    rule = daily_rule()
    with django_capture_on_commit_callbacks() as callbacks:
        admin_client.post(url(FrequencyRule, "change", rule.pk), rule_form(rule, max_count="0"))
    assert callbacks == []


# --- The trail is read-only -------------------------------------------------------------------


def test_policy_changes_cannot_be_added_edited_or_deleted(admin_client, a_change, client, make_user):
    before = PolicyChange.objects.values().get(pk=a_change.pk)

    assert admin_client.get(url(PolicyChange, "add")).status_code == 403
    assert admin_client.post(url(PolicyChange, "change", a_change.pk), {"username": "forged"}).status_code == 403
    assert admin_client.post(url(PolicyChange, "delete", a_change.pk), {"post": "yes"}).status_code == 403
    response = admin_client.post(
        url(PolicyChange, "changelist"), {"action": "delete_selected", "_selected_action": [a_change.pk], "post": "yes"}
    )
    assert PolicyChange.objects.values().get(pk=a_change.pk) == before, response.status_code
    client.force_login(make_user(superuser=True, username="root"))
    assert client.post(url(PolicyChange, "delete", a_change.pk), {"post": "yes"}).status_code == 403

    assert PolicyChange.objects.values().get(pk=a_change.pk) == before


def test_policy_change_page_shows_before_after_and_no_form(admin_client, a_change):
    html = admin_client.get(url(PolicyChange, "change", a_change.pk)).content.decode()
    assert "&quot;max_count&quot;: 3" in html and "&quot;max_count&quot;: 4" in html
    assert 'name="_save"' not in html and 'name="username"' not in html


def test_policy_changes_filter_by_action_and_model(admin_client, a_change, admin_user):
    PolicyChange.objects.create(
        user=admin_user, username="ada-admin", model_label="orchestrator.quiethoursrule", object_id="2",
        object_repr="Quiet hours SMS", action="deleted", before={"channel": "sms"}, at=a_change.at - dt.timedelta(hours=1),
    )
    response = admin_client.get(url(PolicyChange, "changelist"), {"action__exact": "deleted"})
    assert [c.object_repr for c in response.context["cl"].result_list] == ["Quiet hours SMS"]
    response = admin_client.get(url(PolicyChange, "changelist"), {"model_label": "orchestrator.frequencyrule"})
    assert [c.pk for c in response.context["cl"].result_list] == [a_change.pk]
    response = admin_client.get(url(PolicyChange, "changelist"), {"user__id__exact": admin_user.pk})
    assert len(response.context["cl"].result_list) == 2
