"""Who may get what, at send time: consent, bounces, STOP and addresses (issue 4).

Marketing goes only to people opted in on that channel (where the policy asks for an
opt-in: email, SMS and push as shipped); unsubscribed, bounced and complained contact
points are unavailable; an SMS STOP blocks every further SMS. Transactional messages
ignore marketing opt-outs, never a bounce or a STOP. The rule is
channels_app.reachability's: ``Reachability.refusal`` at send time, ``sendable_q`` for
lists and segments, held here to the same table of cases.
"""

from __future__ import annotations

import dataclasses

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

from channels_app.reachability import Reachability, Refusal, Rule, sendable_q
from customers.consent import (
    SMS_START_SOURCE,
    SMS_STOP_SOURCE,
    apply_suppressions,
    do_erase_customer,
    do_record_sms_start,
    do_record_sms_stop,
    do_set_consent,
)
from customers.models import (
    Consent,
    ConsentChange,
    ContactPoint,
    Customer,
    SuppressedIdentifier,
    hash_identifier,
)
from orchestrator.dispatch import DispatchResult, SendRequest, dispatch
from orchestrator.governor.loading import forget_policy, load_policy
from orchestrator.governor.models import GovernorSettings, GovernorVerdict, PolicyChange
from orchestrator.roles import Role

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"
NEEDS_OPT_IN = "{} needs an opt-in, and this customer has none"

# (channel, category, recorded statuses by category, refusal or None). Every customer has
# an address on every channel unless the case says "bare".
CASES = [
    # marketing: an opt-in where the policy asks for one
    ("email", "marketing", {}, (Rule.OPT_IN, NEEDS_OPT_IN.format("marketing email"))),
    ("email", "marketing", {"marketing": "opted_in"}, None),
    ("email", "marketing", {"transactional": "opted_in"}, (Rule.OPT_IN, NEEDS_OPT_IN.format("marketing email"))),
    ("email", "marketing", {"marketing": "opted_out"}, (Rule.CONSENT, "marketing email: the customer opted out")),
    ("email", "marketing", {"marketing": "unsubscribed"}, (Rule.CONSENT, "marketing email: the customer unsubscribed")),
    ("email", "marketing", {"marketing": "complained"},
     (Rule.CONSENT, "marketing email: the customer complained (marked a message as spam)")),
    ("sms", "marketing", {}, (Rule.OPT_IN, NEEDS_OPT_IN.format("marketing SMS"))),
    ("sms", "marketing", {"marketing": "opted_in"}, None),
    ("push", "marketing", {}, (Rule.OPT_IN, NEEDS_OPT_IN.format("marketing push"))),
    ("push", "marketing", {"marketing": "opted_in"}, None),
    ("in_app", "marketing", {}, None),  # the inbox needs no opt-in
    ("in_app", "marketing", {"marketing": "opted_out"}, (Rule.CONSENT, "marketing in-app: the customer opted out")),
    # a bounce is about the address: every category of the channel
    ("email", "marketing", {"marketing": "opted_in", "transactional": "bounced"}, (Rule.BOUNCE, "email: the address bounced")),
    ("email", "transactional", {"marketing": "bounced"}, (Rule.BOUNCE, "email: the address bounced")),
    ("sms", "transactional", {"transactional": "bounced"}, (Rule.BOUNCE, "SMS: the number bounced")),
    # STOP: every SMS, transactional included
    ("sms", "marketing", {"marketing": "opted_in", "transactional": "stopped"}, (Rule.STOP, "SMS: the customer replied STOP")),
    ("sms", "transactional", {"marketing": "stopped", "transactional": "stopped"}, (Rule.STOP, "SMS: the customer replied STOP")),
    ("sms", "transactional", {"marketing": "stopped"}, (Rule.STOP, "SMS: the customer replied STOP")),
    # transactional ignores marketing opt-outs, not its own
    ("email", "transactional", {}, None),
    ("email", "transactional", {"marketing": "unsubscribed"}, None),
    ("email", "transactional", {"marketing": "complained"}, None),
    ("sms", "transactional", {"marketing": "opted_out"}, None),
    ("in_app", "transactional", {"marketing": "opted_out"}, None),
    ("email", "transactional", {"transactional": "opted_out"}, (Rule.CONSENT, "transactional email: the customer opted out")),
    # then an address
    ("push", "marketing", {"marketing": "opted_in"}, (Rule.REACHABILITY, "no enabled push subscription"), "bare"),
    ("sms", "transactional", {}, (Rule.REACHABILITY, "no phone number"), "bare"),
    ("email", "marketing", {"marketing": "opted_in"}, (Rule.REACHABILITY, "no email address"), "bare"),
    ("email", "marketing", {}, (Rule.OPT_IN, NEEDS_OPT_IN.format("marketing email")), "bare"),  # consent first
    ("in_app", "transactional", {}, None, "bare"),
]


