"""Admin of the provider accounts (``ProviderConfig``): the Admin role only, secrets write-only.

The form is built from the adapters' declared ``option_fields`` and ``secret_fields``.
A secret is never rendered back, not even masked: its input is always empty
(``render_value=False``), an empty input keeps the stored value, and a "clear" box
removes it. The page says only *whether* a secret is stored. Saves and deletes go
through ``channels_app.provider_configs``, which audits them without secret values.

Imported by ``channels_app.admin`` (admin autodiscovery imports only ``<app>.admin``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import escape

from channels_app.models import MessageStatus, ProviderConfig
from channels_app.provider_configs import (
    SecretChanges,
    do_delete_provider_configs,
    do_save_provider_config,
    do_send_test_message,
)
from channels_app.providers import (
    PROVIDERS,
    Provider,
    ProviderField,
    declared_fields,
    provider_choices,
)
from orchestrator.admin import ChorusModelAdmin
from orchestrator.roles import Capability

BASE_FIELDS = ["channel", "provider", "label", "enabled", "is_primary", "failover_order"]
HISTORY_FIELDS = ["secrets_stored", "created_at", "created_by", "updated_at", "updated_by"]
OPTION_FORM_FIELDS = {
    "text": forms.CharField, "url": forms.URLField, "email": forms.EmailField,
    "int": forms.IntegerField, "float": forms.FloatField,
}
BOOL_CHOICES = [("", "Default"), ("true", "Yes"), ("false", "No")]


def form_key(adapter: type[Provider], field: ProviderField) -> str:
    return f"{adapter.name}__{field.name}"


def clear_key(adapter: type[Provider], field: ProviderField) -> str:
    return f"{adapter.name}__{field.name}__clear"


def _option_field(field: ProviderField) -> forms.Field:
    # The admin renders help text as HTML: "Acme <news@acme.example>" must stay visible.
    if field.kind == "bool":  # stored as "true"/"false", which the adapters' flags read
        return forms.ChoiceField(label=field.label, help_text=escape(field.help_text), required=False, choices=BOOL_CHOICES)
    extra = {"assume_scheme": "https"} if field.kind == "url" else {}
    form_field = OPTION_FORM_FIELDS.get(field.kind, forms.CharField)
    return form_field(label=field.label, help_text=escape(field.help_text), required=False, **extra)


def _secret_field(field: ProviderField) -> forms.CharField:
    # render_value=False: the value is never sent back to the browser, even after an error.
    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
    return forms.CharField(label=field.label, help_text=escape(field.help_text), required=False, strip=False, widget=widget)


def _adapter_fields(adapter: type[Provider]) -> dict[str, forms.Field]:
    fields: dict[str, forms.Field] = {}
    for field in declared_fields(adapter, "option_fields"):
        fields[form_key(adapter, field)] = _option_field(field)
    for field in declared_fields(adapter, "secret_fields"):
        fields[form_key(adapter, field)] = _secret_field(field)
        fields[clear_key(adapter, field)] = forms.BooleanField(label=f"Clear {field.label.lower()}", required=False)
    return fields


def _shown(field: ProviderField, value: Any) -> Any:
    """A stored option as its input shows it (a flag stored as a boolean or a word)."""
    if field.kind != "bool" or value in (None, ""):
        return value
    return "true" if str(value).strip().lower() in {"1", "true", "yes", "on"} else "false"


class ProviderConfigForm(forms.ModelForm):
    """The plain fields; ``form_for`` adds each offered adapter's option and secret fields."""

    adapters: ClassVar[list[type[Provider]]] = []
    provider = forms.ChoiceField(choices=provider_choices, help_text=ProviderConfig._meta.get_field("provider").help_text)

    class Meta:
        model = ProviderConfig
        fields = BASE_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = set(self.instance.secrets()) if self.instance.pk else set()
        for adapter in self.adapters:
            mine = adapter.name == self.instance.provider
            for field in declared_fields(adapter, "option_fields"):
                if mine:
                    value = (self.instance.options or {}).get(field.name)
                    self.fields[form_key(adapter, field)].initial = _shown(field, value)
            for field in declared_fields(adapter, "secret_fields"):
                is_stored = mine and field.name in stored
                note = "A value is stored: leave empty to keep it." if is_stored else "Not set."
                self.fields[form_key(adapter, field)].help_text = " ".join(filter(None, [escape(field.help_text), note]))

    def _chosen(self) -> type[Provider] | None:
        return PROVIDERS.get(self.cleaned_data.get("provider") or self.instance.provider)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        adapter = self._chosen()
        if adapter is None or adapter not in self.adapters:
            return cleaned
        stored = set(self.instance.secrets()) if self.instance.pk else set()
        for field in declared_fields(adapter, "option_fields"):
            if field.required and cleaned.get(form_key(adapter, field)) in (None, ""):
                self.add_error(form_key(adapter, field), "Required by this provider.")
        for field in declared_fields(adapter, "secret_fields"):
            kept = field.name in stored and not cleaned.get(clear_key(adapter, field))
            if field.required and not cleaned.get(form_key(adapter, field)) and not kept:
                self.add_error(form_key(adapter, field), "Required by this provider.")
        return cleaned

    def options(self) -> dict[str, Any]:
        """The stored options with the chosen adapter's declared ones as entered (empty ones removed)."""
        options = dict(self.instance.options or {})
        adapter = self._chosen()
        for field in declared_fields(adapter, "option_fields") if adapter else ():
            value = self.cleaned_data.get(form_key(adapter, field))
            if value in (None, ""):
                options.pop(field.name, None)
            else:
                options[field.name] = value
        return options

    def secret_changes(self) -> SecretChanges:
        adapter = self._chosen()
        fields = declared_fields(adapter, "secret_fields") if adapter else []
        new = {f.name: self.cleaned_data.get(form_key(adapter, f)) or "" for f in fields}
        cleared = frozenset(f.name for f in fields if self.cleaned_data.get(clear_key(adapter, f)))
        return SecretChanges(set={k: v for k, v in new.items() if v}, cleared=cleared)


