"""Journeys a demo workspace starts with: two live, two drafts, all valid graphs.

"Cart recovery" is the launch story (event entry). "Win back lapsed app users" enters a
saved segment, so when `./chorus up` starts the worker, its segment entry enrols the
lapsed users within a minute and the poller starts sending: the engine is visibly at
work in the outbox and on the journey pages. "Welcome series" is a draft to edit.
"Weekly picks" is a draft that shows channel affinity and send-time optimisation: it
waits for each customer's best hour and sends on their best channel; simulate it for
cust_maya (``./chorus manage simulate_journey "Weekly picks" --customer cust_maya``) to
see both choices and their reasons on the timeline.
Journeys are definitions, like segments: seeding again keeps existing ones.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from customers.models import Segment
from journeys.editor_layout import auto_layout
from journeys.graph import event_names, validate_graph_or_raise
from journeys.models import Journey, JourneyStatus, JourneyVersion, ReentryPolicy


def _node(node_id: str, kind: str, label: str, x: int, y: int, **config) -> dict:
    return {"id": node_id, "kind": kind, "label": label, "config": config, "position": {"x": x, "y": y}}


def _edge(source: str, port: str, target: str) -> dict:
    return {"from": source, "port": port, "to": target}


SMS_BODY = (
    "Hi {{ customer.first_name | default: 'there' }}, your {{ event.product_name | default: 'cart' }} "
    "is still waiting. Complete your order: https://shop.example/cart Reply STOP to opt out."
)


def cart_recovery() -> dict:
    return {
        "nodes": [
            _node("entry", "entry", "Cart abandoned", 40, 40, trigger="event", event="Cart Abandoned", filters=[]),
            _node("wait45", "delay", "Wait 45 minutes", 40, 160, mode="duration", amount=45, unit="minutes"),
            _node("sms", "send", "SMS reminder", 40, 280, channel="sms", content={"sms": {"body": SMS_BODY}}),
            _node("until_morning", "wait_for_event", "Order by 09:00?", 40, 400, mode="event",
                  event="Order Completed", filters=[], timeout={"until": {"time": "09:00"}}),
            _node("push", "send", "Morning push", 260, 520, channel="push", content={"push": {
                "title": "Still thinking it over?",
                "body": "Your {{ event.product_name | default: 'cart' }} is still in your bag.",
                "url": "https://shop.example/cart"}}),
            _node("after_push", "wait_for_event", "Order within 3 days?", 260, 640, mode="event",
                  event="Order Completed", filters=[], timeout={"amount": 3, "unit": "days"}),
            _node("done", "exit", "Exit", 40, 760),
        ],
        "edges": [
            _edge("entry", "out", "wait45"), _edge("wait45", "out", "sms"), _edge("sms", "out", "until_morning"),
            _edge("until_morning", "happened", "done"), _edge("until_morning", "timed_out", "push"),
            _edge("push", "out", "after_push"), _edge("after_push", "happened", "done"),
            _edge("after_push", "timed_out", "done"),
        ],
    }


def win_back(segment_id: int) -> dict:
    return {
        "nodes": [
            _node("entry", "entry", "Lapsed app users", 40, 40, trigger="segment", segment_id=segment_id),
            _node("push", "send", "We miss you push", 40, 160, channel="push", content={"push": {
                "title": "New arrivals picked for you",
                "body": "{{ customer.first_name | default: 'Hi' }}, it has been a while. See what's new this week."}}),
            _node("opened", "wait_for_event", "Opened within 2 days?", 40, 280, mode="engagement",
                  engagement="opened", timeout={"amount": 2, "unit": "days"}),
            _node("email", "send", "Win-back email", 260, 400, channel="email", content={"email": {
                "subject": "{{ customer.first_name | default: 'Hello' }}, 15% off your next order",
                "html": "<p>Come back for 15% off with code <strong>WELCOMEBACK</strong>.</p>"
                        "<p><a href=\"https://shop.example/unsubscribe\">Unsubscribe</a></p>"}}),
            _node("done", "exit", "Exit", 40, 520),
        ],
        "edges": [
            _edge("entry", "out", "push"), _edge("push", "out", "opened"),
            _edge("opened", "happened", "done"), _edge("opened", "timed_out", "email"),
            _edge("email", "out", "done"),
        ],
    }


def welcome_series() -> dict:
    return {
        "nodes": [
            _node("entry", "entry", "Signed up", 40, 40, trigger="event", event="Signed Up", filters=[]),
            _node("welcome", "send", "Welcome email", 40, 160, channel="email", content={"email": {
                "subject": "Welcome to the shop, {{ customer.first_name | default: 'friend' }}",
                "html": "<p>Thanks for joining. Here is what to expect.</p>"
                        "<p><a href=\"https://shop.example/unsubscribe\">Unsubscribe</a></p>"}}),
            _node("two_days", "delay", "Wait 2 days", 40, 280, mode="duration", amount=2, unit="days"),
            _node("has_app", "split", "Has the app?", 40, 400, branches=[{
                "port": "app", "label": "Push reachable",
                "condition": {"match": "all", "conditions": [{"type": "reachable", "channel": "push"}]}}]),
            _node("tips_push", "send", "Tips push", 260, 520, channel="push", content={"push": {
                "title": "3 tips for your first order", "body": "Save favourites, track orders, get early access."}}),
            _node("tips_email", "send", "Tips email", 40, 520, channel="email", content={"email": {
                "subject": "3 tips for your first order",
                "html": "<p>Save favourites, track orders, get early access.</p>"
                        "<p><a href=\"https://shop.example/unsubscribe\">Unsubscribe</a></p>"}}),
            _node("done", "exit", "Exit", 40, 640),
        ],
        "edges": [
            _edge("entry", "out", "welcome"), _edge("welcome", "out", "two_days"), _edge("two_days", "out", "has_app"),
            _edge("has_app", "app", "tips_push"), _edge("has_app", "else", "tips_email"),
            _edge("tips_push", "out", "done"), _edge("tips_email", "out", "done"),
        ],
    }


def weekly_picks() -> dict:
    return {
        "nodes": [
            _node("entry", "entry", "Picks ready (API)", 40, 40, trigger="api"),
            _node("best_hour", "delay", "Wait for their best hour", 40, 160, mode="best_time", within_hours=24),
            _node("picks", "send", "Picks on their best channel", 40, 280, channel="best",
                  fallback=["sms", "push", "email"], explore=0.05, content={
                      "sms": {"body": "{{ customer.first_name | default: 'Hi' }}, this week's picks are in: "
                                      "https://shop.example/picks Reply STOP to opt out."},
                      "push": {"title": "This week's picks are in", "body": "Chosen for you.",
                               "url": "https://shop.example/picks"},
                      "email": {"subject": "This week's picks are in",
                                "html": "<p>Chosen for you: <a href=\"https://shop.example/picks\">see them</a>.</p>"
                                        "<p><a href=\"https://shop.example/unsubscribe\">Unsubscribe</a></p>"},
                  }),
            _node("done", "exit", "Exit", 40, 400),
        ],
        "edges": [_edge("entry", "out", "best_hour"), _edge("best_hour", "out", "picks"), _edge("picks", "out", "done")],
    }


def _create(name: str, graph: dict, *, live: bool, **fields) -> Journey | None:
    if Journey.objects.filter(name=name).exists():
        return None
    validate_graph_or_raise(graph)
    graph = auto_layout(graph)  # tidy on the canvas, whatever positions the specs above carry
    journey = Journey.objects.create(name=name, status=JourneyStatus.LIVE if live else JourneyStatus.DRAFT, **fields)
    version = JourneyVersion.objects.create(
        journey=journey, number=1, graph=graph, published_at=timezone.now() if live else None
    )
    if live:
        journey.live_version = version
        journey.event_names = sorted(event_names(graph) | ({journey.goal_event} if journey.goal_event else set()))
        journey.save(update_fields=["live_version", "event_names"])
    return journey


@transaction.atomic
def seed_journeys() -> list[str]:
    """Create the demo journeys that do not exist yet; returns their names."""
    created = []
    lapsed = Segment.objects.filter(name="Lapsed app users").first()
    specs = [
        ("Cart recovery", cart_recovery(), True, dict(
            description="SMS 45 minutes after an abandoned cart, a push the next morning, until they order.",
            priority=8, tags=["lifecycle"], goal_event="Order Completed", goal_window_seconds=7 * 86400,
            reentry=ReentryPolicy.COOLDOWN, reentry_cooldown_seconds=3 * 86400, holdout_percent=10)),
        ("Welcome series", welcome_series(), False, dict(
            description="Welcome email, then tips on the channel each new customer can receive.",
            priority=6, tags=["onboarding"], goal_event="Order Completed", goal_window_seconds=14 * 86400)),
        ("Weekly picks", weekly_picks(), False, dict(
            description="This week's picks at each customer's best hour, on the channel they engage with most.",
            priority=5, tags=["merchandising"], goal_event="Order Completed", goal_window_seconds=7 * 86400)),
    ]
    if lapsed is not None:
        specs.append(("Win back lapsed app users", win_back(lapsed.pk), True, dict(
            description="A push to app users gone quiet for 30 days; an email offer if they ignore it.",
            priority=4, tags=["retention"], goal_event="App Opened", goal_window_seconds=7 * 86400,
            goal_value_property="", holdout_percent=10)))
    for name, graph, live, fields in specs:
        if _create(name, graph, live=live, **fields):
            created.append(name)
    return created
