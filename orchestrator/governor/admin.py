"""Admin of the frequency policy: caps, settings and quiet hours, with an audit trail.

Only users holding ``Capability.MANAGE_POLICY`` (the Admin role) see or change these.
Every save and delete goes through ``do_save_policy_row`` / ``do_delete_policy_rows``,
which write one ``PolicyChange`` (who, when, the fields before and after) in the same
transaction and, once committed, make every process reload the policy
(``loading.forget_policy``). The trail itself is read-only: never edited, never deleted.

Imported by orchestrator.admin (admin autodiscovery only imports ``<app>.admin``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.template.response import TemplateResponse
from django.urls import path

from customers.enums import Channel
from orchestrator.admin import ChorusModelAdmin, ReadOnlyModelAdmin, pretty_json
from orchestrator.governor.loading import forget_policy
from orchestrator.governor.models import (
    FrequencyRule,
    GovernorSettings,
    GovernorVerdict,
    PolicyChange,
    QuietHoursRule,
    window_in_words,
)
from orchestrator.governor.preview import Comparison, policy_with, preview
from orchestrator.roles import Capability

# Kept on the row itself or on the PolicyChange: not part of what the policy says.
NOT_POLICY = frozenset({"id", "created_at", "created_by", "updated_at", "updated_by"})


# --- Services: every change leaves a trail -------------------------------------------------


def policy_snapshot(row: models.Model) -> dict:
    """The row's policy fields as JSON values (times as "21:00:00")."""
    values = {f.name: f.value_from_object(row) for f in row._meta.concrete_fields if f.name not in NOT_POLICY}
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def _record(user, row: models.Model, action: str, before: dict | None, after: dict | None) -> PolicyChange:
    return PolicyChange.objects.create(
        user=user if user and user.pk else None, username=getattr(user, "username", "") or "",
        model_label=row._meta.label_lower, object_id=str(row.pk), object_repr=str(row)[:200],
        action=action, before=before, after=after,
    )


def do_save_policy_row(row: models.Model, user, *, created: bool) -> PolicyChange:
    """Save a FrequencyRule, GovernorSettings or QuietHoursRule and record the change."""
    with transaction.atomic():
        before = None
        if not created:
            before = policy_snapshot(type(row)._default_manager.select_for_update().get(pk=row.pk))
        if created and hasattr(row, "created_by_id"):
            row.created_by = user
        row.updated_by = user
        row.save()
        action = PolicyChange.Action.CREATED if created else PolicyChange.Action.CHANGED
        change = _record(user, row, action, before, policy_snapshot(row))
        transaction.on_commit(forget_policy)
    return change


def do_delete_policy_rows(rows: Iterable[models.Model], user) -> int:
    """Delete policy rows, recording each one's last fields. Returns how many."""
    deleted = 0
    with transaction.atomic():
        for row in rows:
            _record(user, row, PolicyChange.Action.DELETED, policy_snapshot(row), None)
            row.delete()
            deleted += 1
        transaction.on_commit(forget_policy)
    return deleted


# --- The preview: the last 7 days replayed under the form as edited, nothing saved -------------

PREVIEW = "_preview"  # the name of the change form's "Preview against the last 7 days" button


def _previewing(form_class: type[forms.ModelForm]) -> type[forms.ModelForm]:
    """The admin form of a preview request: validated as usual, then previewed, never saved.

    Once valid, ``is_valid()`` answers False, so the admin's change view re-renders the
    bound form (its path for a form it will not save) instead of saving the row, logging
    it and writing a PolicyChange. Its errors stay empty: no error note shows.
    """

    class PreviewForm(form_class):
        preview: Comparison | None = None

        def is_valid(self) -> bool:
            if not super().is_valid():
                return False  # the usual errors, and no preview
            if self.preview is None:
                self.preview = preview(policy_with(self.instance))
            return False

    return PreviewForm


# --- Admin classes ---------------------------------------------------------------------------


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]  # not str.capitalize(): it would lower "SMS"


