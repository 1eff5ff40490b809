"""The admin: who may use it, what it shows, and that every change goes through a service."""

from __future__ import annotations

import datetime
import hashlib
import re

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from channels_app.ledger import QueueRequest, claim_for_sending, do_queue_message
from channels_app.models import Message, MessageTransition, OutboxMessage
from customers.consent import do_set_consent
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
from customers.profiles import do_save_customer
from orchestrator.api_keys import KEY_PREFIX, find_key
from orchestrator.engine.entry import enrol
from orchestrator.engine.lease import acquire
from orchestrator.engine.runner import run_due
from orchestrator.governor.models import PolicyChange
from orchestrator.models import ApiKey, GovernorVerdict
from orchestrator.roles import Role
from tests.journey_factories import linear_graph, make_live_journey, node

OUR_APPS = {"customers", "channels_app", "journeys", "orchestrator"}
PUSH_P256DH = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
PUSH_AUTH = "tBHItJI5svbpez7KI4CCXg"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Users here sign in many times; the production hasher is slow by design.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def admin_role_user(make_user):
    return make_user(Role.ADMIN, username="ada-admin")


@pytest.fixture
def admin_client(client, admin_role_user):
    client.force_login(admin_role_user)
    return client


@pytest.fixture
def customer(db):
    customer = Customer.objects.create(
        external_id="cust-42", email="grace@example.com", phone="+14155550100", traits={"first_name": "Grace"}
    )
    ContactPoint.objects.create(customer=customer, channel="email", address="grace@example.com")
    ContactPoint.objects.create(
        customer=customer, channel="push", platform="web", label="Chrome",
        address="https://fcm.googleapis.com/fcm/send/" + "x" * 120,
        keys={"p256dh": PUSH_P256DH, "auth": PUSH_AUTH},
    )
    return customer


@pytest.fixture
def everything(customer, make_api_key, admin_role_user):
    """One row of every model, so every change page has something to render."""
    do_set_consent(customer, "email", "marketing", "opted_in", source="api")
    do_set_consent(customer, "sms", "marketing", "unsubscribed", source="STOP reply")
    now = timezone.now()
    Event.objects.create(customer=customer, name="Order Completed", properties={"total": 42}, occurred_at=now, source="web")
    ProfileUpdate.objects.create(customer=customer, changes={"plan": "pro"}, occurred_at=now, source="web")
    Segment.objects.create(name="Pro plan", definition={"match": "all", "conditions": []})
    message = do_queue_message(
        QueueRequest(customer_id=customer.pk, channel="email", category="marketing", idempotency_key="enr:1:a",
                     content={"subject": "Welcome"})
    ).message
    claim_for_sending(message.pk)
    OutboxMessage.objects.create(message=message, channel="email", to=customer.email or "a@example.com", content={"subject": "Welcome"})
    journey = make_live_journey(
        linear_graph(node("entry", "entry", trigger="api"), node("wait", "delay", mode="duration", amount=1, unit="days")),
        name="Admin smoke",
    )
    enrol(journey, customer, trigger_key="api:1", context={}, now=now)
    run_due(now=now)
    # A canvas edit of the live journey: a draft v2 and its undo history (GraphEdit).
    from journeys.services import JourneyInput, do_update_journey
    do_update_journey(journey, JourneyInput(graph=linear_graph(node("entry", "entry", trigger="api"))), admin_role_user)
    acquire("engine-tick", "smoke", now=now, ttl=datetime.timedelta(seconds=60))
    GovernorVerdict.objects.create(
        customer=customer, decision="defer", until=now, rule="min spacing", reason="30 min spacing", channel="sms",
        category="marketing", at=now,
    )
    api_key, clear = make_api_key(("ingest",), name="website")
    # The frequency policy's rows come from its data migration; its audit trail needs one.
    PolicyChange.objects.create(user=admin_role_user, model_label="orchestrator.frequencyrule", object_id="1", object_repr="Rule", action="changed", before={}, after={})
    from channels_app.models import ProviderConfig, ProviderEvent
    from customers.models import ActivityProfile, ChannelAffinity
    from orchestrator.api.idempotency import IdempotentRequest
    from orchestrator.intelligence.models import PopulationModel

    ProviderConfig.objects.create(channel="email", provider="outbox", label="Development outbox", is_primary=True)
    ProviderEvent.objects.create(provider="twilio", event_id="SM1:delivered", kind="delivered", message_id=message.pk)
    ChannelAffinity.objects.get_or_create(customer=customer, channel="email")
    ActivityProfile.objects.get_or_create(customer=customer)
    PopulationModel.objects.get_or_create(pk=1)
    IdempotentRequest.objects.create(owner="key:1", key="order-1", endpoint="messages", request_hash="0" * 64)
    return {"message": message, "api_key": api_key, "clear_key": clear}


