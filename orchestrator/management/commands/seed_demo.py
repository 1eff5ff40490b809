"""Fill an empty workspace with a simulated shop's customers, events and messages.

The data is deterministic: the same ``--seed``, ``--customers``, ``--days`` and ``--now``
give the same rows. ``--now`` (ISO 8601) is the end of the simulated window; without it
the window ends at the start of the current UTC day, so runs on the same day agree.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from channels_app.models import Message, MessageTransition
from customers.models import (
    Consent,
    ConsentChange,
    ContactPoint,
    Customer,
    Event,
    ProfileUpdate,
    Segment,
    SuppressedIdentifier,
)
from customers.segments import do_save_segment
from orchestrator.dashboards.rollups import do_rebuild_rollups
from orchestrator.demo import generate_population
from orchestrator.demo_enrollments import load_plans
from orchestrator.demo_journeys import seed_journeys
from orchestrator.demo_writer import SeedSummary, seed_population
from orchestrator.governor.loading import read_policy


def parse_now(value: str | None) -> datetime:
    if not value:
        return timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--now: expected an ISO 8601 date or time, got {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


WIPED = (
    MessageTransition, Message, Event, ProfileUpdate, ConsentChange, Consent, ContactPoint,
    SuppressedIdentifier, Customer,
)


# Saved audiences a demo workspace starts with (definitions, not people: --reset keeps them).
DEMO_SEGMENTS = [
    (
        "Loyal buyers",
        "Three or more orders in the last six months.",
        {"match": "all", "conditions": [
            {"type": "event", "event": "Order Completed", "aggregate": "count", "operator": "gte", "value": 3, "within_days": 180},
        ]},
    ),
    (
        "Cart abandoners this week",
        "Abandoned a cart in the last 7 days and have not ordered since.",
        {"match": "all", "conditions": [
            {"type": "event", "event": "Cart Abandoned", "aggregate": "last_occurred", "operator": "within_days", "value": 7},
            {"type": "event", "event": "Order Completed", "aggregate": "count", "operator": "eq", "value": 0, "within_days": 7},
        ]},
    ),
    (
        "SMS marketing audience",
        "Opted in to SMS marketing and reachable by SMS.",
        {"match": "all", "conditions": [
            {"type": "consent", "channel": "sms", "category": "marketing", "status": "opted_in"},
            {"type": "reachable", "channel": "sms"},
        ]},
    ),
    (
        "Lapsed app users",
        "Have a push device but have not opened the app in 30 days.",
        {"match": "all", "conditions": [
            {"type": "event", "event": "App Opened", "aggregate": "last_occurred", "operator": "not_within_days", "value": 30},
            {"type": "reachable", "channel": "push"},
        ]},
    ),
]


def seed_segments() -> None:
    for name, description, definition in DEMO_SEGMENTS:
        existing = Segment.objects.filter(name=name).first()
        do_save_segment(existing, name=name, description=description, definition=definition)


def wipe_workspace() -> None:
    """Delete every customer and what hangs off them, and the suppression list.

    Tables are emptied children first with one DELETE each; a table that other apps'
    rows point at goes through Django's collector instead, so their cascades still run.
    """
    for model in WIPED:
        foreign = [rel for rel in model._meta.related_objects if rel.related_model not in WIPED]
        queryset = model.objects.all()
        if foreign:
            queryset.delete()
        else:
            queryset._raw_delete(queryset.db)


class Command(BaseCommand):
    help = "Seed a demo workspace: simulated customers, consent, events and a cross-channel message history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=3000, help="How many customers (default 3000).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed; the same seed gives the same data.")
        parser.add_argument("--days", type=int, default=180, help="Days of history (default 180).")
        parser.add_argument("--now", help="End of the simulated window (ISO 8601); default: start of today, UTC.")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--reset", action="store_true", help="Delete all customers, events, messages and suppressions first.")
        group.add_argument("--if-empty", action="store_true", help="Do nothing (quietly) when customers already exist.")

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            # Demo people in a real workspace would receive real messages, and --reset
            # would wipe real customers and the suppression list.
            raise CommandError("seed_demo refuses to run with CHORUS_PRODUCTION set: demo data never belongs in production.")
        if options["customers"] < 1 or options["days"] < 7:
            raise CommandError("--customers must be at least 1 and --days at least 7")
        now = parse_now(options["now"])
        started = time.monotonic()
        with transaction.atomic():
            if Customer.objects.exists():
                if options["if_empty"]:
                    return
                if not options["reset"]:
                    raise CommandError("Customers already exist; use --reset to replace them with demo data.")
                wipe_workspace()
            # Definitions first: the live journeys' past enrollments are drawn with the history.
            seed_segments()
            journeys = seed_journeys()
            population = generate_population(options["customers"], options["seed"])
            summary = seed_population(population, seed=options["seed"], now=now, days=options["days"], plans=load_plans(),
                                      policy=read_policy())
            do_rebuild_rollups()  # the history was COPYed around the ledger's listeners
        self.report(summary, now, time.monotonic() - started)
        if journeys:
            self.stdout.write(f"  journeys:    {', '.join(journeys)}")

    def report(self, summary: SeedSummary, now: datetime, seconds: float) -> None:
        out = self.stdout
        out.write(self.style.SUCCESS(f"Seeded {summary.customers} customers in {seconds:.1f}s (window ends {now:%Y-%m-%d %H:%M} UTC)."))
        out.write(f"  events:      {summary.events}")
        out.write(f"  messages:    {sum(summary.messages_by_channel.values())} "
                  + ", ".join(f"{ch} {n}" for ch, n in sorted(summary.messages_by_channel.items())))
        out.write(f"  transitions: {summary.transitions}")
        if summary.enrollments_by_journey:
            out.write("  enrollments: " + ", ".join(f"{name} {n}" for name, n in sorted(summary.enrollments_by_journey.items())))
        if summary.launch_customer_pk is not None:
            path = reverse("customers:profile", args=[summary.launch_customer_pk])
            out.write(f"  launch-story customer (Maya Chen, cust_maya): {path}")