def case_id(case) -> str:
    channel, category, statuses, *_ = case
    recorded = ",".join(f"{c}={s}" for c, s in statuses.items()) or "nothing"
    return f"{category}-{channel}-{recorded}" + ("-bare" if len(case) > 4 else "")


def make_customer(n: int = 0, *, bare: bool = False, statuses: dict | None = None, channel: str = "email") -> Customer:
    if bare:
        customer = Customer.objects.create(external_id=f"case-{n}")
    else:
        customer = Customer.objects.create(external_id=f"case-{n}", email=f"case-{n}@example.com", phone=f"+1415555{n:04d}")
        ContactPoint.objects.create(customer=customer, channel="push", address=f"https://push.example/{n}")
    for category, status in (statuses or {}).items():
        Consent.objects.create(customer=customer, channel=channel, category=category, status=status, source="test")
    return customer


def send(customer: Customer, channel: str, category: str, key: str = "k1") -> DispatchResult:
    content = {"subject": "Hi", "html": "<p>Hi</p>"} if channel == "email" else {"body": "Hi", "title": "Hi"}
    with transaction.atomic():
        return dispatch(SendRequest(customer_id=customer.pk, channel=channel, category=category, content=content, idempotency_key=key))


def statuses(customer: Customer, channel: str = "sms") -> dict[str, str]:
    return dict(Consent.objects.filter(customer=customer, channel=channel).values_list("category", "status"))


def suppressions(channel: str = "sms") -> set[tuple[str, str]]:
    return set(SuppressedIdentifier.objects.filter(channel=channel).values_list("kind", "status"))


# --- the rule, case by case ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_the_availability_rule(case):
    channel, category, recorded, expected, *bare = case
    customer = make_customer(bare=bool(bare), statuses=recorded, channel=channel)

    refusal = Reachability.load([customer.pk]).refusal(customer, channel, category)

    assert refusal == (Refusal(*expected) if expected else None)


def test_the_sql_rule_agrees_with_the_send_time_rule_on_every_case():
    """Lists and segments filter with sendable_q; whatever a send would do, they say too,
    with the policy's opt-in channels as shipped and with none."""
    customers = [make_customer(n, bare=len(c) > 4, statuses=c[2], channel=c[0]) for n, c in enumerate(CASES)]
    reach = Reachability.load(c.pk for c in customers)
    for opt_in in (load_policy().marketing_opt_in_channels, frozenset()):
        judged = dataclasses.replace(reach, opt_in_channels=opt_in)
        for customer, (channel, category, *_) in zip(customers, CASES, strict=True):
            in_sql = Customer.objects.filter(sendable_q(channel, category, opt_in_channels=opt_in), pk=customer.pk).exists()
            assert in_sql == (judged.refusal(customer, channel, category) is None), (customer.external_id, opt_in)


def test_without_the_opt_in_requirement_nothing_recorded_is_enough_and_opt_outs_still_block():
    GovernorSettings.objects.filter(pk=1).update(marketing_opt_in_channels=["sms"])
    forget_policy()
    never = make_customer(1)
    unsubscribed = make_customer(2, statuses={"marketing": "unsubscribed"})

    reach = Reachability.load([never.pk, unsubscribed.pk])

    assert reach.refusal(never, "email", "marketing") is None
    assert reach.refusal(never, "sms", "marketing") == Refusal(Rule.OPT_IN, NEEDS_OPT_IN.format("marketing SMS"))
    assert reach.refusal(unsubscribed, "email", "marketing") == Refusal(Rule.CONSENT, "marketing email: the customer unsubscribed")


