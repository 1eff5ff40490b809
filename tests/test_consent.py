"""Consent per channel × category, its history, the suppression list and erasure."""

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from customers.consent import (
    ADDRESS_CHANGED_SOURCE,
    BOUNCE_LIFTED_SOURCE,
    SUPPRESSION_SOURCE,
    ConsentResult,
    apply_suppressions,
    consent_status,
    do_erase_customer,
    do_set_consent,
    lift_bounces_after_address_change,
)
from customers.enums import Category, Channel, ConsentStatus
from customers.models import (
    Consent,
    ConsentChange,
    ContactPoint,
    Customer,
    SuppressedIdentifier,
    hash_identifier,
)
from customers.profiles import do_save_customer

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


@pytest.mark.parametrize("channel", [Channel.EMAIL, Channel.PUSH, Channel.IN_APP])
def test_replied_stop_cannot_be_recorded_outside_sms(channel):
    customer = make_customer()
    with pytest.raises(ValueError, match="applies only to SMS"):
        do_set_consent(customer, channel, Category.MARKETING, ConsentStatus.STOPPED, source="test")
    assert not Consent.objects.filter(customer=customer).exists()
    assert not ConsentChange.objects.filter(customer=customer).exists()


def test_unsubscribe_writes_hashes_of_the_channel_identifiers():
    customer = make_customer()
    do_set_consent(customer, "email", "marketing", "unsubscribed", source="one-click link")
    hashes = set(SuppressedIdentifier.objects.filter(channel="email").values_list("identifier_hash", "kind"))
    assert hashes == {(hash_identifier("email", "maya@example.com"), "email"), (hash_identifier("external_id", "u1"), "external_id")}
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


def entries() -> set[tuple[str, str, str, str]]:
    return set(SuppressedIdentifier.objects.values_list("identifier_hash", "kind", "channel", "status"))


EMAIL_HASH = hash_identifier("email", "maya@example.com")
EXTERNAL_ID_HASH = hash_identifier("external_id", "u1")


# --- What do_set_consent reports ---------------------------------------------------------------


def test_set_consent_reports_a_first_write_as_changed_from_nothing():
    customer = make_customer()
    result = do_set_consent(customer, "sms", "marketing", "opted_in", source="signup form")
    assert result == ConsentResult(Consent.objects.get(customer=customer), changed=True, previous_status="")
    assert result.consent.status == "opted_in"


def test_set_consent_reports_the_previous_status_of_a_change():
    customer = make_customer()
    do_set_consent(customer, "sms", "marketing", "opted_in", source="signup form")
    result = do_set_consent(customer, "sms", "marketing", "opted_out", source="STOP reply")
    assert (result.changed, result.previous_status, result.consent.status) == (True, "opted_in", "opted_out")


def test_set_consent_reports_a_repeat_as_unchanged():
    customer = make_customer()
    do_set_consent(customer, "sms", "marketing", "opted_in", source="signup form")
    result = do_set_consent(customer, "sms", "marketing", "opted_in", source="again")
    assert (result.changed, result.previous_status, result.consent.source) == (False, "opted_in", "signup form")


def test_set_consent_hashes_the_customers_current_address_not_a_stale_copy():
    customer = make_customer()
    Customer.objects.filter(pk=customer.pk).update(email="new@example.com")
    do_set_consent(customer, "email", "marketing", "unsubscribed", source="one-click link")
    assert entries() == {
        (hash_identifier("email", "new@example.com"), "email", "email", "unsubscribed"),
        (EXTERNAL_ID_HASH, "external_id", "email", "unsubscribed"),
    }


# --- Bounces are about an address, not a person ---------------------------------------------


def test_bounce_is_kept_under_the_address_only_not_the_external_id():
    customer = make_customer()
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")
    assert entries() == {(EMAIL_HASH, "email", "email", "bounced")}


def test_new_address_does_not_inherit_the_old_addresss_bounce():
    customer = make_customer()
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")
    Customer.objects.filter(pk=customer.pk).update(email="working@example.com")
    customer.refresh_from_db()

    assert apply_suppressions(customer) == []
    assert consent_status(customer, "email", "marketing") is None


def test_erased_person_reimported_with_a_new_address_is_not_bounced():
    customer = make_customer()
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")
    do_erase_customer(customer)

    again = make_customer(email="working@example.com")
    assert apply_suppressions(again) == []
    assert not Consent.objects.filter(customer=again).exists()


def test_erasure_does_not_mark_the_customers_newer_address_as_bounced():
    customer = make_customer()
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")
    Customer.objects.filter(pk=customer.pk).update(email="working@example.com")

    do_erase_customer(customer)

    assert entries() == {(EMAIL_HASH, "email", "email", "bounced")}


