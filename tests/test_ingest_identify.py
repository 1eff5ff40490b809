"""POST /api/v1/identify: profiles, contact points, consent from the suppression list."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from customers.consent import (
    ADDRESS_CHANGED_SOURCE,
    BOUNCE_LIFTED_SOURCE,
    SUPPRESSION_SOURCE,
    do_erase_customer,
    do_set_consent,
)
from customers.enums import Category, Channel, ConsentStatus
from customers.models import (
    Consent,
    ConsentChange,
    ContactPoint,
    Customer,
    ProfileUpdate,
    SuppressedIdentifier,
    hash_identifier,
)
from orchestrator.roles import Role

URL = "/api/v1/identify"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def post(client, payload):
    return client.post(URL, payload, format="json")


def contact_points(customer):
    return sorted(
        ContactPoint.objects.filter(customer=customer).values_list("channel", "address", "enabled")
    )


def test_identify_creates_customer_with_columns_and_other_traits(ingest_client):
    response = post(
        ingest_client,
        {
            "userId": "u_1",
            "traits": {
                "email": "Ana@Example.COM",
                "phone": "+14155550101",
                "first_name": "Ana",
                "plan": "pro",
            },
            "context": {"timezone": "America/New_York", "locale": "en-US"},
        },
    )

    assert response.status_code == 200
    assert response.json() == {"success": True}
    customer = Customer.objects.get(external_id="u_1")
    assert customer.email == "Ana@example.com"
    assert customer.phone == "+14155550101"
    assert customer.timezone == "America/New_York"
    assert customer.locale == "en-US"
    assert customer.traits == {"first_name": "Ana", "plan": "pro"}


def test_identify_merges_traits_into_the_existing_profile(ingest_client):
    post(
        ingest_client,
        {"userId": "u_1", "traits": {"first_name": "Ana", "plan": "free", "tags": ["a"]}},
    )
    post(ingest_client, {"userId": "u_1", "traits": {"plan": "pro", "last_name": "Lima"}})

    customer = Customer.objects.get()
    assert customer.traits == {
        "first_name": "Ana",
        "plan": "pro",
        "tags": ["a"],
        "last_name": "Lima",
    }


def test_identify_without_traits_keeps_the_profile(ingest_client):
    post(ingest_client, {"userId": "u_1", "traits": {"email": "ana@example.com", "plan": "pro"}})
    response = post(ingest_client, {"userId": "u_1"})

    assert response.status_code == 200
    customer = Customer.objects.get()
    assert (customer.email, customer.traits) == ("ana@example.com", {"plan": "pro"})


def test_trait_time_zone_and_locale_win_over_context(ingest_client):
    post(
        ingest_client,
        {
            "userId": "u_1",
            "traits": {"timezone": "Europe/Paris", "locale": "fr-FR"},
            "context": {"timezone": "America/New_York", "locale": "en-US"},
        },
    )

    customer = Customer.objects.get()
    assert (customer.timezone, customer.locale) == ("Europe/Paris", "fr-FR")


def test_identify_records_a_profile_update_with_what_it_set(ingest_client):
    with time_machine.travel(NOW, tick=False):
        post(
            ingest_client,
            {
                "userId": "u_1",
                "messageId": "m-1",
                "timestamp": "2026-11-20T10:00:00Z",
                "traits": {"email": "ana@example.com", "plan": "pro"},
                "context": {"timezone": "Europe/Paris"},
            },
        )

    update = ProfileUpdate.objects.get()
    assert update.customer.external_id == "u_1"
    assert update.changes == {"email": "ana@example.com", "plan": "pro", "timezone": "Europe/Paris"}
    assert update.occurred_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert update.received_at == NOW
    assert (update.source, update.source_message_id) == ("crm", "m-1")


def test_identify_creates_email_and_sms_contact_points(ingest_client):
    post(
        ingest_client,
        {"userId": "u_1", "traits": {"email": "ana@example.com", "phone": "+14155550101"}},
    )

    assert contact_points(Customer.objects.get()) == [
        ("email", "ana@example.com", True),
        ("sms", "+14155550101", True),
    ]


def test_changed_email_disables_the_old_contact_point_and_adds_the_new(ingest_client):
    post(
        ingest_client,
        {"userId": "u_1", "traits": {"email": "old@example.com", "phone": "+14155550101"}},
    )
    post(ingest_client, {"userId": "u_1", "traits": {"email": "new@example.com"}})

    assert contact_points(Customer.objects.get()) == [
        ("email", "new@example.com", True),
        ("email", "old@example.com", False),
        ("sms", "+14155550101", True),
    ]


def test_changing_back_to_an_earlier_email_re_enables_its_contact_point(ingest_client):
    post(ingest_client, {"userId": "u_1", "traits": {"email": "a@example.com"}})
    post(ingest_client, {"userId": "u_1", "traits": {"email": "b@example.com"}})
    post(ingest_client, {"userId": "u_1", "traits": {"email": "a@example.com"}})

    assert contact_points(Customer.objects.get()) == [
        ("email", "a@example.com", True),
        ("email", "b@example.com", False),
    ]


def test_identify_with_an_email_on_the_suppression_list_starts_unsubscribed(ingest_client):
    SuppressedIdentifier.objects.create(
        identifier_hash=hash_identifier("email", "gone@example.com"),
        kind=SuppressedIdentifier.Kind.EMAIL,
        channel=Channel.EMAIL,
        status=ConsentStatus.UNSUBSCRIBED,
    )

    post(ingest_client, {"userId": "u_1", "traits": {"email": "Gone@example.com"}})

    consent = Consent.objects.get(customer__external_id="u_1")
    assert (consent.channel, consent.category, consent.status) == (
        Channel.EMAIL,
        Category.MARKETING,
        ConsentStatus.UNSUBSCRIBED,
    )


def test_an_existing_customer_changing_to_a_suppressed_phone_is_unsubscribed_from_sms(
    ingest_client,
):
    SuppressedIdentifier.objects.create(
        identifier_hash=hash_identifier("phone", "+14155550199"),
        kind=SuppressedIdentifier.Kind.PHONE,
        channel=Channel.SMS,
        status=ConsentStatus.UNSUBSCRIBED,
    )
    post(ingest_client, {"userId": "u_1", "traits": {"phone": "+14155550101"}})
    assert Consent.objects.count() == 0

    post(ingest_client, {"userId": "u_1", "traits": {"phone": "+14155550199"}})

    assert list(Consent.objects.values_list("channel", "category", "status")) == [
        (Channel.SMS, Category.MARKETING, ConsentStatus.UNSUBSCRIBED)
    ]


def test_phone_is_stored_in_canonical_e164_form_and_matches_the_suppression_list(ingest_client):
    SuppressedIdentifier.objects.create(
        identifier_hash=hash_identifier("phone", "+442079460000"),
        kind=SuppressedIdentifier.Kind.PHONE,
        channel=Channel.SMS,
        status=ConsentStatus.UNSUBSCRIBED,
    )

    # The UK trunk prefix 0 written after the country code is not part of the number.
    post(ingest_client, {"userId": "u_1", "traits": {"phone": "+4402079460000"}})

    customer = Customer.objects.get()
    assert customer.phone == "+442079460000"
    assert contact_points(customer) == [("sms", "+442079460000", True)]
    assert list(Consent.objects.values_list("channel", "category", "status")) == [
        (Channel.SMS, Category.MARKETING, ConsentStatus.UNSUBSCRIBED)
    ]


def test_an_erased_unsubscribed_person_identified_again_stays_unsubscribed(ingest_client):
    post(ingest_client, {"userId": "u_1", "traits": {"email": "ana@example.com"}})
    customer = Customer.objects.get()
    do_set_consent(
        customer, Channel.EMAIL, Category.MARKETING, ConsentStatus.UNSUBSCRIBED, source="link"
    )
    do_erase_customer(customer)

    post(ingest_client, {"userId": "u_2", "traits": {"email": "ana@example.com"}})

    assert Consent.objects.get(customer__external_id="u_2").status == ConsentStatus.UNSUBSCRIBED


def test_repeated_message_id_does_not_merge_traits_again(ingest_client):
    post(ingest_client, {"userId": "u_1", "messageId": "m-1", "traits": {"plan": "pro"}})
    post(ingest_client, {"userId": "u_1", "messageId": "m-2", "traits": {"plan": "basic"}})
    replay = post(ingest_client, {"userId": "u_1", "messageId": "m-1", "traits": {"plan": "pro"}})

    assert replay.status_code == 200
    assert replay.json() == {"success": True}
    assert Customer.objects.get().traits == {"plan": "basic"}
    assert ProfileUpdate.objects.count() == 2


def test_identify_moves_seen_times_outward_only(ingest_client):
    with time_machine.travel(NOW, tick=False):
        post(ingest_client, {"userId": "u_1", "timestamp": "2026-11-10T00:00:00Z"})
        post(ingest_client, {"userId": "u_1", "timestamp": "2026-11-05T00:00:00Z"})

    customer = Customer.objects.get()
    assert customer.first_seen_at == datetime(2026, 11, 5, tzinfo=UTC)
    assert customer.last_seen_at == datetime(2026, 11, 10, tzinfo=UTC)


def test_signed_in_people_cannot_ingest_even_as_admin(make_user):
    client = APIClient()
    client.force_login(make_user(Role.ADMIN, superuser=True))

    response = post(client, {"userId": "u_1", "traits": {"plan": "pro"}})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert Customer.objects.count() == 0


def test_identify_of_a_known_customer_takes_a_constant_number_of_queries(
    ingest_client, django_assert_max_num_queries
):
    post(ingest_client, {"userId": "u_1", "traits": {"email": "a@example.com"}})

    # savepoint, lock-or-create upsert, load of the rows it locked, duplicate check, profile
    # update, customer update, contact points (disable, upsert), bounced-consent lookup of
    # the changed addresses, suppression lookup, release (the key was cached by the first
    # request). The upsert + load replaced one SELECT FOR UPDATE so that locking and
    # creating customers is one statement in external-id order.
    with django_assert_max_num_queries(11):
        response = post(
            ingest_client,
            {"userId": "u_1", "messageId": "m-5", "traits": {"email": "b@example.com", "x": 1}},
        )

    assert response.status_code == 200


# --- A new address leaves the old one's bounce behind ----------------------------------------


def consent_of(external_id, channel="email"):
    rows = Consent.objects.filter(customer__external_id=external_id, channel=channel)
    return dict(rows.values_list("category", "status"))


def consent_history(external_id, channel="email"):
    rows = ConsentChange.objects.filter(customer__external_id=external_id, channel=channel).order_by("id")
    return list(rows.values_list("category", "previous_status", "status", "source"))


def bounce(customer, channel="email"):
    for category in (Category.MARKETING, Category.TRANSACTIONAL):
        do_set_consent(customer, channel, category, ConsentStatus.BOUNCED, source="hard bounce")


def test_identify_with_a_new_email_restores_consent_from_before_the_bounce(ingest_client):
    post(ingest_client, {"userId": "u_1", "traits": {"email": "old@example.com"}})
    customer = Customer.objects.get()
    do_set_consent(customer, "email", "marketing", "opted_in", source="signup form")
    do_set_consent(customer, "email", "transactional", "opted_in", source="signup form")
    bounce(customer)

    post(ingest_client, {"userId": "u_1", "traits": {"email": "new@example.com"}})

    assert consent_of("u_1") == {"marketing": "opted_in", "transactional": "opted_in"}
    assert consent_history("u_1") == [
        ("marketing", "", "opted_in", "signup form"),
        ("transactional", "", "opted_in", "signup form"),
        ("marketing", "opted_in", "bounced", "hard bounce"),
        ("transactional", "opted_in", "bounced", "hard bounce"),
        ("marketing", "bounced", "opted_in", ADDRESS_CHANGED_SOURCE),
        ("transactional", "bounced", "opted_in", ADDRESS_CHANGED_SOURCE),
    ]


def test_customer_created_with_a_bounced_email_is_not_set_once_they_change_it(ingest_client):
    do_set_consent(
        Customer.objects.create(external_id="earlier", email="dead@example.com"),
        "email", "transactional", "bounced", source="hard bounce",
    )
    post(ingest_client, {"userId": "u_1", "traits": {"email": "dead@example.com"}})
    assert consent_of("u_1") == {"marketing": "bounced", "transactional": "bounced"}

    post(ingest_client, {"userId": "u_1", "traits": {"email": "working@example.com"}})

    assert consent_of("u_1") == {}
    assert consent_history("u_1") == [
        ("marketing", "", "bounced", SUPPRESSION_SOURCE),
        ("transactional", "", "bounced", SUPPRESSION_SOURCE),
        ("marketing", "bounced", "", BOUNCE_LIFTED_SOURCE),
        ("transactional", "bounced", "", BOUNCE_LIFTED_SOURCE),
    ]


def test_identify_with_a_new_email_that_is_itself_bounced_stays_bounced(ingest_client):
    SuppressedIdentifier.objects.create(
        identifier_hash=hash_identifier("email", "dead@example.com"),
        kind=SuppressedIdentifier.Kind.EMAIL,
        channel=Channel.EMAIL,
        status=ConsentStatus.BOUNCED,
    )
    post(ingest_client, {"userId": "u_1", "traits": {"email": "old@example.com"}})
    customer = Customer.objects.get()
    do_set_consent(customer, "email", "marketing", "opted_in", source="signup form")
    bounce(customer)
    before = consent_history("u_1")

    post(ingest_client, {"userId": "u_1", "traits": {"email": "dead@example.com"}})

    assert consent_of("u_1") == {"marketing": "bounced", "transactional": "bounced"}
    assert consent_history("u_1") == before


def test_identify_with_a_new_email_does_not_lift_an_unsubscribe(ingest_client):
    post(ingest_client, {"userId": "u_1", "traits": {"email": "old@example.com"}})
    customer = Customer.objects.get()
    do_set_consent(customer, "email", "marketing", "unsubscribed", source="one-click link")
    before = consent_history("u_1")

    post(ingest_client, {"userId": "u_1", "traits": {"email": "new@example.com"}})

    assert consent_of("u_1") == {"marketing": "unsubscribed"}
    assert consent_history("u_1") == before


def test_identify_with_a_new_phone_lifts_the_sms_bounce(ingest_client):
    post(ingest_client, {"userId": "u_1", "traits": {"email": "ana@example.com", "phone": "+14155550101"}})
    customer = Customer.objects.get()
    do_set_consent(customer, "sms", "marketing", "opted_in", source="keyword JOIN")
    bounce(customer, "sms")
    bounce(customer, "email")

    post(ingest_client, {"userId": "u_1", "traits": {"phone": "+14155550188"}})

    assert consent_of("u_1", "sms") == {"marketing": "opted_in"}
    assert consent_history("u_1", "sms")[-2:] == [
        ("marketing", "bounced", "opted_in", ADDRESS_CHANGED_SOURCE),
        ("transactional", "bounced", "", BOUNCE_LIFTED_SOURCE),
    ]
    assert consent_of("u_1") == {"marketing": "bounced", "transactional": "bounced"}


def test_identify_that_keeps_the_address_lifts_nothing_and_looks_for_no_bounce(ingest_client):
    post(ingest_client, {"userId": "u_1", "traits": {"email": "old@example.com"}})
    bounce(Customer.objects.get())
    before = consent_history("u_1")

    with CaptureQueriesContext(connection) as queries:
        post(ingest_client, {"userId": "u_1", "traits": {"email": "old@example.com", "plan": "pro"}})

    assert consent_of("u_1") == {"marketing": "bounced", "transactional": "bounced"}
    assert consent_history("u_1") == before
    assert not [q["sql"] for q in queries.captured_queries if "customers_consent" in q["sql"]]


def test_one_batch_lifts_only_the_bounces_of_customers_who_changed_address(ingest_client):
    for user_id in ("u_1", "u_2"):
        post(ingest_client, {"userId": user_id, "traits": {"email": f"{user_id}@example.com"}})
        bounce(Customer.objects.get(external_id=user_id))

    response = ingest_client.post(
        "/api/v1/batch",
        {"batch": [
            {"type": "identify", "userId": "u_1", "traits": {"email": "u_1@new.example.com"}},
            {"type": "identify", "userId": "u_2", "traits": {"plan": "pro"}},
        ]},
        format="json",
    )

    assert response.status_code == 200
    assert consent_of("u_1") == {}
    assert consent_of("u_2") == {"marketing": "bounced", "transactional": "bounced"}