def test_many_customers_are_judged_from_two_queries(django_assert_num_queries):
    customers = [make_customer(n, statuses={"marketing": "opted_in"}) for n in range(5)]
    load_policy()  # cached: sends do not read the policy each time
    with django_assert_num_queries(2):
        reach = Reachability.load(c.pk for c in customers)
    assert [reach.refusal(c, "email", "marketing") for c in customers] == [None] * 5


# --- through dispatch ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recorded", "channel", "category", "rule", "reason"),
    [
        ({}, "email", "marketing", "opt-in", NEEDS_OPT_IN.format("marketing email")),
        ({"marketing": "bounced"}, "email", "transactional", "bounce", "email: the address bounced"),
        ({"transactional": "stopped"}, "sms", "transactional", "stop", "SMS: the customer replied STOP"),
        ({"marketing": "complained"}, "email", "marketing", "consent", "marketing email: the customer complained (marked a message as spam)"),
        ({"marketing": "opted_in"}, "push", "marketing", "reachability", "no enabled push subscription"),
    ],
)
def test_a_refused_send_is_recorded_as_suppressed_with_its_rule(recorded, channel, category, rule, reason):
    customer = make_customer(bare=channel == "push", statuses=recorded, channel=channel)
    if channel == "push":
        customer.email = "bare@example.com"
        customer.save()

    result = send(customer, channel, category)

    assert result == DispatchResult("suppressed", result.message_id, reason)
    verdict = GovernorVerdict.objects.get()
    assert (verdict.decision, verdict.rule, verdict.reason, verdict.message_id) == ("suppress", rule, reason, result.message_id)
    assert (verdict.channel, verdict.category) == (channel, category)


def test_an_opted_in_customer_gets_marketing_and_nothing_is_recorded_against_them():
    customer = make_customer(statuses={"marketing": "opted_in"})

    assert send(customer, "email", "marketing").outcome == "queued"
    assert not GovernorVerdict.objects.exists()


# --- SMS STOP and START ------------------------------------------------------------------------


def test_stop_blocks_transactional_sms_and_start_lifts_it():
    customer = Customer.objects.create(external_id="u1", phone=PHONE)
    do_set_consent(customer, "sms", "marketing", "opted_in", source="checkout")

    assert do_record_sms_stop(customer) == ["marketing", "transactional"]

    assert statuses(customer) == {"marketing": "stopped", "transactional": "stopped"}
    stopped = send(customer, "sms", "transactional", key="during")
    assert (stopped.outcome, stopped.reason) == ("suppressed", "SMS: the customer replied STOP")
    assert GovernorVerdict.objects.get().rule == "stop"
    assert suppressions() == {("phone", "stopped"), ("external_id", "stopped")}

    assert do_record_sms_start(customer) == ["marketing", "transactional"]

    assert statuses(customer) == {"marketing": "opted_in", "transactional": "opted_in"}
    assert suppressions() == set()
    assert send(customer, "sms", "transactional", key="after").outcome == "queued"
    assert send(customer, "sms", "marketing", key="after-marketing").outcome == "queued"
    history = list(ConsentChange.objects.filter(customer=customer).order_by("id").values_list("category", "previous_status", "status", "source"))
    assert history == [
        ("marketing", "", "opted_in", "checkout"),
        ("marketing", "opted_in", "stopped", SMS_STOP_SOURCE),
        ("transactional", "", "stopped", SMS_STOP_SOURCE),
        ("marketing", "stopped", "opted_in", SMS_START_SOURCE),
        ("transactional", "stopped", "opted_in", SMS_START_SOURCE),
    ]


def test_start_is_no_marketing_opt_in_for_someone_who_never_gave_one():
    customer = Customer.objects.create(external_id="u1", phone=PHONE)
    do_record_sms_stop(customer)

    do_record_sms_start(customer)

    assert statuses(customer) == {"transactional": "opted_in"}
    assert ConsentChange.objects.filter(customer=customer, category="marketing").order_by("-id").values_list(
        "previous_status", "status", "source"
    ).first() == ("stopped", "", SMS_START_SOURCE)
    assert send(customer, "sms", "marketing").reason == NEEDS_OPT_IN.format("marketing SMS")