def first_object(model):
    return model._default_manager.order_by("pk").first()


# --- Smoke: everything renders for the Admin role ----------------------------------------


def test_every_model_of_chorus_is_registered():
    from django.apps import apps

    ours = {m for m in apps.get_models() if m._meta.app_label in OUR_APPS}
    assert ours - set(admin.site._registry) == set()


@pytest.mark.governed  # the shipped policy rows are among what must render
def test_every_changelist_change_and_add_page_renders_for_the_admin_role(admin_client, admin_role_user, everything, rf):
    assert not admin_role_user.is_staff and not admin_role_user.is_superuser
    request = rf.get("/")
    request.user = admin_role_user
    checked = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in OUR_APPS:
            continue
        assert admin_client.get(url(model, "changelist")).status_code == 200, model
        obj = first_object(model)
        assert obj is not None, f"no {model.__name__} in the fixture"
        assert admin_client.get(url(model, "change", obj.pk)).status_code == 200, model
        if model_admin.has_add_permission(request):
            assert admin_client.get(url(model, "add")).status_code == 200, model
        checked.append(model)
    assert {m.__name__ for m in checked} == {
        "Customer", "ContactPoint", "Consent", "ConsentChange", "Event", "ProfileUpdate",
        "SuppressedIdentifier", "Segment", "Message", "MessageTransition", "ApiKey", "OutboxMessage", "ContentRuleSettings",
        "Journey", "JourneyVersion", "GraphEdit", "Enrollment", "EnrollmentStep", "SchedulerLease",
        "FrequencyRule", "GovernorSettings", "QuietHoursRule", "PolicyChange", "GovernorVerdict",
        "ProviderConfig", "ProviderEvent", "ChannelAffinity", "ActivityProfile", "PopulationModel", "IdempotentRequest",
    }
    assert admin_client.get(reverse("admin:index")).status_code == 200


def test_admin_role_user_can_sign_in_through_the_admin_login(client, admin_role_user):
    response = client.post(reverse("admin:login"), {"username": "ada-admin", "password": "correct-horse-battery"})
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


