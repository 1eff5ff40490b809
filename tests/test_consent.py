"""Consent per channel × category, its history, the suppression list and erasure."""

import pytest
from django.utils import timezone

from customers.consent import (
    SUPPRESSION_SOURCE,
    apply_suppressions,
    consent_status,
    do_erase_customer,
    do_set_consent,
)
from customers.enums import Category, Channel, ConsentStatus
from customers.models import Consent, ConsentChange, Customer, SuppressedIdentifier, hash_identifier

pytestmark = pytest.mark.django_db


def make_customer(external_id="u1", email="maya@example.com", phone="+14155550101"):
    return Customer.objects.create(external_id=external_id, email=email, phone=phone)


def test_unset_consent_reads_as_none():
    customer = make_customer()
    assert consent_status(customer, Channel.SMS, Category.MARKETING) is None


def test_setting_consent_records_status_and_history():
    customer = make_customer()
    do_set_consent(customer, "sms", "marketing", "opted_in", source="signup form")
    do_set_consent(customer, "sms", "marketing", "opted_out", source="STOP reply")

    assert consent_status(customer, Channel.SMS, Category.MARKETING) == ConsentStatus.OPTED_OUT
    history = list(
        ConsentChange.objects.filter(customer=customer).order_by("id").values_list("previous_status", "status", "source")
    )
    assert history == [("", "opted_in", "signup form"), ("opted_in", "opted_out", "STOP reply")]


def test_setting_the_same_status_again_records_nothing_new():
    customer = make_customer()
    do_set_consent(customer, "email", "marketing", "opted_in", source="api")
    do_set_consent(customer, "email", "marketing", "opted_in", source="api again")
    assert ConsentChange.objects.filter(customer=customer).count() == 1
    assert Consent.objects.get(customer=customer).source == "api"


def test_unknown_status_is_rejected_and_nothing_is_stored():
    customer = make_customer()
    with pytest.raises(ValueError):
        do_set_consent(customer, "email", "marketing", "maybe", source="api")
    assert not Consent.objects.exists()
    assert not ConsentChange.objects.exists()


def test_unsubscribe_writes_hashes_of_the_channel_identifiers():
    customer = make_customer()
    do_set_consent(customer, "email", "marketing", "unsubscribed", source="one-click link")
    hashes = set(SuppressedIdentifier.objects.filter(channel="email").values_list("identifier_hash", "kind"))
    assert hashes == {(hash_identifier("maya@example.com"), "email"), (hash_identifier("u1"), "external_id")}
    # Only hashes are stored, never the clear address.
    assert not SuppressedIdentifier.objects.filter(identifier_hash__contains="@").exists()


def test_opting_back_in_lifts_the_suppression():
    customer = make_customer()
    do_set_consent(customer, "sms", "marketing", "opted_out", source="STOP")
    do_set_consent(customer, "sms", "marketing", "opted_in", source="START")
    assert not SuppressedIdentifier.objects.filter(channel="sms").exists()


def test_erased_then_reimported_person_is_still_unsubscribed():
    customer = make_customer()
    do_set_consent(customer, "email", "marketing", "unsubscribed", source="one-click link")
    do_erase_customer(customer)
    assert not Customer.objects.exists()
    assert not Consent.objects.exists()

    # Same address, new external id: the email hash matches.
    again = make_customer(external_id="new-id", email="Maya@Example.com ", phone="")
    assert apply_suppressions(again) == ["email"]
    consent = Consent.objects.get(customer=again, channel="email", category="marketing")
    assert (consent.status, consent.source) == ("unsubscribed", SUPPRESSION_SOURCE)
    assert consent_status(again, "sms", "marketing") is None


def test_bounce_suppresses_transactional_too_after_reimport():
    customer = make_customer()
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")
    do_erase_customer(customer)
    again = make_customer(external_id="other")
    apply_suppressions(again)
    assert consent_status(again, "email", "marketing") == "bounced"
    assert consent_status(again, "email", "transactional") == "bounced"


def test_apply_suppressions_does_not_overwrite_an_existing_block():
    customer = make_customer()
    do_set_consent(customer, "sms", "marketing", "complained", source="carrier report")
    SuppressedIdentifier.objects.filter(channel="sms").update(status="opted_out")
    apply_suppressions(customer)
    assert consent_status(customer, "sms", "marketing") == "complained"


def test_erasure_keeps_nothing_for_a_customer_who_never_opted_out():
    customer = make_customer()
    do_set_consent(customer, "push", "marketing", "opted_in", source="app", at=timezone.now())
    do_erase_customer(customer)
    assert not SuppressedIdentifier.objects.exists()