class PolicyModelAdmin(ChorusModelAdmin):
    """Saves and deletes through the services above; only for MANAGE_POLICY."""

    view_capability = Capability.MANAGE_POLICY
    change_capability = Capability.MANAGE_POLICY
    change_form_template = "admin/orchestrator/governor/change_form.html"
    change_list_template = "admin/orchestrator/governor/change_list.html"
    delete_confirmation_template = "admin/orchestrator/governor/delete_confirmation.html"

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        return _previewing(form_class) if request.method == "POST" and PREVIEW in request.POST else form_class

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["policy_preview"] = getattr(context["adminform"].form, "preview", None)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def render_delete_form(self, request, context):
        # Only on asking (?_preview=1): the replay takes seconds, a confirmation page should not.
        if PREVIEW in request.GET and context.get("object") is not None:
            context["policy_preview"] = preview(policy_with(context["object"], removed=True))
        return super().render_delete_form(request, context)

    def save_model(self, request, obj, form, change):
        do_save_policy_row(obj, request.user, created=not change)

    def delete_model(self, request, obj):
        do_delete_policy_rows([obj], request.user)

    def delete_queryset(self, request, queryset):
        do_delete_policy_rows(list(queryset), request.user)


class FrequencyRuleForm(forms.ModelForm):
    channels = forms.MultipleChoiceField(
        choices=Channel.choices, widget=forms.CheckboxSelectMultiple, required=False,
        help_text=FrequencyRule._meta.get_field("channels").help_text,
    )

    class Meta:
        model = FrequencyRule
        fields = ["name", "enabled", "scope", "channels", "tag", "max_count", "window_minutes", "counts_transactional"]