@pytest.mark.parametrize("role", [Role.MARKETER, Role.MESSAGING])
def test_other_roles_cannot_sign_in_to_the_admin(client, make_user, role):
    user = make_user(role)
    response = client.post(reverse("admin:login"), {"username": user.username, "password": "correct-horse-battery"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


# --- API keys ----------------------------------------------------------------------------


def test_api_key_created_in_the_admin_is_shown_once_and_only_its_hash_stored(admin_client, admin_role_user):
    response = admin_client.post(
        url(ApiKey, "add"),
        {"name": "Segment prod", "source": "segment", "scopes": ["ingest", "read"], "rate_limit_per_minute": "600"},
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    clear = re.search(rf'value="({KEY_PREFIX}[^"]+)"', response.content.decode()).group(1)
    api_key = ApiKey.objects.get()
    assert find_key(clear) == api_key
    secret = clear.partition(".")[2]
    assert api_key.hashed_secret == hashlib.sha256(secret.encode()).hexdigest()
    assert (api_key.source, api_key.scopes, api_key.rate_limit_per_minute, api_key.created_by) == (
        "segment", ["ingest", "read"], 600, admin_role_user,
    )
    assert api_key.hashed_secret not in response.content.decode()
    for page in (url(ApiKey, "change", api_key.pk), url(ApiKey, "changelist"), reverse("admin:index")):
        html = admin_client.get(page).content.decode()
        assert secret not in html and api_key.hashed_secret not in html, page
    assert not any(secret in (e.change_message + e.object_repr) for e in LogEntry.objects.all())


def test_api_key_without_a_scope_is_not_created(admin_client):
    response = admin_client.post(url(ApiKey, "add"), {"name": "nothing", "scopes": []})
    assert response.status_code == 200
    assert b"This field is required" in response.content
    assert ApiKey.objects.count() == 0


def test_revoke_action_revokes_the_selected_keys(admin_client, make_api_key):
    key, clear = make_api_key(("ingest",), name="old")
    other, _ = make_api_key(("ingest",), name="kept")
    response = admin_client.post(url(ApiKey, "changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]})
    assert response.status_code == 302
    key.refresh_from_db(), other.refresh_from_db()
    assert key.revoked_at is not None and other.revoked_at is None
    assert find_key(clear) is None


def test_api_keys_are_revoked_not_deleted(admin_client, make_api_key):
    key, _ = make_api_key(("ingest",), name="old")
    assert admin_client.post(url(ApiKey, "delete", key.pk), {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()


@pytest.mark.parametrize("role", [Role.MARKETER, Role.MESSAGING])
def test_other_roles_cannot_reach_the_api_key_admin(client, make_user, make_api_key, role):
    key, _ = make_api_key(("ingest",), name="secretive")
    client.force_login(make_user(role))
    for page in (url(ApiKey, "changelist"), url(ApiKey, "change", key.pk), url(ApiKey, "add")):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login")), page
    response = client.post(url(ApiKey, "add"), {"name": "sneaky", "scopes": ["manage"]})
    assert response.status_code == 302
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["secretive"]


# --- The ledger is read-only ---------------------------------------------------------------


def test_ledger_rows_cannot_be_added_edited_or_deleted(admin_client, everything, make_user, client):
    message = everything["message"]
    before = Message.objects.values().get(pk=message.pk)
    transitions = list(MessageTransition.objects.values())

    assert admin_client.post(url(Message, "change", message.pk), {"status": "delivered", "provider": "x"}).status_code == 403
    assert admin_client.post(url(Message, "delete", message.pk), {"post": "yes"}).status_code == 403
    assert admin_client.post(url(Message, "add"), {"status": "queued"}).status_code == 403
    transition = MessageTransition.objects.first()
    assert admin_client.post(url(MessageTransition, "delete", transition.pk), {"post": "yes"}).status_code == 403
    client.force_login(make_user(superuser=True, username="root"))
    assert client.post(url(Message, "delete", message.pk), {"post": "yes"}).status_code == 403

    assert Message.objects.values().get(pk=message.pk) == before
    assert list(MessageTransition.objects.values()) == transitions
    assert Message.objects.count() == 1


def test_message_change_page_shows_history_and_no_form_inputs(admin_client, everything):
    html = admin_client.get(url(Message, "change", everything["message"].pk)).content.decode()
    assert "sending" in html and "Welcome" in html
    assert 'name="status"' not in html and 'name="_save"' not in html


@pytest.mark.parametrize("term_of", [
    lambda m: str(m.public_id), lambda m: m.idempotency_key, lambda m: "cust-42", lambda m: "p-123",
])
def test_message_search_finds_by_exact_ids(admin_client, everything, term_of):
    message = everything["message"]
    Message.objects.filter(pk=message.pk).update(provider_message_id="p-123")
    response = admin_client.get(url(Message, "changelist"), {"q": term_of(message)})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [message]


def test_message_search_for_nothing_matching_finds_nothing(admin_client, everything):
    response = admin_client.get(url(Message, "changelist"), {"q": "no-such-key"})
    assert list(response.context["cl"].result_list) == []


def test_message_changelist_query_count_does_not_grow_with_rows(admin_client, customer, django_assert_max_num_queries):
    def add(n):
        for i in range(n):
            do_queue_message(QueueRequest(customer_id=customer.pk, channel="sms", category="marketing", idempotency_key=f"k{n}-{i}"))

    add(2)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        admin_client.get(url(Message, "changelist"))
    add(8)
    with django_assert_max_num_queries(len(few)):
        assert admin_client.get(url(Message, "changelist")).status_code == 200


# --- Records are read-only -----------------------------------------------------------------


@pytest.mark.parametrize("model", [Event, ProfileUpdate, ConsentChange, Consent])
def test_records_cannot_be_edited_by_the_admin_role(admin_client, everything, model):
    obj = first_object(model)
    before = model.objects.values().get(pk=obj.pk)
    assert admin_client.post(url(model, "change", obj.pk), {"source": "forged"}).status_code == 403
    assert admin_client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert admin_client.get(url(model, "add")).status_code == 403
    assert model.objects.values().get(pk=obj.pk) == before


def test_a_superuser_may_delete_an_event(client, make_user, everything):
    client.force_login(make_user(superuser=True, username="root"))
    event = Event.objects.get()
    assert client.post(url(Event, "delete", event.pk), {"post": "yes"}).status_code == 302
    assert not Event.objects.exists()


def test_events_are_searchable_by_customer_external_id_and_email(admin_client, everything):
    other = Customer.objects.create(external_id="someone-else")
    Event.objects.create(customer=other, name="Viewed", occurred_at=timezone.now(), source="web")
    for term in ("cust-42", "GRACE@example.com"):
        response = admin_client.get(url(Event, "changelist"), {"q": term})
        assert [e.name for e in response.context["cl"].result_list] == ["Order Completed"], term
    response = admin_client.get(url(Event, "changelist"), {"name": "Viewed"})
    assert [e.customer for e in response.context["cl"].result_list] == [other]


# --- Customers: consent, erasure, secrets ----------------------------------------------------


def test_consent_change_through_the_admin_records_history_with_the_actor(admin_client, admin_role_user, customer):
    response = admin_client.post(
        reverse("admin:customers_customer_consent", args=[customer.pk]),
        {"channel": "email", "category": "marketing", "status": "unsubscribed"},
    )

    assert response.status_code == 302
    change = ConsentChange.objects.get()
    assert (change.channel, change.category, change.previous_status, change.status, change.source, change.actor) == (
        "email", "marketing", "", "unsubscribed", "admin", admin_role_user,
    )
    assert Consent.objects.get(customer=customer).status == "unsubscribed"
    assert SuppressedIdentifier.objects.filter(identifier_hash=hash_identifier("email", "grace@example.com"), channel="email").exists()


def test_setting_the_same_consent_in_the_admin_says_it_was_already_set(admin_client, customer):
    do_set_consent(customer, "email", "marketing", "unsubscribed", source="api")
    response = admin_client.post(
        reverse("admin:customers_customer_consent", args=[customer.pk]),
        {"channel": "email", "category": "marketing", "status": "unsubscribed"},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == ["Consent for email/marketing was already unsubscribed."]
    assert ConsentChange.objects.filter(customer=customer).count() == 1


def test_consent_form_with_an_unknown_status_changes_nothing(admin_client, customer):
    response = admin_client.post(
        reverse("admin:customers_customer_consent", args=[customer.pk]),
        {"channel": "email", "category": "marketing", "status": "maybe"},
    )
    assert response.status_code == 422
    assert not Consent.objects.exists() and not ConsentChange.objects.exists()


def test_a_bounce_lifted_by_a_new_address_reads_bounced_to_not_set(admin_client, customer):
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")
    customer.email = "grace@new.example.com"
    do_save_customer(customer)

    changelist = admin_client.get(url(ConsentChange, "changelist")).content.decode()
    consent_page = admin_client.get(reverse("admin:customers_customer_consent", args=[customer.pk])).content.decode()

    assert '<td class="field-previous_status">Bounced</td><td class="field-status_column">not set</td>' in changelist
    assert "<td>bounced</td><td>not set</td><td>address changed: bounce lifted</td>" in consent_page


def test_consent_inline_is_read_only(admin_client, everything, customer):
    html = admin_client.get(url(Customer, "change", customer.pk)).content.decode()
    assert 'name="consents-0-status"' not in html
    assert "Set consent" in html and "Erase (GDPR)" in html
    assert reverse("customers:profile", args=[customer.pk]) in html


def test_erase_action_asks_for_confirmation_first(admin_client, customer):
    response = admin_client.post(url(Customer, "changelist"), {"action": "erase_customers", "_selected_action": [customer.pk]})
    assert response.status_code == 200
    assert b"cannot be undone" in response.content
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_erase_action_deletes_the_customer_and_keeps_suppression_hashes(admin_client, admin_role_user, everything, customer):
    pk = customer.pk
    # An earlier admin edit logged the customer under their name.
    LogEntry.objects.create(
        user=admin_role_user, content_type=ContentType.objects.get_for_model(Customer),
        object_id=str(pk), object_repr=str(customer), action_flag=CHANGE, change_message="[]",
    )
    response = admin_client.post(
        url(Customer, "changelist"),
        {"action": "erase_customers", "_selected_action": [pk], "confirm": "yes"},
    )

    assert response.status_code == 302
    assert not Customer.objects.filter(pk=pk).exists()
    assert not Event.objects.exists() and not Message.objects.exists() and not ContactPoint.objects.exists()
    kept = set(SuppressedIdentifier.objects.values_list("identifier_hash", "channel"))
    assert (hash_identifier("phone", "+14155550100"), "sms") in kept
    assert (hash_identifier("external_id", "cust-42"), "sms") in kept
    entry = LogEntry.objects.get(object_id=str(pk), change_message__startswith="Erased")
    assert entry.object_repr == f"Customer {pk} (erased)"
    assert not LogEntry.objects.filter(object_repr__icontains="grace").exists()


def test_erase_from_the_customer_page_confirms_then_erases(admin_client, customer):
    erase_url = reverse("admin:customers_customer_erase", args=[customer.pk])
    assert b"cannot be undone" in admin_client.get(erase_url).content
    assert Customer.objects.filter(pk=customer.pk).exists()

    response = admin_client.post(erase_url, {"confirm": "yes"})

    assert response.status_code == 302
    assert not Customer.objects.filter(pk=customer.pk).exists()


def test_erase_leaves_no_address_in_the_admin_log_of_earlier_edits(admin_client):
    person = Customer.objects.create(external_id="z-1", email="secret.person@example.com")
    inline = {f"contact_points-{k}": v for k, v in {
        "TOTAL_FORMS": "1", "INITIAL_FORMS": "0", "MIN_NUM_FORMS": "0", "MAX_NUM_FORMS": "1000",
        "0-customer": str(person.pk), "0-channel": "sms", "0-address": "+14155550177", "0-platform": "",
        "0-label": "", "0-enabled": "on",
    }.items()}
    consents = {"consents-TOTAL_FORMS": "0", "consents-INITIAL_FORMS": "0", "consents-MIN_NUM_FORMS": "0", "consents-MAX_NUM_FORMS": "1000"}
    saved = admin_client.post(url(Customer, "change", person.pk), {
        "external_id": "z-1", "email": "secret.person@example.com", "phone": "", "timezone": "", "locale": "",
        "traits": '{"first_name": "Secret"}', **inline, **consents,
    })
    assert saved.status_code == 302
    assert LogEntry.objects.filter(change_message__contains="+14155550177").exists()  # what erasure must remove

    response = admin_client.post(reverse("admin:customers_customer_erase", args=[person.pk]), {"confirm": "yes"})

    assert response.status_code == 302
    logged = list(LogEntry.objects.order_by("id").values_list("object_repr", "change_message"))
    assert logged == [
        ("erased customer", ""),
        (f"Customer {person.pk} (erased)", "Erased (GDPR); suppression hashes kept."),
    ]


def test_customers_cannot_be_deleted_plainly(admin_client, customer):
    assert admin_client.get(url(Customer, "delete", customer.pk)).status_code == 403
    response = admin_client.get(url(Customer, "changelist"))
    assert "delete_selected" not in response.content.decode()


def test_saving_a_customer_with_a_suppressed_email_applies_the_suppression(admin_client):
    SuppressedIdentifier.objects.create(identifier_hash=hash_identifier("email", "gone@example.com"), kind="email", channel="email")
    response = admin_client.post(
        url(Customer, "add"),
        {
            "external_id": "re-import", "email": "Gone@example.com", "phone": "", "timezone": "", "locale": "",
            "traits": "{}", "first_seen_at_0": "2026-11-01", "first_seen_at_1": "10:00:00",
            "contact_points-TOTAL_FORMS": "0", "contact_points-INITIAL_FORMS": "0",
            "consents-TOTAL_FORMS": "0", "consents-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    customer = Customer.objects.get(external_id="re-import")
    assert Consent.objects.get(customer=customer, channel="email", category="marketing").status == "unsubscribed"


def test_push_keys_and_long_addresses_are_not_shown(admin_client, everything, customer):
    push = ContactPoint.objects.get(channel="push")
    pages = [
        url(Customer, "change", customer.pk),
        url(ContactPoint, "changelist"),
        url(ContactPoint, "change", push.pk),
        url(Customer, "changelist"),
    ]
    for page in pages:
        html = admin_client.get(page).content.decode()
        assert PUSH_P256DH not in html and PUSH_AUTH not in html, page
    changelist = admin_client.get(url(ContactPoint, "changelist")).content.decode()
    assert push.address not in changelist and push.short_address in changelist


# --- Suppressions --------------------------------------------------------------------------


def test_adding_a_suppression_stores_only_the_hash_and_never_shows_the_clear_value(admin_client, customer):
    response = admin_client.post(
        url(SuppressedIdentifier, "add"),
        {"value": " Grace@Example.com ", "kind": "email", "channel": "email", "status": "unsubscribed", "reason": "support ticket"},
        follow=True,
    )

    assert response.status_code == 200
    entry = SuppressedIdentifier.objects.get(kind="email")
    assert entry.identifier_hash == hash_identifier("email", "grace@example.com")
    assert Consent.objects.get(customer=customer, channel="email", category="marketing").status == "unsubscribed"
    for page in (url(SuppressedIdentifier, "changelist"), url(SuppressedIdentifier, "change", entry.pk)):
        html = admin_client.get(page).content.decode().lower()
        assert "grace@example.com" not in html, page
    assert "grace@example.com" not in response.content.decode().lower()
    assert not LogEntry.objects.filter(object_repr__icontains="grace").exists()


def test_duplicate_or_invalid_suppression_is_refused_without_echoing_the_value(admin_client):
    SuppressedIdentifier.objects.create(identifier_hash=hash_identifier("phone", "+14155550199"), kind="phone", channel="sms")
    for value, error in (("+14155550199", "already suppressed"), ("not-a-phone", "Not a valid phone")):
        response = admin_client.post(
            url(SuppressedIdentifier, "add"),
            {"value": value, "kind": "phone", "channel": "sms", "status": "unsubscribed", "reason": ""},
        )
        html = response.content.decode()
        assert response.status_code == 200 and error in html
        assert value not in html
    assert SuppressedIdentifier.objects.count() == 1


def test_a_bounce_cannot_be_added_for_an_external_id(admin_client):
    response = admin_client.post(
        url(SuppressedIdentifier, "add"),
        {"value": "cust-42", "kind": "external_id", "channel": "email", "status": "bounced", "reason": ""},
    )
    assert response.status_code == 200
    assert "A bounce is about an address" in response.content.decode()
    assert not SuppressedIdentifier.objects.exists()


def test_an_external_id_suppression_cannot_be_changed_into_a_bounce(admin_client):
    entry = SuppressedIdentifier.objects.create(
        identifier_hash=hash_identifier("external_id", "cust-42"), kind="external_id", channel="email", status="unsubscribed"
    )
    response = admin_client.post(url(SuppressedIdentifier, "change", entry.pk), {"status": "bounced", "reason": ""})
    assert response.status_code == 200
    assert "A bounce is about an address" in response.content.decode()
    entry.refresh_from_db()
    assert entry.status == "unsubscribed"


def test_suppression_by_external_id_applies_only_to_that_exact_id(admin_client):
    exact = Customer.objects.create(external_id="AbC")
    other_case = Customer.objects.create(external_id="abc")
    admin_client.post(
        url(SuppressedIdentifier, "add"),
        {"value": "AbC", "kind": "external_id", "channel": "push", "status": "unsubscribed", "reason": ""},
    )
    assert Consent.objects.get(customer=exact, channel="push", category="marketing").status == "unsubscribed"
    assert not Consent.objects.filter(customer=other_case).exists()


def test_suppressions_are_searchable_by_hash_prefix(admin_client):
    digest = hash_identifier("email", "x@example.com")
    SuppressedIdentifier.objects.create(identifier_hash=digest, kind="email", channel="email")
    SuppressedIdentifier.objects.create(identifier_hash=hash_identifier("email", "y@example.com"), kind="email", channel="email")
    response = admin_client.get(url(SuppressedIdentifier, "changelist"), {"q": digest[:10]})
    assert [s.identifier_hash for s in response.context["cl"].result_list] == [digest]


# --- Segments ------------------------------------------------------------------------------


def test_segment_list_shows_member_counts(admin_client, customer):
    Segment.objects.create(name="Everyone", definition={"match": "all", "conditions": []})
    html = admin_client.get(url(Segment, "changelist")).content.decode()
    assert "Members" in html and '<td class="field-members">1</td>' in html


def test_segment_definition_is_edited_as_pretty_json_and_validated(admin_client, admin_role_user):
    response = admin_client.post(
        url(Segment, "add"), {"name": "Broken", "description": "", "definition": '{"match": "sometimes"}'}
    )
    assert response.status_code == 200 and "match" in response.content.decode()
    assert not Segment.objects.exists()

    response = admin_client.post(
        url(Segment, "add"), {"name": "All", "description": "", "definition": '{"match": "all", "conditions": []}'}
    )
    assert response.status_code == 302
    segment = Segment.objects.get()
    assert segment.created_by == admin_role_user
    html = admin_client.get(url(Segment, "change", segment.pk)).content.decode()
    assert "{\n  &quot;" in html  # indented, one key per line


# --- Editing a customer's addresses ------------------------------------------------------


def _change_customer(admin_client, customer, **fields):
    """POST the customer change form as the admin page would, inlines left as they are."""
    points = list(customer.contact_points.order_by("pk"))
    data = {
        "external_id": customer.external_id, "email": customer.email, "phone": customer.phone,
        "timezone": customer.timezone, "locale": customer.locale, "traits": "{}",
        "contact_points-TOTAL_FORMS": str(len(points)), "contact_points-INITIAL_FORMS": str(len(points)),
        "contact_points-MIN_NUM_FORMS": "0", "contact_points-MAX_NUM_FORMS": "1000",
        "consents-TOTAL_FORMS": "0", "consents-INITIAL_FORMS": "0",
        "consents-MIN_NUM_FORMS": "0", "consents-MAX_NUM_FORMS": "1000",
    }
    for i, point in enumerate(points):
        data.update({
            f"contact_points-{i}-id": str(point.pk), f"contact_points-{i}-customer": str(customer.pk),
            f"contact_points-{i}-channel": point.channel, f"contact_points-{i}-address": point.address,
            f"contact_points-{i}-platform": point.platform, f"contact_points-{i}-label": point.label,
        })
        if point.enabled:
            data[f"contact_points-{i}-enabled"] = "on"
    data.update(fields)  # last, so a test can also edit an inline row
    return admin_client.post(url(Customer, "change", customer.pk), data)


@pytest.fixture
def reachable(db):
    customer = Customer.objects.create(external_id="addr-1", email="old@example.com")
    ContactPoint.objects.create(customer=customer, channel="email", address="old@example.com")
    return customer


def _points(customer):
    return sorted(ContactPoint.objects.filter(customer=customer).values_list("channel", "address", "enabled"))


def test_changing_email_in_the_admin_disables_the_old_contact_point_and_adds_the_new(admin_client, reachable):
    response = _change_customer(admin_client, reachable, email="New@Example.COM")

    assert response.status_code == 302, response.content.decode()[:2000]
    reachable.refresh_from_db()
    assert reachable.email == "New@example.com"  # domain lower-cased, as on ingestion
    assert _points(reachable) == [("email", "New@example.com", True), ("email", "old@example.com", False)]


def test_adding_a_phone_in_the_admin_stores_it_in_e164_and_adds_an_sms_contact_point(admin_client, reachable):
    response = _change_customer(admin_client, reachable, phone="+4402079460000")

    assert response.status_code == 302, response.content.decode()[:2000]
    reachable.refresh_from_db()
    assert reachable.phone == "+442079460000"
    assert _points(reachable) == [("email", "old@example.com", True), ("sms", "+442079460000", True)]


def test_changing_to_a_suppressed_phone_in_the_admin_unsubscribes_from_sms(admin_client, reachable):
    SuppressedIdentifier.objects.create(
        identifier_hash=hash_identifier("phone", "+14155550199"), kind="phone", channel="sms", status="unsubscribed"
    )

    _change_customer(admin_client, reachable, phone="+14155550199")

    assert list(Consent.objects.filter(customer=reachable).values_list("channel", "category", "status")) == [
        ("sms", "marketing", "unsubscribed")
    ]


def test_saving_a_customer_without_changing_addresses_leaves_contact_points_alone(admin_client, reachable):
    ContactPoint.objects.filter(customer=reachable).update(enabled=False)  # turned off by hand
    reachable.refresh_from_db()

    response = _change_customer(admin_client, reachable, timezone="Europe/Lisbon")

    assert response.status_code == 302, response.content.decode()[:2000]
    assert _points(reachable) == [("email", "old@example.com", False)]
    assert not Consent.objects.filter(customer=reachable).exists()


def test_an_invalid_phone_in_the_admin_changes_nothing(admin_client, reachable):
    response = _change_customer(admin_client, reachable, phone="+1\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0660\u0660")

    assert response.status_code == 200
    reachable.refresh_from_db()
    assert (reachable.email, reachable.phone) == ("old@example.com", "")
    assert _points(reachable) == [("email", "old@example.com", True)]


def test_editing_the_replaced_address_row_in_the_same_save_keeps_it_disabled(admin_client, reachable):
    # The inline still shows the old row as enabled; the admin also renames its label.
    response = _change_customer(admin_client, reachable, email="new@example.com", **{"contact_points-0-label": "Work"})

    assert response.status_code == 302, response.content.decode()[:2000]
    assert _points(reachable) == [("email", "new@example.com", True), ("email", "old@example.com", False)]
    assert ContactPoint.objects.get(customer=reachable, address="old@example.com").label == "Work"