def form_for(adapters: list[type[Provider]], *, provider_fixed: bool) -> type[ProviderConfigForm]:
    """The form with these adapters' fields; without the provider choice once it is fixed (read-only)."""
    attrs: dict[str, Any] = {"adapters": adapters}
    if provider_fixed:
        attrs["provider"] = None  # the admin drops read-only model fields, not declared ones like this
    for adapter in adapters:
        attrs.update(_adapter_fields(adapter))
    return type("ProviderConfigForm", (ProviderConfigForm,), attrs)


RECIPIENT_HELP = {
    "email": ("you@example.com", "An email address you can read."),
    "sms": ("+14155550100", "A phone number in E.164 form: + and the country code, no spaces."),
    "push": ("https://fcm.googleapis.com/fcm/send/…", "The endpoint (Web Push) or registration token (FCM) of one "
             "of your customers' enabled push contact points."),
    "in_app": ("inbox", "Any value: the message goes to the inbox of the admin test customer."),
}


class SendTestForm(forms.Form):
    to = forms.CharField(label="Send to", max_length=500)

    def __init__(self, *args, channel: str, **kwargs):
        super().__init__(*args, **kwargs)
        placeholder, help_text = RECIPIENT_HELP.get(channel, ("", ""))
        self.fields["to"].help_text = help_text
        self.fields["to"].widget.attrs.update({"placeholder": placeholder, "size": 50, "autofocus": True})


