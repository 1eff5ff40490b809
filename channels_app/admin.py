"""Admin for the message ledger (read-only, because only channels_app.ledger writes it) and
for the channel content rules (the Admin role only, every change in the policy audit trail).
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Q

from channels_app import provider_admin  # noqa: F401  (registers the provider accounts' admin)
from channels_app.content_rules import RULE_NAMES
from channels_app.content_rules_loading import forget_rules
from channels_app.models import ContentRuleSettings, Message, MessageTransition, OutboxMessage
from customers.admin import customer_link
from orchestrator.admin import ReadOnlyModelAdmin, ReadOnlyTabularInline, pretty_json
from orchestrator.governor.admin import PolicyModelAdmin, do_save_policy_row
from orchestrator.governor.models import PolicyChange

TIMESTAMPS = [
    "queued_at", "sending_at", "sent_at", "delivered_at", "opened_at", "clicked_at",
    "converted_at", "failed_at", "bounced_at", "suppressed_at", "deferred_at", "unknown_at", "updated_at",
]


class MessageTransitionInline(ReadOnlyTabularInline):
    model = MessageTransition
    fields = ["at", "from_status", "to_status", "detail"]
    readonly_fields = fields
    show_change_link = False


class LedgerReadOnly(ReadOnlyModelAdmin):
    """Nobody edits or deletes the ledger here, superusers included."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# The ledger is the biggest table: no date_hierarchy (a DISTINCT over every row to list
# the years), no full result count; the date filter and searches use its indexes.
@admin.register(Message)
class MessageAdmin(LedgerReadOnly):
    list_display = ["queued_at", "short_id", "customer_column", "channel", "category", "status", "provider", "summary"]
    list_filter = ["channel", "status", "category", "provider", "queued_at"]
    # What get_search_results below searches (exact matches, each served by an index).
    search_fields = ["=public_id", "=idempotency_key", "=provider_message_id", "=customer__external_id"]
    search_help_text = "Exact public id, idempotency key, provider message id or customer external id."
    list_select_related = ["customer"]
    show_full_result_count = False
    inlines = [MessageTransitionInline]
    fieldsets = [
        (None, {"fields": ["public_id", "customer_column", "channel", "category", "status", "error"]}),
        ("Content", {"fields": ["template_name", "content_json"]}),
        ("Provider", {"fields": ["provider", "provider_message_id", "idempotency_key"]}),
        ("Journey", {"fields": ["journey_id", "journey_version_id", "node_id", "enrollment_id"]}),
        ("Timestamps", {"fields": TIMESTAMPS}),
    ]
    readonly_fields = [
        "public_id", "customer_column", "channel", "category", "status", "error", "template_name", "content_json",
        "provider", "provider_message_id", "idempotency_key", "journey_id", "journey_version_id", "node_id",
        "enrollment_id", *TIMESTAMPS,
    ]

    @admin.display(description="Id", ordering="public_id")
    def short_id(self, obj: Message) -> str:
        return str(obj.public_id)[:8]

    @admin.display(description="Customer", ordering="customer__external_id")
    def customer_column(self, obj: Message) -> str:
        return customer_link(obj.customer)

    @admin.display(description="Content")
    def content_json(self, obj: Message) -> str:
        return pretty_json(obj.content)

    def get_search_results(self, request, queryset, search_term):
        """A UUID is looked up as a public id exactly; other terms as exact keys and ids."""
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(idempotency_key=term) | Q(provider_message_id=term) | Q(customer__external_id=term)
        try:
            match |= Q(public_id=uuid.UUID(term))
        except ValueError:
            pass
        return queryset.filter(match), False


@admin.register(MessageTransition)
class MessageTransitionAdmin(LedgerReadOnly):
    list_display = ["at", "message", "from_status", "to_status", "detail"]
    list_filter = ["to_status", "from_status", "at"]
    search_fields = ["=message__idempotency_key"]
    list_select_related = ["message"]
    show_full_result_count = False
    readonly_fields = ["message", "from_status", "to_status", "at", "detail"]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(LedgerReadOnly):
    """What the development outbox recorded instead of sending (also readable at /outbox/)."""

    list_display = ["recorded_at", "channel", "to", "message", "attempts"]
    list_filter = ["channel", "recorded_at"]
    search_fields = ["=to", "=message__idempotency_key"]
    list_select_related = ["message"]
    show_full_result_count = False
    readonly_fields = ["message", "channel", "to", "content_json", "recorded_at", "attempts"]
    fields = readonly_fields

    @admin.display(description="Content")
    def content_json(self, obj: OutboxMessage) -> str:
        return pretty_json(obj.content)


# --- Content rules -------------------------------------------------------------------------


def do_save_content_rules(row: ContentRuleSettings, user, *, created: bool) -> PolicyChange:
    """Save the content rules with a PolicyChange (who, before, after), like the frequency
    policy; once committed, every process reloads them."""
    with transaction.atomic():
        change = do_save_policy_row(row, user, created=created)
        transaction.on_commit(forget_rules)
    return change


class PhraseListField(forms.CharField):
    """A word list edited one phrase per line; blank lines are dropped, each line trimmed.

    Not required: an empty list reaches the model's validation, whose message names the rule.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 8, "cols": 60}))
        super().__init__(required=False, **kwargs)

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value) -> list[str]:
        text = super().to_python(value)
        return [line.strip() for line in text.splitlines() if line.strip()]


def _phrase_list(name: str) -> PhraseListField:
    return PhraseListField(help_text=f"{ContentRuleSettings._meta.get_field(name).help_text} One per line.")


class ContentRuleSettingsForm(forms.ModelForm):
    sms_opt_out_phrases = _phrase_list("sms_opt_out_phrases")
    sms_promotional_terms = _phrase_list("sms_promotional_terms")
    in_app_presence_events = _phrase_list("in_app_presence_events")

    class Meta:
        model = ContentRuleSettings
        fields = list(RULE_NAMES)


@admin.register(ContentRuleSettings)
class ContentRuleSettingsAdmin(PolicyModelAdmin):
    """One row (pk=1): edited in place, never added twice, never deleted. Only MANAGE_POLICY."""

    form = ContentRuleSettingsForm
    list_display = ["__str__", "updated_at", "updated_by"]
    list_select_related = ["updated_by"]
    readonly_fields = ["updated_at", "updated_by"]
    fieldsets = [
        ("Push", {"fields": ["push_title_max_chars", "push_body_max_chars", "push_max_actions"]}),
        ("SMS", {"fields": [
            "sms_max_segments_marketing", "sms_max_segments_transactional", "sms_opt_out_phrases",
            "sms_promotional_terms", "sms_discount_code_pattern",
        ]}),
        ("Email", {"fields": ["email_subject_max_chars"]}),
        ("In-app", {"fields": ["in_app_requires_app_presence", "in_app_presence_events"]}),
        ("History", {"fields": ["updated_at", "updated_by"]}),
    ]

    def save_model(self, request, obj, form, change):
        do_save_content_rules(obj, request.user, created=not change)

    def has_add_permission(self, request, *args) -> bool:
        return super().has_add_permission(request, *args) and not ContentRuleSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
