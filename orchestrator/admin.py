"""The admin site is for the Admin role; API keys are created here and shown once.

Who may use the admin: an active user holding the ``admin.site`` capability (the Admin
role, or a superuser), or a Django staff user (who then sees only models their Django
permissions allow). Chorus's own models decide with capabilities from
``orchestrator.roles`` (see ``CapabilityAdminMixin``), not with Django model permissions,
so putting someone in the Admin group is all it takes: no ``is_staff``, no Django
permissions. They sign in at /login/ or /admin/login/ and open /admin/.

The project keeps Django's default ``admin.site`` (``orchestrator.urls`` mounts it); this
module, imported by admin autodiscovery, gives it the rule above and a login form that
accepts Admin-role users. Django's own admins (users, groups, the task queue) still use
Django permissions, so they stay with superusers.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from orchestrator.api_keys import KEY_PREFIX, do_create_api_key, do_revoke_api_key, validate_scopes
from orchestrator.engine.models import Enrollment, EnrollmentStep, SchedulerLease
from orchestrator.models import ApiKey, ApiScope
from orchestrator.roles import Capability, has_capability

# --- The site ----------------------------------------------------------------------------


def may_use_admin(user) -> bool:
    if not (user and user.is_active):
        return False
    return user.is_staff or has_capability(user, Capability.USE_ADMIN)


def _site_has_permission(request: HttpRequest) -> bool:
    return may_use_admin(request.user)


class RoleAwareAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin login accepts Admin-role users, not only ``is_staff`` ones."""

    def confirm_login_allowed(self, user):
        if not may_use_admin(user):
            raise ValidationError(
                self.error_messages["invalid_login"], code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


# The project keeps Django's default site (orchestrator.urls mounts admin.site.urls);
# these two attributes are the whole difference.
admin.site.has_permission = _site_has_permission
admin.site.login_form = RoleAwareAdminAuthenticationForm


class CapabilityAdminMixin:
    """Model permissions from Chorus capabilities instead of Django's per-model perms.

    ``view_capability`` lets a user see the model; ``change_capability`` lets them add,
    change and delete. Read-only admins set ``read_only = True``.
    """

    view_capability: Capability = Capability.USE_ADMIN
    change_capability: Capability = Capability.USE_ADMIN
    read_only = False

    def _can(self, request, capability: Capability) -> bool:
        user = request.user
        return may_use_admin(user) and has_capability(user, Capability.USE_ADMIN) and has_capability(user, capability)

    def has_module_permission(self, request) -> bool:
        return self._can(request, self.view_capability)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._can(request, self.view_capability)

    def has_add_permission(self, request, *args) -> bool:
        return not self.read_only and self._can(request, self.change_capability)

    def has_change_permission(self, request, obj=None) -> bool:
        return not self.read_only and self._can(request, self.change_capability)

    def has_delete_permission(self, request, obj=None) -> bool:
        return not self.read_only and self._can(request, self.change_capability)


class PrettyJSONFormField(forms.JSONField):
    """JSON edited as indented text rather than one long line."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


class ChorusModelAdmin(CapabilityAdminMixin, admin.ModelAdmin):
    formfield_overrides = {
        models.JSONField: {"form_class": PrettyJSONFormField, "widget": forms.Textarea(attrs={"rows": 12, "cols": 80})},
    }


class ReadOnlyModelAdmin(ChorusModelAdmin):
    """Records written by services only: viewable, never added or edited here.

    A superuser may delete (to clean up test data); nobody else.
    """

    read_only = True

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser


class ReadOnlyTabularInline(CapabilityAdminMixin, admin.TabularInline):
    read_only = True
    extra = 0
    can_delete = False
    show_change_link = True


def pretty_json(value) -> str:
    return format_html("<pre class='chorus-json'>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


# --- API keys ----------------------------------------------------------------------------


class ApiKeyCreationForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["name", "source", "scopes", "rate_limit_per_minute"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].required = False
        self.fields["source"].help_text = "Defaults to the name. " + self.fields["source"].help_text

    def clean_scopes(self):
        try:
            return validate_scopes(self.cleaned_data["scopes"])
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def clean_rate_limit_per_minute(self):
        value = self.cleaned_data["rate_limit_per_minute"]
        if value is not None and value < 1:
            raise ValidationError("Must be at least 1; leave empty for the default.")
        return value


class ApiKeyChangeForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "rate_limit_per_minute"]

    def clean_scopes(self):
        try:
            return validate_scopes(self.cleaned_data["scopes"])
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


@admin.register(ApiKey)
class ApiKeyAdmin(ChorusModelAdmin):
    """Creation goes through do_create_api_key; the clear key is shown on one page, once.

    The hash is never a field here. Keys are revoked, not deleted, so what a key sent
    stays explainable.
    """

    view_capability = Capability.MANAGE_API_KEYS
    change_capability = Capability.MANAGE_API_KEYS
    list_display = ["name", "key_prefix", "source", "scope_list", "is_active", "rate_limit_per_minute", "last_used_at", "created_by", "created_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "source", "^prefix"]
    list_select_related = ["created_by"]
    readonly_fields = ["key_prefix", "source", "revoked_at", "last_used_at", "created_by", "created_at"]
    actions = ["revoke_keys"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ApiKeyChangeForm if obj is not None else ApiKeyCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "source", "scopes", "rate_limit_per_minute"]
        return ["name", "key_prefix", "source", "scopes", "rate_limit_per_minute", "revoked_at", "last_used_at", "created_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Key", ordering="prefix")
    def key_prefix(self, obj: ApiKey) -> str:
        return f"{KEY_PREFIX}{obj.prefix}…"

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes or [])

    @admin.display(description="Active", boolean=True, ordering="revoked_at")
    def is_active(self, obj: ApiKey) -> bool:
        return obj.is_active

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        data = form.cleaned_data
        created = do_create_api_key(
            data["name"], list(data["scopes"]), source=data.get("source") or "",
            rate_limit_per_minute=data.get("rate_limit_per_minute"), created_by=request.user,
        )
        request._chorus_clear_key = created.clear_key
        return created.api_key

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def response_add(self, request, obj, post_url_continue=None):
        """Show the clear key on this response only: not in a message, a cookie or a log."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API key created",
            "api_key": obj,
            "clear_key": request._chorus_clear_key,
        }
        response = TemplateResponse(request, "admin/orchestrator/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        active = list(queryset.filter(revoked_at__isnull=True))
        for api_key in active:
            do_revoke_api_key(api_key)
        self.message_user(request, f"Revoked {len(active)} API key(s).", messages.SUCCESS)


# --- Journey runtime: enrollments and their step logs --------------------------------------
# Written only by the engine (orchestrator.engine): read-only records. The web page of an
# enrollment (its path, in the customer's time zone) is linked from each.

def _customer_link(customer) -> str:
    # customers.admin imports this module, so its customer_link cannot be imported here.
    url = reverse("admin:customers_customer_change", args=[customer.pk])
    return format_html('<a href="{}">{}</a>', url, customer.external_id)


def _path_link(enrollment_id: int, journey_id: int) -> str:
    url = reverse("journeys:enrollment", args=[journey_id, enrollment_id])
    return format_html('<a href="{}">Path</a>', url)


class EnrollmentStepInline(ReadOnlyTabularInline):
    model = EnrollmentStep
    fields = ["at", "node_id", "kind", "outcome", "port", "detail", "message_id"]
    readonly_fields = fields
    show_change_link = False
    ordering = ["at", "id"]


@admin.register(Enrollment)
class EnrollmentAdmin(ReadOnlyModelAdmin):
    list_display = [
        "id", "journey", "version_number", "customer_column", "state", "current_node", "entered_at",
        "exit_reason", "converted_at", "conversion_value", "path",
    ]
    list_filter = ["journey", "state", "exit_reason", "holdout", "entered_at"]
    search_fields = ["=customer__external_id"]
    search_help_text = "Exact customer external id."
    list_select_related = ["journey", "customer"]
    show_full_result_count = False
    inlines = [EnrollmentStepInline]
    fieldsets = [
        (None, {"fields": ["journey", "version_number", "customer_column", "path", "state", "current_node", "phase", "due_at", "waiting_for", "wait_message_id", "holdout"]}),
        ("Entry and exit", {"fields": ["trigger_key", "entered_at", "exited_at", "exit_reason", "step_seq"]}),
        ("Conversion", {"fields": ["converted_at", "conversion_value", "conversion_event_id", "touches"]}),
        ("Context", {"fields": ["context_json"]}),
    ]
    readonly_fields = [
        "journey", "version_number", "customer_column", "path", "state", "current_node", "phase", "due_at",
        "waiting_for", "wait_message_id", "holdout", "trigger_key", "entered_at", "exited_at", "exit_reason",
        "step_seq", "converted_at", "conversion_value", "conversion_event_id", "touches", "context_json",
    ]

    def get_queryset(self, request):
        # The version's number, not its graph: one join, no JSON per row.
        return super().get_queryset(request).annotate(version_number_value=models.F("version__number"))

    def view_on_site(self, obj: Enrollment) -> str:
        return reverse("journeys:enrollment", args=[obj.journey_id, obj.pk])

    @admin.display(description="Version", ordering="version__number")
    def version_number(self, obj: Enrollment) -> str:
        return f"v{obj.version_number_value}"

    @admin.display(description="Customer", ordering="customer__external_id")
    def customer_column(self, obj: Enrollment) -> str:
        return _customer_link(obj.customer)

    @admin.display(description="Path")
    def path(self, obj: Enrollment) -> str:
        return _path_link(obj.pk, obj.journey_id)

    @admin.display(description="Touch sequence")
    def touches(self, obj: Enrollment) -> str:
        return pretty_json(obj.touch_sequence)

    @admin.display(description="Context")
    def context_json(self, obj: Enrollment) -> str:
        return pretty_json(obj.context)


@admin.register(EnrollmentStep)
class EnrollmentStepAdmin(ReadOnlyModelAdmin):
    list_display = ["at", "enrollment_link", "journey_id", "node_id", "kind", "outcome", "port", "detail", "message_id"]
    list_filter = ["outcome", "kind", "at"]
    search_fields = ["=enrollment__customer__external_id"]
    search_help_text = "Exact customer external id."
    show_full_result_count = False
    fields = ["enrollment_link", "journey_id", "version_id", "node_id", "kind", "outcome", "port", "detail", "message_id", "at"]
    readonly_fields = fields

    @admin.display(description="Enrollment", ordering="enrollment_id")
    def enrollment_link(self, obj: EnrollmentStep) -> str:
        url = reverse("admin:orchestrator_enrollment_change", args=[obj.enrollment_id])
        return format_html('<a href="{}">#{}</a>', url, obj.enrollment_id)


@admin.register(SchedulerLease)
class SchedulerLeaseAdmin(ReadOnlyModelAdmin):
    """Who runs the engine's poller now (see orchestrator.engine.lease)."""

    list_display = ["name", "holder", "expires_at"]
    readonly_fields = ["name", "holder", "expires_at"]


# The frequency governor's policy (caps, settings, quiet hours) and its audit trail.
# Derived and bookkeeping rows, read-only: the intelligence models' state (rebuilt with
# `recompute_intelligence`), provider receipt ids (webhook idempotency) and the one-message
# API's idempotency keys.
from channels_app.models import ProviderEvent  # noqa: E402
from customers.models import ActivityProfile, ChannelAffinity  # noqa: E402
from orchestrator.api.idempotency import IdempotentRequest  # noqa: E402
from orchestrator.governor import admin as _governor_admin  # noqa: E402, F401
from orchestrator.intelligence.models import PopulationModel  # noqa: E402


@admin.register(ChannelAffinity)
class ChannelAffinityAdmin(ReadOnlyModelAdmin):
    list_display = ["customer_id", "channel", "mean", "sends", "engagements", "as_of"]
    list_filter = ["channel"]
    search_fields = ["=customer__external_id"]
    show_full_result_count = False


@admin.register(ActivityProfile)
class ActivityProfileAdmin(ReadOnlyModelAdmin):
    list_display = ["customer_id", "total", "updated_at"]
    search_fields = ["=customer__external_id"]
    show_full_result_count = False


@admin.register(PopulationModel)
class PopulationModelAdmin(ReadOnlyModelAdmin):
    list_display = ["id", "customers", "computed_at"]


@admin.register(ProviderEvent)
class ProviderEventAdmin(ReadOnlyModelAdmin):
    list_display = ["received_at", "provider", "kind", "event_id", "message_id"]
    list_filter = ["provider", "kind"]
    search_fields = ["=event_id", "=message_id"]
    show_full_result_count = False


@admin.register(IdempotentRequest)
class IdempotentRequestAdmin(ReadOnlyModelAdmin):
    list_display = ["created_at", "owner", "endpoint", "key"]
    search_fields = ["=key"]
    show_full_result_count = False