@admin.register(FrequencyRule)
class FrequencyRuleAdmin(PolicyModelAdmin):
    form = FrequencyRuleForm
    list_display = ["name", "in_words", "enabled", "updated_at", "updated_by"]
    list_filter = ["enabled", "scope"]
    search_fields = ["name", "tag"]
    list_select_related = ["updated_by"]
    readonly_fields = ["in_words", "created_at", "created_by", "updated_at", "updated_by"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "in_words"]}),
        ("Rule", {"fields": ["scope", "channels", "tag", "max_count", "window_minutes", "counts_transactional"]}),
        ("History", {"fields": ["created_at", "created_by", "updated_at", "updated_by"]}),
    ]

    @admin.display(description="Rule")
    def in_words(self, obj: FrequencyRule) -> str:
        return _sentence(obj.describe()) if obj.pk else "—"

    def get_urls(self):
        # Here rather than on the site: a page of the policy, for those who may see the policy.
        page = path("preview/", self.admin_site.admin_view(self.preview_view), name="orchestrator_governor_preview")
        return [page, *super().get_urls()]

    def preview_view(self, request):
        """The saved policy replayed over the last 7 days."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Governor policy preview",
            "comparison": preview(),
            "policy_in_words": _policy_in_words(self.admin_site),
        }
        return TemplateResponse(request, "admin/orchestrator/governor/preview.html", context)


def _policy_in_words(site: admin.AdminSite) -> list[str]:
    """The saved policy as the changelists say it: enabled caps, quiet hours, then the settings."""
    rules = [f"{rule.name}: {rule.describe()}" for rule in FrequencyRule.objects.filter(enabled=True)]
    quiet = [_sentence(quiet.describe()) for quiet in QuietHoursRule.objects.filter(enabled=True)]
    settings_row = GovernorSettings.objects.filter(pk=GovernorSettings.SINGLETON_PK).first() or GovernorSettings()
    return [*rules, *quiet, _sentence(site.get_model_admin(GovernorSettings).summary(settings_row))]


class GovernorSettingsForm(forms.ModelForm):
    marketing_opt_in_channels = forms.MultipleChoiceField(
        label="Marketing needs an opt-in on",
        choices=Channel.choices, widget=forms.CheckboxSelectMultiple, required=False,
        help_text=GovernorSettings._meta.get_field("marketing_opt_in_channels").help_text,
    )

    class Meta:
        model = GovernorSettings
        fields = ["min_spacing_minutes", "fallback_timezone", "in_app_counts", "defer_horizon_hours", "marketing_opt_in_channels"]


@admin.register(GovernorSettings)
class GovernorSettingsAdmin(PolicyModelAdmin):
    """One row (pk=1): edited in place, never added twice, never deleted."""

    form = GovernorSettingsForm
    list_display = ["__str__", "summary", "updated_at", "updated_by"]
    list_select_related = ["updated_by"]
    fields = [
        "min_spacing_minutes", "fallback_timezone", "in_app_counts", "defer_horizon_hours", "marketing_opt_in_channels",
        "updated_at", "updated_by",
    ]
    readonly_fields = ["updated_at", "updated_by"]

    def has_add_permission(self, request, *args) -> bool:
        return super().has_add_permission(request, *args) and not GovernorSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Settings")
    def summary(self, obj: GovernorSettings) -> str:
        spacing = f"{window_in_words(obj.min_spacing_minutes)} between marketing messages" if obj.min_spacing_minutes else "no minimum spacing"
        in_app = "in-app counted" if obj.in_app_counts else "in-app not counted"
        opt_in = ", ".join(Channel(c).label for c in obj.marketing_opt_in_channels or ()) or "no channel"
        return (
            f"{spacing}; fallback time zone {obj.fallback_timezone}; {in_app}; defer up to {obj.defer_horizon_hours} h; "
            f"marketing opt-in needed on {opt_in}"
        )


@admin.register(QuietHoursRule)
class QuietHoursRuleAdmin(PolicyModelAdmin):
    list_display = ["channel", "in_words", "enabled", "updated_at", "updated_by"]
    list_filter = ["enabled"]
    list_select_related = ["updated_by"]
    fields = ["channel", "enabled", "start", "end", "updated_at", "updated_by"]
    readonly_fields = ["updated_at", "updated_by"]

    @admin.display(description="Quiet hours")
    def in_words(self, obj: QuietHoursRule) -> str:
        return _sentence(obj.describe())


@admin.register(PolicyChange)
class PolicyChangeAdmin(ReadOnlyModelAdmin):
    """The audit trail: written only by the services above; nobody edits or deletes it."""

    view_capability = Capability.MANAGE_POLICY
    change_capability = Capability.MANAGE_POLICY
    list_display = ["at", "username", "action", "model_label", "object_repr", "changed_fields"]
    list_filter = ["action", "model_label", ("user", admin.RelatedOnlyFieldListFilter), "at"]
    search_fields = ["object_repr", "username"]
    date_hierarchy = "at"
    fields = ["at", "user", "username", "action", "model_label", "object_id", "object_repr", "changed_fields", "before_json", "after_json"]
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # not even a superuser: the trail is the point

    @admin.display(description="Changed fields")
    def changed_fields(self, obj: PolicyChange) -> str:
        before, after = obj.before or {}, obj.after or {}
        return ", ".join(sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)))

    @admin.display(description="Before")
    def before_json(self, obj: PolicyChange) -> str:
        return pretty_json(obj.before)

    @admin.display(description="After")
    def after_json(self, obj: PolicyChange) -> str:
        return pretty_json(obj.after)


@admin.register(GovernorVerdict)
class GovernorVerdictAdmin(ReadOnlyModelAdmin):
    """Every send the governor deferred or suppressed, with its rule and counts."""

    view_capability = Capability.MANAGE_POLICY
    change_capability = Capability.MANAGE_POLICY
    list_display = ["at", "customer", "decision", "channel", "rule", "until", "journey_id", "node_id"]
    list_filter = ["decision", "channel", "rule", "at"]
    search_fields = ["=customer__external_id", "rule"]
    list_select_related = ["customer"]
    show_full_result_count = False
    fields = ["at", "customer", "decision", "until", "rule", "reason", "counts_json", "channel", "category",
              "journey_id", "enrollment_id", "node_id", "message_id"]
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Counts")
    def counts_json(self, obj: GovernorVerdict) -> str:
        return pretty_json(obj.counts)