def test_erased_person_reimported_with_a_new_address_keeps_their_unsubscribe():
    customer = make_customer()
    do_set_consent(customer, "email", "marketing", "unsubscribed", source="one-click link")
    do_erase_customer(customer)

    again = make_customer(email="working@example.com")
    assert apply_suppressions(again) == ["email"]
    assert consent_status(again, "email", "marketing") == "unsubscribed"
    assert consent_status(again, "email", "transactional") is None


def test_bounced_address_given_to_someone_else_is_bounced_for_them():
    do_set_consent(make_customer(), "email", "transactional", "bounced", source="hard bounce")
    other = make_customer(external_id="u2")
    assert apply_suppressions(other) == ["email"]
    assert consent_status(other, "email", "marketing") == "bounced"
    assert consent_status(other, "email", "transactional") == "bounced"


def test_a_bounce_entry_under_an_external_id_is_not_applied():
    customer = make_customer()
    SuppressedIdentifier.objects.create(
        identifier_hash=EXTERNAL_ID_HASH, kind="external_id", channel="email", status="bounced"
    )
    assert apply_suppressions(customer) == []
    assert not Consent.objects.exists()


# --- A new address leaves the old one's bounce behind ----------------------------------------


def statuses(customer, channel="email") -> dict[str, str]:
    return dict(Consent.objects.filter(customer=customer, channel=channel).values_list("category", "status"))


def history(customer, channel="email") -> list[tuple[str, str, str, str]]:
    changes = ConsentChange.objects.filter(customer=customer, channel=channel).order_by("id")
    return list(changes.values_list("category", "previous_status", "status", "source"))


def move_to(customer, **addresses) -> Customer:
    Customer.objects.filter(pk=customer.pk).update(**addresses)
    customer.refresh_from_db()
    return customer


def bounce(customer, channel="email"):
    for category in ("marketing", "transactional"):
        do_set_consent(customer, channel, category, "bounced", source="hard bounce")


def test_new_email_restores_each_category_to_its_status_before_the_bounce():
    customer = make_customer()
    do_set_consent(customer, "email", "marketing", "opted_in", source="signup form")
    do_set_consent(customer, "email", "transactional", "opted_out", source="support ticket")
    bounce(customer)
    move_to(customer, email="working@example.com")

    lifted = lift_bounces_after_address_change(customer, "email", previous_address="maya@example.com")

    assert lifted == ["marketing", "transactional"]
    assert statuses(customer) == {"marketing": "opted_in", "transactional": "opted_out"}
    assert history(customer)[-2:] == [
        ("marketing", "bounced", "opted_in", ADDRESS_CHANGED_SOURCE),
        ("transactional", "bounced", "opted_out", ADDRESS_CHANGED_SOURCE),
    ]
    # The old address stays dead; nothing is listed for the new one.
    assert entries() == {(EMAIL_HASH, "email", "email", "bounced")}


def test_bounce_that_was_the_first_record_is_lifted_to_not_set():
    customer = make_customer()
    bounce(customer)
    move_to(customer, email="working@example.com")

    lifted = lift_bounces_after_address_change(customer, "email", previous_address="maya@example.com")

    assert lifted == ["marketing", "transactional"]
    assert statuses(customer) == {}
    assert history(customer) == [
        ("marketing", "", "bounced", "hard bounce"),
        ("transactional", "", "bounced", "hard bounce"),
        ("marketing", "bounced", "", BOUNCE_LIFTED_SOURCE),
        ("transactional", "bounced", "", BOUNCE_LIFTED_SOURCE),
    ]


def test_restores_the_status_before_the_latest_bounce():
    customer = make_customer()
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")
    do_set_consent(customer, "email", "transactional", "opted_in", source="support")
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce again")
    move_to(customer, email="working@example.com")

    lift_bounces_after_address_change(customer, "email", previous_address="maya@example.com")

    assert statuses(customer) == {"transactional": "opted_in"}


def test_new_address_that_is_itself_listed_as_bounced_stays_bounced():
    customer = make_customer()
    do_set_consent(customer, "email", "marketing", "opted_in", source="signup form")
    bounce(customer)
    do_set_consent(make_customer(external_id="u2", email="dead@example.com"), "email", "transactional", "bounced", source="hard bounce")
    move_to(customer, email="dead@example.com")
    before = history(customer)

    assert lift_bounces_after_address_change(customer, "email", previous_address="maya@example.com") == []
    assert statuses(customer) == {"marketing": "bounced", "transactional": "bounced"}
    assert history(customer) == before


