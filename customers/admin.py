"""Admin for customers and what Chorus knows about them.

Consent is never edited as a row: the customer page links to a form that calls
``do_set_consent`` (history kept, actor recorded). Customers are never deleted here,
only erased (``do_erase_customer``), which keeps suppression hashes. Events, profile
updates and consent history are records: read-only. Clear identifiers are never shown
for suppressions; push subscription keys are never shown at all.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.admin.utils import unquote
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from customers.consent import apply_suppressions, do_erase_customer, do_set_consent
from customers.consent_form import ConsentForm
from customers.enums import BLOCKING_CONSENT, ConsentStatus
from customers.models import (
    Consent,
    ConsentChange,
    ContactPoint,
    Customer,
    Event,
    ProfileUpdate,
    Segment,
    SuppressedIdentifier,
    hash_identifier,
)
from customers.profiles import do_save_customer, sync_contact_points
from customers.segments import InvalidSegment, member_count, validate_definition
from customers.validators import validate_e164
from orchestrator.admin import (
    CapabilityAdminMixin,
    ChorusModelAdmin,
    ReadOnlyModelAdmin,
    ReadOnlyTabularInline,
    pretty_json,
)
from orchestrator.roles import Capability

ADMIN_SOURCE = "admin"


def customer_link(customer: Customer) -> str:
    url = reverse("admin:customers_customer_change", args=[customer.pk])
    return format_html('<a href="{}">{}</a>', url, customer.external_id)


class CustomerColumnMixin:
    @admin.display(description="Customer", ordering="customer__external_id")
    def customer_column(self, obj) -> str:
        return customer_link(obj.customer)


class DistinctValuesFilter(admin.SimpleListFilter):
    """A filter over the first values of a column, bounded so it stays cheap on big tables."""

    field_name = ""
    limit = 100

    def lookups(self, request, model_admin):
        values = (
            model_admin.get_queryset(request).order_by(self.field_name)
            .values_list(self.field_name, flat=True).distinct()[: self.limit]
        )
        return [(v, v) for v in values]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field_name: self.value()}) if self.value() else queryset


def distinct_filter(field_name: str, title: str) -> type[DistinctValuesFilter]:
    attrs = {"field_name": field_name, "title": title, "parameter_name": field_name}
    return type(f"{field_name.title()}Filter", (DistinctValuesFilter,), attrs)


# --- Customers ---------------------------------------------------------------------------


class ContactPointInline(CapabilityAdminMixin, admin.TabularInline):
    model = ContactPoint
    change_capability = Capability.EDIT_CUSTOMERS
    extra = 0
    # `keys` (Web Push p256dh/auth) is deliberately absent: never shown, never edited here.
    fields = ["channel", "address", "platform", "label", "enabled", "last_used_at", "last_failure_at", "last_failure_reason"]
    readonly_fields = ["last_used_at", "last_failure_at", "last_failure_reason"]
    show_change_link = True


class ConsentInline(ReadOnlyTabularInline):
    """Read-only: changes go through "Set consent", which keeps history and the suppression list."""

    model = Consent
    fields = ["channel", "category", "status", "source", "changed_at"]
    readonly_fields = fields
    show_change_link = False




@admin.register(Customer)
class CustomerAdmin(ChorusModelAdmin):
    change_capability = Capability.EDIT_CUSTOMERS
    list_display = ["external_id", "email", "phone", "name", "timezone", "last_seen_at", "profile_link"]
    list_filter = [("email", admin.EmptyFieldListFilter), ("phone", admin.EmptyFieldListFilter), "last_seen_at", "created_at"]
    search_fields = ["=external_id", "email", "=phone"]
    readonly_fields = ["first_seen_at", "last_seen_at", "created_at", "updated_at", "profile_link"]
    fields = ["external_id", "email", "phone", "timezone", "locale", "traits", "first_seen_at", "last_seen_at", "created_at", "updated_at", "profile_link"]
    inlines = [ContactPointInline, ConsentInline]
    actions = ["erase_customers"]
    show_full_result_count = False

    def view_on_site(self, obj: Customer) -> str:
        return reverse("customers:profile", args=[obj.pk])

    @admin.display(description="Name")
    def name(self, obj: Customer) -> str:
        return obj.display_name

    @admin.display(description="Profile")
    def profile_link(self, obj: Customer) -> str:
        if obj.pk is None:
            return "—"
        return format_html('<a href="{}">Open profile</a>', reverse("customers:profile", args=[obj.pk]))

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # a plain delete would drop the suppression hashes
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_erase_permission(self, request) -> bool:
        return self._can(request, Capability.EDIT_CUSTOMERS)

    def save_model(self, request, obj, form, change):
        # Contact points and suppressions follow the email and phone, as on ingestion.
        obj._address_changes = do_save_customer(obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # The contact-point inline is saved after save_model: an edit to the replaced
        # address's row in the same submit would re-enable it. Apply the change again.
        sync_contact_points(getattr(form.instance, "_address_changes", []))

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/consent/", self.admin_site.admin_view(self.consent_view), name=f"{prefix}_consent"),
            path("<path:object_id>/erase/", self.admin_site.admin_view(self.erase_view), name=f"{prefix}_erase"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_edit_customer": self.has_erase_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _context(self, request, title: str, **extra) -> dict:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title, **extra}

    def consent_view(self, request, object_id):
        if not self.has_change_permission(request):
            raise PermissionDenied
        customer = get_object_or_404(Customer, pk=unquote(object_id))
        form = ConsentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            result = do_set_consent(customer, data["channel"], data["category"], data["status"], source=ADMIN_SOURCE, actor=request.user)
            state = "is now" if result.changed else "was already"
            self.message_user(request, f"Consent for {data['channel']}/{data['category']} {state} {data['status']}.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:customers_customer_change", args=[customer.pk]))
        context = self._context(
            request, "Set consent", original=customer, form=form,
            consents=customer.consents.all(), history=customer.consent_changes.select_related("actor")[:20],
        )
        return TemplateResponse(request, "admin/customers/customer/consent.html", context, status=422 if form.errors else 200)

    def erase_view(self, request, object_id):
        if not self.has_erase_permission(request):
            raise PermissionDenied
        customer = get_object_or_404(Customer, pk=unquote(object_id))
        return self._erase_or_confirm(request, [customer])

    @admin.action(description="Erase selected customers (GDPR)", permissions=["erase"])
    def erase_customers(self, request, queryset):
        return self._erase_or_confirm(request, list(queryset))

    def _erase_or_confirm(self, request, customers: list[Customer]):
        if request.POST.get("confirm") == "yes":
            for customer in customers:
                self._erase(request, customer)
            self.message_user(request, f"Erased {len(customers)} customer(s); suppression hashes kept.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:customers_customer_changelist"))
        context = self._context(
            request, "Erase customers (GDPR)", customers=customers,
            action_checkbox_name=admin.helpers.ACTION_CHECKBOX_NAME,
        )
        return TemplateResponse(request, "admin/customers/customer/erase_confirmation.html", context)

    @transaction.atomic
    def _erase(self, request, customer: Customer) -> None:
        pk = customer.pk
        do_erase_customer(customer)  # also scrubs the admin log of this person
        LogEntry.objects.create(
            user_id=request.user.pk, content_type=ContentType.objects.get_for_model(Customer), object_id=str(pk),
            object_repr=f"Customer {pk} (erased)", action_flag=DELETION, change_message="Erased (GDPR); suppression hashes kept.",
        )


@admin.register(ContactPoint)
class ContactPointAdmin(CustomerColumnMixin, ChorusModelAdmin):
    change_capability = Capability.EDIT_CUSTOMERS
    list_display = ["customer_column", "channel", "short_address", "platform", "label", "enabled", "last_used_at", "last_failure_at"]
    list_filter = ["channel", "platform", "enabled"]
    search_fields = ["=customer__external_id", "customer__email", "label"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    fields = ["customer", "channel", "address", "platform", "label", "enabled", "last_used_at", "last_failure_at", "last_failure_reason", "created_at"]
    readonly_fields = ["last_used_at", "last_failure_at", "last_failure_reason", "created_at"]

    @admin.display(description="Address")
    def short_address(self, obj: ContactPoint) -> str:
        return obj.short_address


@admin.register(Consent)
class ConsentAdmin(CustomerColumnMixin, ReadOnlyModelAdmin):
    """Current consent, for looking up. Changed only through "Set consent" on a customer."""

    list_display = ["customer_column", "channel", "category", "status", "source", "changed_at"]
    list_filter = ["channel", "category", "status", "changed_at"]
    search_fields = ["=customer__external_id", "=customer__email"]
    list_select_related = ["customer"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting a row would bypass history and the suppression list


@admin.register(ConsentChange)
class ConsentChangeAdmin(CustomerColumnMixin, ReadOnlyModelAdmin):
    list_display = ["changed_at", "customer_column", "channel", "category", "previous_status", "status_column", "source", "actor"]
    list_filter = ["channel", "category", "status", distinct_filter("source", "source"), "changed_at"]
    search_fields = ["=customer__external_id", "=customer__email"]
    list_select_related = ["customer", "actor"]
    date_hierarchy = "changed_at"

    @admin.display(description="Status", ordering="status", empty_value="not set")
    def status_column(self, obj: ConsentChange) -> str | None:
        # Empty when a lifted bounce left the pair with no consent (customers.consent.NOT_SET).
        return obj.get_status_display() or None


# Events and profile updates can run to millions of rows: no date_hierarchy (its year
# list is a DISTINCT over the whole table) and no full result count.
@admin.register(Event)
class EventAdmin(CustomerColumnMixin, ReadOnlyModelAdmin):
    list_display = ["occurred_at", "name", "customer_column", "source", "received_at"]
    list_filter = [distinct_filter("name", "name"), distinct_filter("source", "source"), "occurred_at"]
    search_fields = ["=customer__external_id", "=customer__email", "=source_message_id"]
    list_select_related = ["customer"]
    fields = ["customer_column", "name", "properties_json", "occurred_at", "received_at", "source", "source_message_id"]
    readonly_fields = fields
    show_full_result_count = False

    @admin.display(description="Properties")
    def properties_json(self, obj: Event) -> str:
        return pretty_json(obj.properties)


@admin.register(ProfileUpdate)
class ProfileUpdateAdmin(CustomerColumnMixin, ReadOnlyModelAdmin):
    list_display = ["occurred_at", "customer_column", "changed_keys", "source", "received_at"]
    list_filter = [distinct_filter("source", "source"), "occurred_at"]
    search_fields = ["=customer__external_id", "=customer__email", "=source_message_id"]
    list_select_related = ["customer"]
    fields = ["customer_column", "changes_json", "occurred_at", "received_at", "source", "source_message_id"]
    readonly_fields = fields
    show_full_result_count = False

    @admin.display(description="Changed")
    def changed_keys(self, obj: ProfileUpdate) -> str:
        return ", ".join(sorted(obj.changes or {}))[:120]

    @admin.display(description="Changes")
    def changes_json(self, obj: ProfileUpdate) -> str:
        return pretty_json(obj.changes)


# --- Suppressions ------------------------------------------------------------------------


class UnechoedTextInput(forms.TextInput):
    """A text box that never writes a value back into the page (not even after an error)."""

    def format_value(self, value):
        return None


BLOCKING_CHOICES = [(value, label) for value, label in ConsentStatus.choices if value in BLOCKING_CONSENT]


class SuppressionAddForm(forms.ModelForm):
    value = forms.CharField(
        label="Email, phone or external id", max_length=255, widget=UnechoedTextInput(attrs={"autocomplete": "off"}),
        help_text="Only its keyed hash (HMAC-SHA256) is stored; the clear value is not kept or shown again.",
    )
    status = forms.ChoiceField(choices=BLOCKING_CHOICES, initial=ConsentStatus.UNSUBSCRIBED)

    class Meta:
        model = SuppressedIdentifier
        fields = ["kind", "channel", "status", "reason"]

    def clean(self):
        data = super().clean()
        value, kind = (data.get("value") or "").strip(), data.get("kind")
        if not value or not kind:
            return data
        try:
            if kind == SuppressedIdentifier.Kind.EMAIL:
                validate_email(value)
            elif kind == SuppressedIdentifier.Kind.PHONE:
                validate_e164(value)
        except ValidationError as exc:
            raise ValidationError({"value": [f"Not a valid {kind}: {m}" for m in exc.messages]}) from None
        if kind == SuppressedIdentifier.Kind.EXTERNAL_ID and data.get("status") == ConsentStatus.BOUNCED:
            raise ValidationError({"status": "A bounce is about an address: suppress the email or phone instead."})
        self.instance.identifier_hash = hash_identifier(kind, value)
        channel = data.get("channel")
        if channel and SuppressedIdentifier.objects.filter(identifier_hash=self.instance.identifier_hash, channel=channel).exists():
            raise ValidationError({"value": "This identifier is already suppressed on that channel."})
        data["value"] = value
        return data


class SuppressionChangeForm(forms.ModelForm):
    status = forms.ChoiceField(choices=BLOCKING_CHOICES)

    class Meta:
        model = SuppressedIdentifier
        fields = ["status", "reason"]

    def clean_status(self):
        status = self.cleaned_data["status"]
        if self.instance.kind == SuppressedIdentifier.Kind.EXTERNAL_ID and status == ConsentStatus.BOUNCED:
            raise ValidationError("A bounce is about an address, not a person's external id.")
        return status


@admin.register(SuppressedIdentifier)
class SuppressedIdentifierAdmin(ChorusModelAdmin):
    change_capability = Capability.EDIT_CUSTOMERS
    list_display = ["short_hash", "kind", "channel", "status", "reason", "created_at"]
    list_filter = ["kind", "channel", "status", "created_at"]
    search_fields = ["^identifier_hash"]
    search_help_text = "Search by hash (or its first characters); clear values are never stored."

    @admin.display(description="Hash", ordering="identifier_hash")
    def short_hash(self, obj: SuppressedIdentifier) -> str:
        return f"{obj.identifier_hash[:16]}…"

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = SuppressionChangeForm if obj is not None else SuppressionAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["value", "kind", "channel", "status", "reason"]
        return ["identifier_hash", "kind", "channel", "status", "reason", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["identifier_hash", "kind", "channel", "created_at"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change:
            return
        value, kind = form.cleaned_data["value"], obj.kind
        lookup = {
            SuppressedIdentifier.Kind.EMAIL: "email__iexact",
            SuppressedIdentifier.Kind.PHONE: "phone",
            SuppressedIdentifier.Kind.EXTERNAL_ID: "external_id",  # case-sensitive, as the hash is
        }[kind]
        matched = 0
        for customer in Customer.objects.filter(**{lookup: value}):
            if obj.channel in apply_suppressions(customer):
                matched += 1
        if matched:
            self.message_user(request, f"Applied to {matched} existing customer(s).", messages.INFO)


# --- Segments ----------------------------------------------------------------------------


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["name", "description", "definition"]

    def clean_definition(self):
        definition = self.cleaned_data["definition"]
        try:
            validate_definition(definition)
        except InvalidSegment as exc:
            raise ValidationError([f"{path or 'definition'}: {reason}" for path, reason in exc.problems]) from None
        return definition


@admin.register(Segment)
class SegmentAdmin(ChorusModelAdmin):
    form = SegmentForm
    list_display = ["name", "description", "members", "created_by", "updated_at"]
    search_fields = ["name", "description"]
    list_select_related = ["created_by"]
    readonly_fields = ["members", "created_by", "created_at", "updated_at"]
    fields = ["name", "description", "definition", "members", "created_by", "created_at", "updated_at"]

    @admin.display(description="Members")
    def members(self, obj: Segment) -> str:
        if obj.pk is None:
            return "—"
        try:
            return f"{member_count(obj.definition):,}"
        except ValidationError:
            return "invalid definition"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