def test_start_puts_a_marketing_opt_out_from_before_the_stop_back_on_the_suppression_list():
    customer = Customer.objects.create(external_id="u1", phone=PHONE)
    do_set_consent(customer, "sms", "marketing", "opted_out", source="preference centre")
    do_record_sms_stop(customer)
    assert suppressions() == {("phone", "stopped"), ("external_id", "stopped")}

    do_record_sms_start(customer)

    assert statuses(customer) == {"marketing": "opted_out", "transactional": "opted_in"}
    assert suppressions() == {("phone", "opted_out"), ("external_id", "opted_out")}


def test_stop_twice_changes_nothing_and_start_without_a_stop_does_nothing():
    customer = Customer.objects.create(external_id="u1", phone=PHONE)
    assert do_record_sms_start(customer) == []
    assert not Consent.objects.exists()

    do_record_sms_stop(customer)
    changes = ConsentChange.objects.count()
    assert do_record_sms_stop(customer) == []
    assert ConsentChange.objects.count() == changes


def test_stop_leaves_a_bounced_number_bounced_and_start_does_not_lift_the_bounce():
    customer = Customer.objects.create(external_id="u1", phone=PHONE)
    do_set_consent(customer, "sms", "transactional", "bounced", source="carrier: unknown number")

    assert do_record_sms_stop(customer) == ["marketing"]
    assert do_record_sms_start(customer) == ["marketing"]

    assert statuses(customer) == {"transactional": "bounced"}
    assert send(customer, "sms", "transactional").reason == "SMS: the number bounced"


def test_a_stop_outlives_erasure_and_stops_the_number_again_when_it_comes_back():
    customer = Customer.objects.create(external_id="u1", phone=PHONE)
    do_record_sms_stop(customer)
    do_erase_customer(customer)

    back = Customer.objects.create(external_id="u2", phone=PHONE)
    assert apply_suppressions(back) == ["sms"]

    assert statuses(back) == {"marketing": "stopped", "transactional": "stopped"}
    entry = SuppressedIdentifier.objects.get(identifier_hash=hash_identifier("phone", PHONE))
    assert (entry.channel, entry.status) == ("sms", "stopped")


# --- the admin setting -----------------------------------------------------------------------


def test_the_admin_setting_decides_where_marketing_needs_an_opt_in(client, make_user, django_capture_on_commit_callbacks):
    customer = make_customer()
    assert send(customer, "email", "marketing", key="before").reason == NEEDS_OPT_IN.format("marketing email")
    client.force_login(make_user(Role.ADMIN))
    form = {"min_spacing_minutes": "0", "fallback_timezone": "UTC", "defer_horizon_hours": "72",
            "marketing_opt_in_channels": ["sms", "push"]}

    with django_capture_on_commit_callbacks(execute=True):  # forgets the cached policy
        response = client.post(reverse("admin:orchestrator_governorsettings_change", args=[1]), form)

    assert response.status_code == 302
    assert send(customer, "email", "marketing", key="after").outcome == "queued"
    change = PolicyChange.objects.get()
    assert (change.model_label, change.action) == ("orchestrator.governorsettings", "changed")
    assert (change.before["marketing_opt_in_channels"], change.after["marketing_opt_in_channels"]) == (
        ["email", "sms", "push"], ["sms", "push"]
    )


def test_the_opt_in_channels_are_known_channels_kept_in_channel_order():
    row = GovernorSettings.get()
    row.marketing_opt_in_channels = ["push", "email"]
    row.full_clean()
    assert row.marketing_opt_in_channels == ["email", "push"]

    row.marketing_opt_in_channels = ["email", "fax"]
    with pytest.raises(ValidationError) as error:
        row.full_clean()
    assert error.value.message_dict == {
        "marketing_opt_in_channels": ["Unknown channel(s): fax. Choose from email, sms, push, in_app."]
    }


def test_the_shipped_policy_asks_for_an_opt_in_on_email_sms_and_push():
    assert GovernorSettings.get().marketing_opt_in_channels == ["email", "sms", "push"]
    assert load_policy().marketing_opt_in_channels == frozenset({"email", "sms", "push"})