def test_address_change_lifts_a_bounce_but_not_an_unsubscribe():
    customer = make_customer()
    do_set_consent(customer, "email", "marketing", "unsubscribed", source="one-click link")
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")
    move_to(customer, email="working@example.com")

    assert lift_bounces_after_address_change(customer, "email", previous_address="maya@example.com") == ["transactional"]
    assert statuses(customer) == {"marketing": "unsubscribed"}
    assert history(customer) == [
        ("marketing", "", "unsubscribed", "one-click link"),
        ("transactional", "", "bounced", "hard bounce"),
        ("transactional", "bounced", "", BOUNCE_LIFTED_SOURCE),
    ]


def test_the_same_email_in_another_case_is_not_a_new_address():
    customer = make_customer()
    bounce(customer)
    move_to(customer, email="MAYA@example.com")

    assert lift_bounces_after_address_change(customer, "email", previous_address="maya@example.com") == []
    assert statuses(customer) == {"marketing": "bounced", "transactional": "bounced"}


def test_removing_the_email_lifts_nothing():
    customer = make_customer()
    bounce(customer)
    move_to(customer, email="")

    assert lift_bounces_after_address_change(customer, "email", previous_address="maya@example.com") == []
    assert statuses(customer) == {"marketing": "bounced", "transactional": "bounced"}


def test_new_phone_lifts_the_sms_bounce_and_leaves_email_alone():
    customer = make_customer()
    do_set_consent(customer, "sms", "marketing", "opted_in", source="keyword JOIN")
    bounce(customer, "sms")
    bounce(customer, "email")
    move_to(customer, phone="+14155550188")

    assert lift_bounces_after_address_change(customer, "sms", previous_address="+14155550101") == ["marketing", "transactional"]
    assert statuses(customer, "sms") == {"marketing": "opted_in"}
    assert history(customer, "sms")[-2:] == [
        ("marketing", "bounced", "opted_in", ADDRESS_CHANGED_SOURCE),
        ("transactional", "bounced", "", BOUNCE_LIFTED_SOURCE),
    ]
    assert statuses(customer, "email") == {"marketing": "bounced", "transactional": "bounced"}


def test_admin_edit_to_a_new_email_lifts_the_bounce():
    customer = make_customer()
    do_set_consent(customer, "email", "transactional", "opted_in", source="signup form")
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")

    customer.email = "working@example.com"
    do_save_customer(customer)

    assert statuses(customer) == {"transactional": "opted_in"}
    assert history(customer)[-1] == ("transactional", "bounced", "opted_in", ADDRESS_CHANGED_SOURCE)


def test_admin_edit_to_a_new_phone_lifts_the_sms_bounce():
    customer = make_customer()
    bounce(customer, "sms")

    customer.phone = "+14155550188"
    do_save_customer(customer)

    assert statuses(customer, "sms") == {}
    assert history(customer, "sms")[-2:] == [
        ("marketing", "bounced", "", BOUNCE_LIFTED_SOURCE),
        ("transactional", "bounced", "", BOUNCE_LIFTED_SOURCE),
    ]


def test_admin_edit_to_an_address_listed_as_bounced_keeps_the_customer_bounced():
    customer = make_customer()
    do_set_consent(customer, "email", "transactional", "opted_in", source="signup form")
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")
    do_set_consent(make_customer(external_id="u2", email="dead@example.com"), "email", "marketing", "bounced", source="hard bounce")
    before = history(customer)

    customer.email = "dead@example.com"
    do_save_customer(customer)

    assert statuses(customer) == {"marketing": "bounced", "transactional": "bounced"}
    assert history(customer) == [*before, ("marketing", "", "bounced", SUPPRESSION_SOURCE)]


def test_admin_edit_that_keeps_the_address_lifts_nothing():
    customer = make_customer()
    bounce(customer)
    before = history(customer)

    customer.locale = "fr-FR"
    do_save_customer(customer)

    assert statuses(customer) == {"marketing": "bounced", "transactional": "bounced"}
    assert history(customer) == before


def test_restored_opt_in_keeps_an_unsubscribe_listed_for_the_new_address():
    customer = make_customer()
    do_set_consent(customer, "email", "marketing", "opted_in", source="signup form")
    do_set_consent(customer, "email", "marketing", "bounced", source="hard bounce")
    do_set_consent(make_customer(external_id="u2", email="shared@example.com"), "email", "marketing", "unsubscribed", source="one-click link")

    customer.email = "shared@example.com"
    do_save_customer(customer)

    assert statuses(customer) == {"marketing": "unsubscribed"}
    assert history(customer)[-2:] == [
        ("marketing", "bounced", "opted_in", ADDRESS_CHANGED_SOURCE),
        ("marketing", "opted_in", "unsubscribed", SUPPRESSION_SOURCE),
    ]
    assert SuppressedIdentifier.objects.filter(
        identifier_hash=hash_identifier("email", "shared@example.com"), channel="email", status="unsubscribed"
    ).exists()


