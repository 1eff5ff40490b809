"""The channel content rules where they apply: saving a draft reports them, publishing is
refused on an error, sending suppresses rendered content that breaks them, and admins
edit the rule set (with an audit trail) in the admin."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import logging
import re

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse

from channels_app import content_rules_loading as loading
from channels_app.content_rules import DEFAULT_RULES, RULE_NAMES, RuleSet
from channels_app.content_rules_loading import load_rules, read_rules
from channels_app.models import ContentRuleSettings, Message, MessageTransition
from customers.models import Customer
from journeys.content import app_present_nodes, content_problems
from journeys.graph import InvalidGraph, Problem
from journeys.models import JourneyStatus
from journeys.services import JourneyInput, do_create_journey, do_publish_journey
from orchestrator.dispatch import Outcome, SendRequest, refuse
from orchestrator.engine.entry import enrol
from orchestrator.engine.models import Enrollment, EnrollmentStep
from orchestrator.engine.runner import run_due
from orchestrator.governor.models import GovernorVerdict, PolicyChange
from orchestrator.roles import Role
from orchestrator.timeline import Kind, read_page
from tests.api_factories import opted_in
from tests.journey_factories import linear_graph, node

pytestmark = [pytest.mark.django_db, pytest.mark.content_rules]

URL = "/api/v1/journeys"
T0 = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
UNSUBSCRIBE = '<p>New in</p><a href="https://shop.example/unsubscribe">Unsubscribe</a>'
OPT_OUT = "marketing SMS must tell people how to opt out, e.g. 'Reply STOP to opt out'"
LONG_SUBJECT = "Our autumn edit is here: coats, knits and boots for the colder days"  # 67 characters
SUBJECT_WARNING = "67 characters; inboxes cut subjects after about 60"


def entry(**config) -> dict:
    return node("entry", "entry", **(config or {"trigger": "api"}))


def sms(node_id: str, body: str) -> dict:
    return node(node_id, "send", channel="sms", content={"sms": {"body": body}})


def email(node_id: str, subject: str, body: str = UNSUBSCRIBE) -> dict:
    return node(node_id, "send", channel="email", content={"email": {"subject": subject, "html": body}})


def in_app(node_id: str) -> dict:
    return node(node_id, "send", channel="in_app", content={"in_app": {"title": "Welcome back", "body": "See what's new"}})


def draft_with_problems() -> dict:
    """An SMS without opt-out wording (error), a push title too long (error), a long subject (warning)."""
    return linear_graph(
        entry(),
        sms("sms", "Hi {{ customer.first_name }}, your cart is waiting"),
        node("push", "send", channel="push", content={"push": {"title": "Your cart: " + "t" * 40, "body": "Still there?"}}),
        email("email", LONG_SUBJECT),
    )


DRAFT_PROBLEMS = [
    {"node": "sms", "field": "sms.body", "severity": "error", "message": OPT_OUT},
    {"node": "push", "field": "push.title", "severity": "error", "message": "51 characters; push titles are cut after about 50"},
    {"node": "email", "field": "email.subject", "severity": "warning", "message": SUBJECT_WARNING},
]


# --- saving a draft reports the problems, pinned on their nodes -----------------------------


def test_saving_a_draft_answers_its_content_problems_by_node_and_field(api_client):
    created = api_client.post(URL, {"name": "Cart", "graph": linear_graph(entry())}, format="json")
    assert (created.status_code, created.json()["content_problems"]) == (201, [])

    patched = api_client.patch(f"{URL}/{created.json()['id']}", {"graph": draft_with_problems()}, format="json")

    assert patched.status_code == 200
    assert patched.json()["content_problems"] == DRAFT_PROBLEMS
    assert patched.json()["graph"] == draft_with_problems()  # saved all the same: a draft may be unfinished
    assert api_client.get(f"{URL}/{created.json()['id']}").json()["content_problems"] == DRAFT_PROBLEMS


def test_a_transactional_journey_is_judged_as_transactional(api_client):
    graph = linear_graph(entry(), sms("sms", "Your order has shipped. 20% off your next one with code AUTUMN24"))
    created = api_client.post(URL, {"name": "Shipping", "category": "transactional", "graph": graph}, format="json")
    assert created.json()["content_problems"] == [{
        "node": "sms", "field": "sms.body", "severity": "error",
        "message": "labelled transactional but reads as marketing ('20% off', 'code AUTUMN24')",
    }]


def test_the_draft_page_shows_each_problem_on_its_node(client, make_user):
    journey = do_create_journey(JourneyInput(name="Cart", graph=draft_with_problems()), None)
    client.force_login(make_user(Role.MARKETER))

    page = client.get(reverse("journeys:detail", args=[journey.pk])).content.decode()

    assert '<p class="form-note" id="content-summary">Content rules: 2 errors, which block publishing; 1 warning.</p>' in page
    assert problems_on_cards(page) == {
        "entry": [],
        "sms": [("error", "sms.body", OPT_OUT)],
        "push": [("error", "push.title", "51 characters; push titles are cut after about 50")],
        "email": [("warning", "email.subject", SUBJECT_WARNING)],
    }


def problems_on_cards(page: str) -> dict[str, list[tuple[str, str, str]]]:
    cards = re.findall(r'<li class="node-card node-\w+" id="node-(\w+)">(.*?)</li>\s*(?=<li class="node-card|</ol>)', page, re.S)
    item = re.compile(r'<li data-severity="(\w+)"(?: class="text-danger")?><span class="badge">\w+</span> <code>([\w.]+)</code> (.*?)</li>')
    return {node_id: [(s, f, html.unescape(m)) for s, f, m in item.findall(body)] for node_id, body in cards}


# --- publishing: errors block, warnings do not ----------------------------------------------


def test_publishing_is_refused_on_a_content_error_pinned_on_its_node(api_client):
    journey_id = api_client.post(URL, {"name": "Cart", "graph": draft_with_problems()}, format="json").json()["id"]

    response = api_client.post(f"{URL}/{journey_id}/publish")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_graph"
    assert response.json()["error"]["fields"] == [
        {"field": "nodes.sms.config.content.sms.body", "reason": OPT_OUT, "node": "sms"},
        {"field": "nodes.push.config.content.push.title", "reason": "51 characters; push titles are cut after about 50", "node": "push"},
    ]
    detail = api_client.get(f"{URL}/{journey_id}").json()
    assert (detail["status"], detail["live_version"], detail["draft_version"]) == ("draft", None, 1)


def test_publishing_goes_ahead_with_only_warnings_and_still_reports_them(api_client):
    graph = linear_graph(entry(), sms("sms", "New arrivals are in. Reply STOP to opt out"), email("email", LONG_SUBJECT))
    journey_id = api_client.post(URL, {"name": "Autumn", "graph": graph}, format="json").json()["id"]

    response = api_client.post(f"{URL}/{journey_id}/publish")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["live_version"]) == ("live", 1)
    assert response.json()["content_problems"] == [
        {"node": "email", "field": "email.subject", "severity": "warning", "message": SUBJECT_WARNING},
    ]


# --- in-app: only where the customer is in the app ------------------------------------------

APP_EVENTS = DEFAULT_RULES.in_app_presence_events
DELAY = {"mode": "duration", "amount": 1, "unit": "hours"}
TIMEOUT = {"amount": 1, "unit": "days"}


def wait_for(event: str) -> dict:
    return node("wait", "wait_for_event", mode="event", event=event, timeout=TIMEOUT)


def test_in_app_straight_after_an_app_event_at_the_entry_is_seen():
    graph = linear_graph(entry(trigger="event", event="Screen Viewed"), node("tag", "update_profile", trait="seen", value=True), in_app("inapp"))
    assert app_present_nodes(graph, APP_EVENTS) == {"entry", "tag", "inapp"}
    assert content_problems(graph, "marketing", DEFAULT_RULES) == []


def test_in_app_after_a_delay_or_on_a_non_app_entry_may_never_be_seen():
    after_delay = linear_graph(entry(trigger="event", event="screen viewed"), node("later", "delay", **DELAY), in_app("inapp"))
    from_the_api = linear_graph(entry(), in_app("inapp"))
    # Present as they arrive at the delay, not when it ends; event names match in any case.
    assert app_present_nodes(after_delay, APP_EVENTS) == {"entry", "later"}
    assert app_present_nodes(from_the_api, APP_EVENTS) == set()
    for graph in (after_delay, from_the_api):
        [found] = content_problems(graph, "marketing", DEFAULT_RULES)
        assert (found.node_id, found.problem.field, found.problem.severity) == ("inapp", "in_app", "error")


def test_in_app_on_the_happened_port_of_a_wait_for_an_app_event_is_seen_but_not_on_its_timeout():
    graph = {
        "nodes": [entry(), wait_for("Application Opened"), in_app("seen"), in_app("timed_out")],
        "edges": [
            {"from": "entry", "port": "out", "to": "wait"},
            {"from": "wait", "port": "happened", "to": "seen"},
            {"from": "wait", "port": "timed_out", "to": "timed_out"},
        ],
    }
    assert app_present_nodes(graph, APP_EVENTS) == {"seen"}
    assert [p.node_id for p in content_problems(graph, "marketing", DEFAULT_RULES)] == ["timed_out"]


def test_in_app_reached_both_from_the_app_and_after_a_delay_is_not_surely_seen():
    graph = {
        "nodes": [entry(trigger="event", event="Page Viewed"), node("split", "random_split", branches=[
            {"port": "now", "weight": 1}, {"port": "later", "weight": 1}]), node("later", "delay", **DELAY), in_app("inapp")],
        "edges": [
            {"from": "entry", "port": "out", "to": "split"},
            {"from": "split", "port": "now", "to": "inapp"},
            {"from": "split", "port": "later", "to": "later"},
            {"from": "later", "port": "out", "to": "inapp"},
        ],
    }
    assert app_present_nodes(graph, APP_EVENTS) == {"entry", "split", "later"}


def test_admins_name_the_app_events_or_turn_the_in_app_rule_off():
    graph = linear_graph(entry(trigger="event", event="Cart Viewed In App"), in_app("inapp"))
    assert len(content_problems(graph, "marketing", DEFAULT_RULES)) == 1
    assert content_problems(graph, "marketing", RuleSet(in_app_presence_events=("Cart Viewed In App",))) == []
    assert content_problems(graph, "marketing", RuleSet(in_app_requires_app_presence=False)) == []


def test_an_in_app_send_after_a_delay_cannot_be_published():
    graph = linear_graph(entry(trigger="event", event="Screen Viewed"), node("later", "delay", **DELAY), in_app("inapp"))
    journey = do_create_journey(JourneyInput(name="Welcome back", graph=graph), None)

    with pytest.raises(InvalidGraph) as refused:
        do_publish_journey(journey, None)

    assert refused.value.problems == [Problem("inapp", "config.channel", (
        "in-app messages are only seen in the app, and people can reach this step when they are not in it: "
        "send it straight after an app event (Screen Viewed, Page Viewed, Application Opened) at the entry "
        "or a wait, with no delay in between"
    ))]
    journey.refresh_from_db()
    assert (journey.status, journey.live_version_id) == (JourneyStatus.DRAFT, None)


# --- best-channel and fallback sends: every channel they may use is checked ------------------

OPTED_OUT_SMS = {"body": "New arrivals are in. Reply STOP to opt out"}
CLEAN_EMAIL = {"subject": "New in", "html": UNSUBSCRIBE}


def test_a_best_channel_send_has_each_channels_content_checked_by_its_own_rules():
    offer = node("offer", "send", channel="best", fallback=["email", "sms", "push"], content={
        "email": {"subject": LONG_SUBJECT, "html": UNSUBSCRIBE},
        "sms": {"body": "Hi {{ customer.first_name }}, your cart is waiting"},
        "push": {"title": "Your cart: " + "t" * 40, "body": "Still there?"},
    })

    found = content_problems(linear_graph(entry(), offer), "marketing", DEFAULT_RULES)

    assert [p.to_json() for p in found] == [
        {"node": "offer", "field": "email.subject", "severity": "warning", "message": SUBJECT_WARNING},
        {"node": "offer", "field": "sms.body", "severity": "error", "message": OPT_OUT},
        {"node": "offer", "field": "push.title", "severity": "error", "message": "51 characters; push titles are cut after about 50"},
    ]


def test_a_fallback_channels_content_is_checked_as_well_as_the_first_channels():
    send = node("nudge", "send", channel="email", fallback=["sms"], content={
        "email": CLEAN_EMAIL, "sms": {"body": "Your cart is waiting"},
    })

    found = content_problems(linear_graph(entry(), send), "marketing", DEFAULT_RULES)

    assert [p.to_json() for p in found] == [{"node": "nudge", "field": "sms.body", "severity": "error", "message": OPT_OUT}]


def test_a_best_channel_send_that_may_pick_in_app_after_a_delay_cannot_be_published():
    offer = node("offer", "send", channel="best", fallback=["sms", "in_app"], content={
        "sms": OPTED_OUT_SMS, "in_app": {"title": "Welcome back", "body": "See what's new"},
    })
    graph = linear_graph(entry(trigger="event", event="Screen Viewed"), node("later", "delay", **DELAY), offer)
    journey = do_create_journey(JourneyInput(name="Welcome back", graph=graph), None)

    with pytest.raises(InvalidGraph) as refused:
        do_publish_journey(journey, None)

    assert [(p.node_id, p.field) for p in refused.value.problems] == [("offer", "config.fallback")]
    assert refused.value.problems[0].message.startswith("in-app messages are only seen in the app")
    journey.refresh_from_db()
    assert (journey.status, journey.live_version_id) == (JourneyStatus.DRAFT, None)


def test_a_best_channel_send_with_clean_content_on_every_channel_publishes():
    offer = node("offer", "send", channel="best", fallback=["email", "sms"], content={"email": CLEAN_EMAIL, "sms": OPTED_OUT_SMS})
    journey = do_create_journey(JourneyInput(name="Offer", graph=linear_graph(entry(), offer)), None)

    version = do_publish_journey(journey, None)

    journey.refresh_from_db()
    assert (journey.status, journey.live_version_id) == (JourneyStatus.LIVE, version.pk)


# --- send time: the rendered text is checked again ------------------------------------------

TEMPLATE = "Hi {{ customer.first_name }}, new arrivals are in. Reply STOP to opt out"
LONG_NAME = "Maximiliana " * 36  # 432 characters: the rendered SMS takes 4 parts


def live_sms_journey() -> tuple:
    """Published through the service: as written, the SMS passes every rule."""
    graph = linear_graph(entry(), sms("sms", TEMPLATE), node("after", "update_profile", trait="went_on", value=True))
    journey = do_create_journey(JourneyInput(name="Arrivals", graph=graph), None)
    version = do_publish_journey(journey, None)
    return journey, version


def person(external_id: str, first_name: str) -> Customer:
    return opted_in(Customer.objects.create(external_id=external_id, phone="+12125550117", traits={"first_name": first_name}))


def enter(journey, customer) -> Enrollment:
    with time_machine.travel(T0, tick=False):
        result = enrol(journey, customer, trigger_key=f"api:{customer.external_id}", context={}, now=T0)
    assert result.entered, result
    return Enrollment.objects.get(pk=result.enrollment_id)


def test_an_sms_a_variable_makes_too_long_is_suppressed_for_its_content_and_the_journey_goes_on():
    journey, version = live_sms_journey()
    long_one, short_one = enter(journey, person("long", LONG_NAME)), enter(journey, person("short", "Maya"))

    with time_machine.travel(T0, tick=False):
        run_due(now=T0)

    # 3 + 432 + 44 characters, past the 459 that 3 parts of 153 carry.
    reason = "content: sms.body: 4 segments (GSM-7, 479 characters); marketing SMS may use at most 3"
    refused = Message.objects.get(enrollment_id=long_one.pk)
    assert (refused.status, refused.content, refused.node_id) == ("suppressed", {"body": TEMPLATE.replace("{{ customer.first_name }}", LONG_NAME)}, "sms")
    assert list(MessageTransition.objects.filter(message=refused).values_list("from_status", "to_status", "detail")) == [
        ("", "queued", ""), ("queued", "suppressed", reason),
    ]
    verdict = GovernorVerdict.objects.get()
    assert (verdict.decision, verdict.rule, verdict.reason, verdict.message_id, verdict.node_id, verdict.journey_id) == (
        "suppress", "content", reason, refused.pk, "sms", journey.pk,
    )
    assert list(EnrollmentStep.objects.filter(enrollment=long_one).order_by("id").values_list("node_id", "outcome", "detail")) == [
        ("entry", "entered", ""), ("sms", "suppressed", f"sms: {reason}"), ("after", "updated", "set went_on = True"),
        ("after", "exited", "end of path after out"),
    ]
    assert Message.objects.get(enrollment_id=short_one.pk).status == "queued"
    timeline = read_page(long_one.customer, [Kind.GOVERNOR, Kind.MESSAGE]).entries
    assert [(entry.kind, entry.id) for entry in timeline] == [(Kind.GOVERNOR, verdict.pk), (Kind.MESSAGE, refused.pk)]


def test_warnings_never_stop_a_send():
    graph = linear_graph(entry(), email("email", LONG_SUBJECT, "<p>Your receipt</p>"))
    journey = do_create_journey(JourneyInput(name="Receipt", category="transactional", graph=graph), None)
    do_publish_journey(journey, None)
    enrollment = enter(journey, Customer.objects.create(external_id="ada", email="ada@example.com"))

    with time_machine.travel(T0, tick=False):
        run_due(now=T0)

    assert Message.objects.get(enrollment_id=enrollment.pk).status == "queued"
    assert not GovernorVerdict.objects.exists()


def test_a_refusal_is_written_once_per_idempotency_key():
    customer = person("ada", "Ada")
    request = SendRequest(customer_id=customer.pk, channel="sms", category="marketing", content={"body": "Hi"},
                          idempotency_key="enrollment:1:step:2", node_id="sms", at=T0)

    with transaction.atomic():
        first = refuse(request, "content: sms.body: too long", rule="content")
        again = refuse(request, "content: sms.body: too long", rule="content")

    assert (first.outcome, first.reason) == (Outcome.SUPPRESSED, "content: sms.body: too long")
    assert (again.outcome, again.message_id) == (Outcome.DUPLICATE, first.message_id)
    assert GovernorVerdict.objects.get().message_id == first.message_id


# --- the rule set as data, edited by admins -------------------------------------------------


def test_the_migrated_rules_are_the_rule_set_defaults_field_for_field():
    assert ContentRuleSettings.objects.get().to_rules() == DEFAULT_RULES
    assert ContentRuleSettings().to_rules() == DEFAULT_RULES
    stored = {f.name for f in ContentRuleSettings._meta.concrete_fields} - {"id", "updated_at", "updated_by"}
    assert stored == set(RULE_NAMES)


def admin_url(view: str, *args) -> str:
    return reverse(f"admin:channels_app_contentrulesettings_{view}", args=args)


def rules_form(**changes) -> dict:
    """The admin form as the page fills it in: word lists one phrase per line."""
    row = ContentRuleSettings.objects.get()
    data = {}
    for name in RULE_NAMES:
        value = getattr(row, name)
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = "\n".join(value) if isinstance(value, list) else str(value)
    return {**data, **changes}


def snapshot(rules: RuleSet) -> dict:
    return {name: list(value) if isinstance(value, tuple) else value for name, value in dataclasses.asdict(rules).items()}


@pytest.fixture
def admin(client, make_user):
    user = make_user(Role.ADMIN, username="ada-admin")
    client.force_login(user)
    return user


def test_an_admin_edit_is_used_by_the_next_check_at_once(client, admin, api_client, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(loading._cached, "clock", lambda: 1000.0)  # time stands still: only forgetting can refresh
    assert load_rules().sms_max_segments_marketing == 3

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(admin_url("change", 1), rules_form(sms_max_segments_marketing="1"))

    assert response.status_code == 302
    assert load_rules() == RuleSet(sms_max_segments_marketing=1)
    graph = linear_graph(entry(), sms("sms", "a" * 150 + " Reply STOP"))
    created = api_client.post(URL, {"name": "Long", "graph": graph}, format="json")
    assert created.json()["content_problems"] == [{
        "node": "sms", "field": "sms.body", "severity": "error",
        "message": "2 segments (GSM-7, 161 characters); marketing SMS may use at most 1",
    }]


def test_every_admin_edit_leaves_a_policy_change_with_before_and_after(client, admin):
    phrases = "reply stop\n  reply arret  \n\ntext stop"

    client.post(admin_url("change", 1), rules_form(sms_max_segments_marketing="2", sms_opt_out_phrases=phrases))

    change = PolicyChange.objects.get()
    assert (change.user, change.username, change.action, change.model_label, change.object_id, change.object_repr) == (
        admin, "ada-admin", "changed", "channels_app.contentrulesettings", "1", "Content rules",
    )
    assert change.before == snapshot(DEFAULT_RULES)
    assert change.after == snapshot(RuleSet(sms_max_segments_marketing=2, sms_opt_out_phrases=("reply stop", "reply arret", "text stop")))
    assert ContentRuleSettings.objects.get().updated_by == admin


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"sms_opt_out_phrases": " \n "}, "sms_opt_out_phrases", "sms_opt_out_phrases must hold at least one phrase"),
        ({"sms_discount_code_pattern": "code ("}, "sms_discount_code_pattern",
         "sms_discount_code_pattern is not a valid regular expression: missing ), unterminated subpattern at position 5"),
        ({"push_max_actions": "0"}, "push_max_actions", "push_max_actions must be a whole number of at least 1"),
    ],
)
def test_a_bad_rule_is_shown_on_its_field_and_nothing_changes(client, admin, changes, field, message, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(admin_url("change", 1), rules_form(**changes))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {field: [message]}
    assert ContentRuleSettings.objects.get().to_rules() == DEFAULT_RULES
    assert not PolicyChange.objects.exists()
    assert callbacks == []


def test_the_rules_are_one_row_never_added_again_nor_deleted(client, admin):
    assert client.get(admin_url("change", 1)).status_code == 200
    assert client.get(admin_url("add")).status_code == 403
    assert client.post(admin_url("delete", 1), {"post": "yes"}).status_code == 403
    assert ContentRuleSettings.objects.count() == 1


@pytest.mark.parametrize("role", [Role.MARKETER, Role.MESSAGING])
def test_other_roles_are_sent_to_the_admin_login_and_change_nothing(client, make_user, role):
    client.force_login(make_user(role))
    for page in (admin_url("changelist"), admin_url("change", 1)):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login")), page
    client.post(admin_url("change", 1), rules_form(sms_max_segments_marketing="9"))
    assert ContentRuleSettings.objects.get().sms_max_segments_marketing == 3
    assert not PolicyChange.objects.exists()


def test_staff_without_the_admin_role_may_not_see_the_rules(client, make_user):
    staff = make_user(username="staffer")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    assert client.get(admin_url("changelist")).status_code == 403
    assert client.post(admin_url("change", 1), rules_form(sms_max_segments_marketing="9")).status_code == 403
    assert ContentRuleSettings.objects.get().sms_max_segments_marketing == 3


def test_a_bad_value_stored_around_the_admin_falls_back_to_its_default_and_is_logged(caplog):
    ContentRuleSettings.objects.update(sms_max_segments_marketing=0, email_subject_max_chars=70)

    with caplog.at_level(logging.ERROR, logger="channels_app.content_rules_loading"):
        rules = read_rules()

    assert rules == RuleSet(email_subject_max_chars=70)
    assert caplog.messages == [
        "Stored content rules are invalid, defaults used instead: sms_max_segments_marketing must be a whole number of at least 1"
    ]


def test_without_a_row_the_defaults_apply():
    ContentRuleSettings.objects.all().delete()
    assert read_rules() == DEFAULT_RULES