class ProviderConfigAdmin(ChorusModelAdmin):
    view_capability = Capability.MANAGE_CREDENTIALS
    change_capability = Capability.MANAGE_CREDENTIALS
    change_form_template = "admin/channels_app/providerconfig/change_form.html"
    list_display = ["label", "channel", "provider", "is_primary", "failover_order", "enabled", "updated_at", "updated_by"]
    list_filter = ["channel", "provider", "enabled"]
    list_select_related = ["updated_by"]
    search_fields = ["label"]

    def _adapters(self, obj: ProviderConfig | None) -> list[type[Provider]]:
        if obj is None:  # adding: every adapter's fields, the chosen one's are used
            return [PROVIDERS[name] for name in sorted(PROVIDERS)]
        return [PROVIDERS[obj.provider]] if obj.provider in PROVIDERS else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = form_for(self._adapters(obj), provider_fixed=obj is not None)
        return super().get_form(request, obj, change=change, **kwargs)

    def add_view(self, request, form_url="", extra_context=None):
        # Which adapters send on which channel: the add page offers only the chosen channel's.
        channels = {name: sorted(adapter.channels) for name, adapter in PROVIDERS.items()}
        return super().add_view(request, form_url, {**(extra_context or {}), "provider_channels": channels})

    def get_readonly_fields(self, request, obj=None):
        # The provider is fixed once created: its secrets mean nothing to another adapter.
        return [*HISTORY_FIELDS, "provider"] if obj is not None else HISTORY_FIELDS

    def get_fieldsets(self, request, obj=None):
        fieldsets: list = [(None, {"fields": BASE_FIELDS})]
        for adapter in self._adapters(obj):
            options = [form_key(adapter, f) for f in declared_fields(adapter, "option_fields")]
            # Nothing is stored yet on the add page: nothing to clear.
            keys = (form_key,) if obj is None else (form_key, clear_key)
            secrets = [key(adapter, f) for f in declared_fields(adapter, "secret_fields") for key in keys]
            if options or secrets:
                note = f"Used only when the provider is {adapter.name}." if obj is None else ""
                # The add page shows only the chosen provider's fieldset (provider_admin.js).
                fieldsets.append((f"{adapter.name}", {"fields": options + secrets, "description": note,
                                                      "classes": ["provider-fields", f"provider-{adapter.name}"]}))
        if obj is not None:
            fieldsets.append(("History", {"fields": HISTORY_FIELDS}))
        return fieldsets

    @admin.display(description="Secrets stored")
    def secrets_stored(self, obj: ProviderConfig) -> str:
        """Which secrets are stored, by name only."""
        names = sorted(obj.secrets()) if obj.pk else []
        return ", ".join(names) or "none"

    def save_model(self, request, obj, form, change):
        obj.options = form.options()
        do_save_provider_config(obj, request.user, created=not change, secrets=form.secret_changes())

    def delete_model(self, request, obj):
        do_delete_provider_configs([obj], request.user)

    def delete_queryset(self, request, queryset):
        do_delete_provider_configs(list(queryset), request.user)

    def get_urls(self):
        view = self.admin_site.admin_view(self.send_test_view)
        return [path("<path:object_id>/send-test/", view, name="channels_app_providerconfig_send_test"), *super().get_urls()]

    def send_test_view(self, request, object_id: str):
        """Ask for a recipient, send one transactional test message through this account, say what happened."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        config = get_object_or_404(ProviderConfig, pk=object_id)
        form = SendTestForm(request.POST or None, channel=config.channel)
        if request.method == "POST" and form.is_valid():
            outcome = do_send_test_message(config, form.cleaned_data["to"])
            text = f"Test message {outcome.message.public_id}: {outcome.status}; {config.provider} answered: {outcome.answer}"
            level = messages.SUCCESS if outcome.status == MessageStatus.SENT else messages.ERROR
            self.message_user(request, text, level)
            return HttpResponseRedirect(reverse("admin:channels_app_providerconfig_change", args=[config.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts, "original": config, "form": form, "title": f"Send a test message through {config}",
        }
        return TemplateResponse(request, "admin/channels_app/providerconfig/send_test.html", context, status=422 if form.errors else 200)


admin.site.register(ProviderConfig, ProviderConfigAdmin)