# --- A suppression entry is never downgraded -------------------------------------------------


def test_unsubscribe_after_a_bounce_leaves_the_address_bounced():
    customer = make_customer()
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")
    do_set_consent(customer, "email", "marketing", "unsubscribed", source="one-click link")

    assert entries() == {
        (EMAIL_HASH, "email", "email", "bounced"),
        (EXTERNAL_ID_HASH, "external_id", "email", "unsubscribed"),
    }
    newcomer = make_customer(external_id="u2")
    apply_suppressions(newcomer)
    assert consent_status(newcomer, "email", "transactional") == "bounced"


def test_opt_out_after_a_complaint_leaves_the_complaint():
    customer = make_customer()
    do_set_consent(customer, "sms", "marketing", "complained", source="carrier report")
    do_set_consent(customer, "sms", "marketing", "opted_out", source="STOP")

    assert set(SuppressedIdentifier.objects.values_list("kind", "status", "reason")) == {
        ("phone", "complained", "carrier report"),
        ("external_id", "complained", "carrier report"),
    }


def test_bounce_after_an_unsubscribe_upgrades_the_address_entry():
    customer = make_customer()
    do_set_consent(customer, "email", "marketing", "unsubscribed", source="one-click link")
    do_set_consent(customer, "email", "marketing", "bounced", source="hard bounce")

    assert entries() == {
        (EMAIL_HASH, "email", "email", "bounced"),
        (EXTERNAL_ID_HASH, "external_id", "email", "unsubscribed"),
    }


def test_opting_in_lifts_an_unsubscribe_but_not_a_bounce():
    customer = make_customer()
    do_set_consent(customer, "email", "transactional", "bounced", source="hard bounce")
    do_set_consent(customer, "email", "marketing", "unsubscribed", source="one-click link")
    do_set_consent(customer, "email", "marketing", "opted_in", source="preference centre")

    assert entries() == {(EMAIL_HASH, "email", "email", "bounced")}


# --- Erasure -----------------------------------------------------------------------------------


def log(user, obj, message: str, flag=CHANGE) -> LogEntry:
    return LogEntry.objects.create(
        user=user, content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk),
        object_repr=str(obj)[:200], action_flag=flag, change_message=message,
    )


def test_erasure_scrubs_the_admin_log_of_the_customer_and_their_contact_points_and_consents(django_user_model):
    user = django_user_model.objects.create_user("ops")
    customer = make_customer()
    point = ContactPoint.objects.create(customer=customer, channel="sms", address="+14155550101")
    do_set_consent(customer, "sms", "marketing", "opted_in", source="api")
    consent = Consent.objects.get(customer=customer)
    logged = [
        log(user, customer, '[{"added": {"name": "contact point", "object": "SMS: +14155550101"}}]'),
        log(user, point, '[{"changed": {"fields": ["Address"]}}]', flag=ADDITION),
        log(user, consent, "[]"),
    ]
    other = make_customer(external_id="u2", email="someone@example.com", phone="")
    kept = log(user, other, '[{"changed": {"fields": ["Email"]}}]')

    do_erase_customer(customer)

    scrubbed = LogEntry.objects.filter(pk__in=[e.pk for e in logged]).values_list("object_repr", "change_message")
    assert list(scrubbed) == [("erased customer", "")] * 3
    kept_now = LogEntry.objects.get(pk=kept.pk)
    assert (kept_now.object_repr, kept_now.change_message) == ("someone@example.com", '[{"changed": {"fields": ["Email"]}}]')


def test_erasure_leaves_the_log_of_another_models_row_with_the_same_id_alone(django_user_model):
    user = django_user_model.objects.create_user("ops")
    customer = make_customer()
    point = ContactPoint.objects.create(customer=customer, channel="email", address="maya@example.com")
    # A user whose id happens to equal the contact point's: not this customer's.
    unrelated = LogEntry.objects.create(
        user=user, content_type=ContentType.objects.get_for_model(django_user_model), object_id=str(point.pk),
        object_repr="ops", action_flag=CHANGE, change_message="[]",
    )

    do_erase_customer(customer)

    unrelated.refresh_from_db()
    assert (unrelated.object_repr, unrelated.change_message) == ("ops", "[]")


def test_erased_external_id_does_not_suppress_one_differing_only_in_case():
    customer = make_customer(external_id="AbC", email="", phone="")
    do_set_consent(customer, "push", "marketing", "unsubscribed", source="notification settings")
    do_erase_customer(customer)

    other = make_customer(external_id="abc", email="", phone="")
    assert apply_suppressions(other) == []
    same = make_customer(external_id="AbC", email="", phone="")
    assert apply_suppressions(same) == ["push"]
