"""The observable history of a simulated population: profiles, consent, events, messages.

Everything is drawn from the hidden truth in ``orchestrator.demo`` with one
``random.Random`` per person (seeded from the run's seed and the person's index), so
the same seed, ``now`` and ``days`` always give the same rows, whatever the size of
the population. Rows are built in memory as unsaved model instances; ``write`` saves
them with ``bulk_create``. Message rows are written as the ledger would leave them:
``status`` is the furthest state reached, every state has its timestamp and a
MessageTransition.
"""

from __future__ import annotations

import base64
import random
import uuid
from bisect import insort
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from channels_app.models import MessageStatus
from channels_app.reachability import consent_refusal
from customers.consent import addresses_for, identifiers_for
from customers.enums import (
    BLOCKING_CONSENT,
    CHANNEL_WIDE_CONSENT,
    Category,
    ConsentStatus,
    PushPlatform,
)
from customers.models import (
    Consent,
    ConsentChange,
    ContactPoint,
    Customer,
    ProfileUpdate,
    SuppressedIdentifier,
    hash_identifier,
)
from orchestrator import demo_content as copy
from orchestrator.demo import EMAIL, IN_APP, PUSH, SMS, SimCustomer
from orchestrator.demo_enrollments import (
    ENROL_DAYS,
    Happening,
    JourneyPlan,
    Trigger,
    triggers_for,
    walk_enrollments,
)
from orchestrator.governor.policy import (
    MARKETING_OPT_IN_DEFAULT,
    Candidate,
    Decision,
    PastMessage,
    Policy,
    Verdict,
)
from orchestrator.governor.rules import history_window, judge

SOURCE = "demo"
MARKETING = str(Category.MARKETING.value)
TRANSACTIONAL = str(Category.TRANSACTIONAL.value)
# Order of the happy path; a message's status is the furthest one it reached.
HAPPY_PATH = ("queued", "sending", "sent", "delivered", "opened", "clicked", "converted")
STATUSES = frozenset(MessageStatus.values)
ERROR_STATUSES = frozenset({"failed", "bounced", "unknown"})
OFF_HOURS_FACTOR = 0.5  # engagement when a message lands outside the person's active hours
RETURN_RATE = 0.1  # × purchase propensity: an abandoned cart ordered later without any nudge


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_to_utc(day: datetime, hour: int, minute: int, tz: str) -> datetime:
    local_day = day.astimezone(zone(tz)).date()
    return datetime.combine(local_day, time(hour, minute), tzinfo=zone(tz)).astimezone(UTC)


@dataclass(frozen=True)
class Campaign:
    channel: str
    template_name: str
    content: dict
    at: datetime  # a UTC day; sent at ``hour:minute`` in each recipient's local time
    hour: int
    minute: int
    audience_share: float


@dataclass
class Outcome:
    """Times of the states a message reached beyond ``queued`` (None: not reached)."""

    times: dict[str, datetime]
    final: str
    error: str = ""


@dataclass
class Rows:
    customers: list[Customer] = field(default_factory=list)
    contact_points: list[ContactPoint] = field(default_factory=list)
    consents: list[Consent] = field(default_factory=list)
    consent_changes: list[ConsentChange] = field(default_factory=list)
    suppressions: dict[tuple[str, str], SuppressedIdentifier] = field(default_factory=dict)
    # (customer, name, properties, occurred_at, received_at, source, source_message_id)
    events: list[tuple] = field(default_factory=list)
    profile_updates: list[ProfileUpdate] = field(default_factory=list)
    # (message columns, [(from_status, to_status, at, detail)…]); "customer" is the instance.
    messages: list[tuple[dict, list[tuple]]] = field(default_factory=list)
    # Journey enrollments (``demo_enrollments.Walk.record``), written after events and messages.
    enrollments: list[dict] = field(default_factory=list)
    # Governor verdicts on the history's marketing sends (campaigns, reminders, journey
    # sends): (GovernorVerdict columns, the suppressed message's key or None); "customer"
    # is the instance.
    verdicts: list[tuple[dict, str | None]] = field(default_factory=list)


def build_campaigns(seed: int, start: datetime, days: int) -> list[Campaign]:
    """The shop's marketing calendar over the window: who gets what is decided per person."""
    rng = random.Random(f"chorus-demo:{seed}:campaigns")
    cadence = {EMAIL: (9, 0.55), SMS: (14, 0.6), PUSH: (11, 0.55), IN_APP: (14, 0.6)}
    campaigns: list[Campaign] = []
    for channel, (every, share) in cadence.items():
        for day in range(rng.randrange(every), days, every):
            name, content = rng.choice(copy.MARKETING[channel])
            hour = rng.choice((8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 21))
            at = start + timedelta(days=day)
            campaigns.append(Campaign(channel, name, content, at, hour, rng.choice((0, 15, 30)), share))
    campaigns.sort(key=lambda c: (c.at, c.channel))
    return campaigns


class Simulator:
    """Builds one person's rows at a time. ``now`` is the end of the simulated window."""

    def __init__(
        self, seed: int, now: datetime, days: int, plans: dict[str, list[JourneyPlan]] | None = None,
        policy: Policy | None = None,
    ):
        self.seed, self.now, self.days = seed, now, days
        # The workspace's frequency policy: the history's marketing sends pass it as the
        # governor would have judged them (None or an empty policy: nothing is held back).
        self.policy = policy if policy is not None and policy.restricts_anything else None
        self.start = now - timedelta(days=days)
        # Live journeys by trigger event: their triggers in the last ENROL_DAYS enrol people.
        self.plans = plans or {}
        self.enrol_from = max(self.start, now - timedelta(days=ENROL_DAYS))
        self.campaigns = build_campaigns(seed, self.start, days)
        self.message_n = self.event_n = self.profile_n = 0

    # --- one person ---------------------------------------------------------------
    def simulate(self, sim: SimCustomer, rows: Rows) -> Customer:
        rng = random.Random(f"chorus-demo:{self.seed}:{sim.index}:history")
        person = PersonHistory(self, sim, rng, rows)
        if sim.index == 0:
            # Imported here: the launch script builds on this module.
            from orchestrator.demo_launch import simulate_launch_customer

            simulate_launch_customer(person)
        else:
            person.simulate()
        return person.finish()

    def next_message_key(self) -> str:
        self.message_n += 1
        return f"demo:{self.seed}:{self.message_n}"

    def next_profile_id(self) -> str:
        self.profile_n += 1
        return f"demo:{self.seed}:p{self.profile_n}"

    def next_event_id(self) -> str:
        self.event_n += 1
        return f"demo:{self.seed}:e{self.event_n}"


class PersonHistory:
    """One person's observable history, drawn with their own random stream."""

    def __init__(self, run: Simulator, sim: SimCustomer, rng: random.Random, rows: Rows):
        self.run, self.sim, self.rng, self.rows = run, sim, rng, rows
        self.now = run.now
        self.signup = self.now - timedelta(days=sim.signup_days_ago, seconds=rng.randrange(86400))
        self.active_from = max(self.signup, run.start)
        self.tz = zone(sim.timezone)
        self.customer = self._customer()
        self.last_seen = self.signup
        # channel -> (status, at) of a marketing opt-out during or before the window.
        self.opt_outs: dict[str, tuple[str, datetime]] = {}
        self.bounce_planned: datetime | None = None
        self.bounced_at: datetime | None = None  # when an email actually bounced
        self.devices: list[tuple[str, str]] = []  # (platform, label)
        self.happenings: list[Happening] = []  # their events, for journey waits and goals
        self.triggers: list[Trigger] = []  # journey triggers, walked once the history is drawn
        self.received: list[PastMessage] = []  # what the governor counts, as drawn so far
        # Campaign and reminder sends that went: settle_governor judges them again.
        self.gated: list[tuple[PastMessage, dict, list[tuple]]] = []

    def _customer(self) -> Customer:
        sim = self.sim
        traits = {
            "first_name": sim.first_name,
            "last_name": sim.last_name,
            "plan": sim.plan,
            "city": sim.city,
            "country": sim.country,
            "loyalty_tier": sim.loyalty_tier,
            "signup_date": self.signup.date().isoformat(),
            "preferred_device": "mobile" if sim.mobile_first else "desktop",
        }
        return Customer(
            external_id=sim.external_id,
            email=sim.email,
            phone=sim.phone,
            timezone=sim.timezone,
            locale=sim.locale,
            traits=traits,
            first_seen_at=self.signup,
            last_seen_at=self.signup,
        )

    # --- the whole history ----------------------------------------------------------
    def simulate(self) -> None:
        self.plan_opt_outs()
        for session_at in self.session_times():
            self.session(session_at, allow_orders=True)
        for campaign in self.run.campaigns:
            self.campaign_message(campaign)
        walk_enrollments(self)
        self.settle_governor()

    def finish(self) -> Customer:
        self.customer.last_seen_at = self.last_seen
        self.rows.customers.append(self.customer)
        self.identify()
        self.contact_points()
        self.consents()
        return self.customer

    def identify(self) -> None:
        """The identify call the shop made at signup."""
        c = self.customer
        changes = {**c.traits, "email": c.email, "timezone": c.timezone, "locale": c.locale}
        if c.phone:
            changes["phone"] = c.phone
        self.rows.profile_updates.append(
            ProfileUpdate(
                customer=c, changes=changes, occurred_at=self.signup, received_at=self.signup + timedelta(seconds=1),
                source=SOURCE, source_message_id=self.run.next_profile_id(),
            )
        )

    # --- consent ---------------------------------------------------------------------
    def plan_opt_outs(self) -> None:
        rng = self.rng
        for channel in self.sim.reachable_channels:
            preferred = channel == self.sim.preferred_channel
            share = {EMAIL: 0.07, SMS: 0.07, PUSH: 0.06, IN_APP: 0.0}[channel] * (0.25 if preferred else 1.0)
            # An SMS opt-out is a STOP reply: it ends transactional texts too.
            status = {EMAIL: ConsentStatus.UNSUBSCRIBED, SMS: ConsentStatus.STOPPED}.get(channel, ConsentStatus.OPTED_OUT)
            if channel == EMAIL and rng.random() < 0.004:
                status, share = ConsentStatus.COMPLAINED, 1.0
            if rng.random() < share:
                self.opt_outs[channel] = (str(status), self.random_time(self.signup))
        if rng.random() < 0.015:
            self.bounce_planned = self.random_time(self.active_from)

    def blocked(self, channel: str, category: str, at: datetime) -> bool:
        return self.status_at(channel, category, at) != ConsentStatus.OPTED_IN

    def status_at(self, channel: str, category: str, at: datetime) -> str:
        """The consent on the pair at a moment: every demo customer opted in at signup."""
        if channel == EMAIL and self.bounced_at is not None and at >= self.bounced_at:
            return ConsentStatus.BOUNCED
        opt_out = self.opt_outs.get(channel)
        if opt_out is not None and _opt_out_covers(opt_out[0], category) and at >= opt_out[1]:
            return opt_out[0]
        return ConsentStatus.OPTED_IN

    def consents(self) -> None:
        sources = {
            EMAIL: "signup form",
            SMS: "checkout SMS opt-in",
            PUSH: "app permission prompt" if self.sim.has_app else "browser permission prompt",
            IN_APP: "app install",
        }
        for channel in self.sim.reachable_channels:
            for category in (MARKETING, TRANSACTIONAL):
                self.consent(channel, category, sources[channel])

    def consent(self, channel: str, category: str, source: str) -> None:
        self.change(channel, category, "", ConsentStatus.OPTED_IN, source, self.signup)
        status, changed_at, source_now = str(ConsentStatus.OPTED_IN), self.signup, source
        opt_out = self.opt_outs.get(channel)
        if channel == EMAIL and self.bounced_at is not None:
            status, changed_at, source_now = str(ConsentStatus.BOUNCED), self.bounced_at, "hard bounce (550 5.1.1)"
        elif opt_out is not None and _opt_out_covers(opt_out[0], category):
            status, changed_at = opt_out
            source_now = {EMAIL: "unsubscribe link", SMS: "STOP reply"}.get(channel, "notification settings")
            if status == ConsentStatus.COMPLAINED:
                source_now = "spam complaint (feedback loop)"
        if status != ConsentStatus.OPTED_IN:
            self.change(channel, category, ConsentStatus.OPTED_IN, status, source_now, changed_at)
        self.rows.consents.append(
            Consent(customer=self.customer, channel=channel, category=category, status=status, source=source_now, changed_at=changed_at)
        )
        if status in BLOCKING_CONSENT and (category == MARKETING or status in CHANNEL_WIDE_CONSENT):
            self.suppress(channel, status, source_now, changed_at)

    def change(self, channel, category, previous, status, source, at) -> None:
        self.rows.consent_changes.append(
            ConsentChange(
                customer=self.customer, channel=channel, category=category, previous_status=previous,
                status=status, source=source, changed_at=at,
            )
        )

    def suppress(self, channel: str, status: str, reason: str, at: datetime) -> None:
        # As customers.consent does: a bounce suppresses the address, not the person.
        pairs = addresses_for if status == ConsentStatus.BOUNCED else identifiers_for
        for kind, value in pairs(self.customer, channel):
            key = (hash_identifier(kind, value), channel)
            self.rows.suppressions.setdefault(
                key,
                SuppressedIdentifier(identifier_hash=key[0], kind=kind, channel=channel, status=status, reason=reason, created_at=at),
            )

    # --- contact points ----------------------------------------------------------------
    def contact_points(self) -> None:
        sim, add = self.sim, self.rows.contact_points.append
        email = ContactPoint(customer=self.customer, channel=EMAIL, address=sim.email, label="Personal email")
        if self.bounced_at is not None:
            email.enabled = False
            email.last_failure_at = self.bounced_at
            email.last_failure_reason = "550 5.1.1 The email account that you tried to reach does not exist"
        add(email)
        if sim.phone:
            add(ContactPoint(customer=self.customer, channel=SMS, address=sim.phone, label="Mobile"))
        for platform, label in self.device_list():
            add(self.push_point(platform, label))

    def device_list(self) -> list[tuple[str, str]]:
        if not self.devices:
            if self.sim.has_app:
                ios = self.rng.random() < 0.5
                self.devices.append(
                    (PushPlatform.IOS, self.rng.choice(("iPhone 15", "iPhone 14", "iPhone 16 Pro")))
                    if ios
                    else (PushPlatform.ANDROID, self.rng.choice(("Pixel 8", "Galaxy S24", "Pixel 7a")))
                )
            elif self.sim.web_push:
                self.devices.append((PushPlatform.WEB, self.rng.choice(("Chrome on macOS", "Firefox on Windows", "Edge on Windows"))))
        return self.devices

    def push_point(self, platform: str, label: str) -> ContactPoint:
        rng = self.rng
        if platform == PushPlatform.WEB:
            endpoint = "https://fcm.googleapis.com/fcm/send/" if "Firefox" not in label else "https://updates.push.services.mozilla.com/wpush/v2/"
            keys = {"p256dh": _b64(rng, 65, first=b"\x04"), "auth": _b64(rng, 16)}
            return ContactPoint(customer=self.customer, channel=PUSH, address=endpoint + _b64(rng, 96), platform=platform, keys=keys, label=label)
        token = f"{_b64(rng, 16)}:APA91b{_b64(rng, 102)}"
        return ContactPoint(customer=self.customer, channel=PUSH, address=token, platform=platform, label=label)

    # --- events ------------------------------------------------------------------------
    def random_time(self, since: datetime) -> datetime:
        span = max(1.0, (self.now - since).total_seconds())
        return since + timedelta(seconds=self.rng.uniform(0, span))

    def session_times(self, until: datetime | None = None) -> list[datetime]:
        """Session starts, a Poisson process over the window, mostly in active hours."""
        rng, sim = self.rng, self.sim
        until = until or self.now
        rate_per_day = sim.sessions_per_week / 7
        times: list[datetime] = []
        day = self.active_from
        while True:
            day += timedelta(days=rng.expovariate(rate_per_day))
            if day >= until:
                return times
            hour = rng.choice(sim.active_hours) if rng.random() < 0.8 else rng.randrange(8, 24)
            at = local_to_utc(day, hour, rng.randrange(60), sim.timezone)
            if self.active_from <= at < until:
                times.append(at)

    def event(self, name: str, at: datetime, properties: dict) -> datetime:
        key = self.run.next_event_id()
        self.rows.events.append((self.customer, name, properties, at, at + timedelta(seconds=1), SOURCE, key))
        self.last_seen = max(self.last_seen, at)
        happening = Happening(name, at, key, properties)
        self.happenings.append(happening)
        self.triggers.extend(triggers_for(self, happening))
        return at

    def open_app_or_site(self, at: datetime, properties: dict | None = None) -> datetime:
        props = dict(properties or {})
        if self.sim.has_app and self.rng.random() < (0.85 if self.sim.mobile_first else 0.5):
            platform = self.device_list()[0][0]
            return self.event("App Opened", at, {"platform": platform, **props})
        return self.event("Session Started", at, {"platform": "web", **props})

    def session(self, at: datetime, *, allow_orders: bool, allow_carts: bool = True, properties: dict | None = None) -> None:
        rng = self.rng
        t = self.open_app_or_site(at, properties)
        viewed = []
        for _ in range(1 + min(3, int(rng.expovariate(1.3)))):
            t += timedelta(seconds=rng.randrange(20, 240))
            product = rng.choice(copy.CATALOG)
            viewed.append(product)
            self.event("Product Viewed", t, {**product.as_item(), "currency": "USD"})
        if allow_carts and rng.random() < 0.22:
            self.cart(t, [rng.choice(viewed)], allow_orders=allow_orders)

    def cart(self, t: datetime, products: list, *, allow_orders: bool) -> datetime:
        rng = self.rng
        cart_id = f"cart_{rng.getrandbits(48):012x}"
        for product in products:
            t += timedelta(seconds=rng.randrange(30, 180))
            self.event("Added to Cart", t, {"cart_id": cart_id, **product.as_item(), "currency": "USD"})
        value = round(sum(p.price for p in products), 2)
        items = [p.as_item() for p in products]
        checkout = rng.random() < 0.55
        if checkout:
            t += timedelta(seconds=rng.randrange(60, 300))
            self.event("Checkout Started", t, {"cart_id": cart_id, "value": value, "currency": "USD", "products": items})
        if checkout and allow_orders and rng.random() < self.sim.purchase_propensity:
            return self.order(t + timedelta(seconds=rng.randrange(60, 400)), products)
        t += timedelta(minutes=rng.randrange(10, 40))
        if t < self.now:
            enrolled = len(self.triggers)
            self.event("Cart Abandoned", t, {"cart_id": cart_id, "value": value, "currency": "USD", "products": items, "checkout_started": checkout})
            self.come_back_for(t, products)
            # A cart a live journey picks up gets the journey's reminders, not the old one-off.
            if rng.random() < 0.5 and len(self.triggers) == enrolled:
                self.cart_reminder(t, products[0])
        return t

    def come_back_for(self, abandoned_at: datetime, products: list) -> None:
        """Some come back and order the cart on their own within days, reminded or not: the
        base rate a journey's control group shows."""
        # A stream of its own: the rest of the person's history stays as it was drawn.
        rng = random.Random(f"chorus-demo:{self.run.seed}:{self.sim.index}:return:{abandoned_at.isoformat()}")
        if rng.random() >= RETURN_RATE * self.sim.purchase_propensity:
            return
        at = abandoned_at + timedelta(hours=1 + rng.expovariate(1 / 40))
        if at < self.now:
            history_rng, self.rng = self.rng, rng
            self.order(at, products)
            self.rng = history_rng

    def order(self, at: datetime, products: list, extra: dict | None = None) -> datetime:
        rng = self.rng
        order_id = f"ord_{rng.getrandbits(40):010x}"
        subtotal = round(sum(p.price for p in products), 2)
        shipping = 0.0 if subtotal >= 150 else 9.95
        properties = {
            "order_id": order_id,
            "revenue": subtotal,
            "shipping": shipping,
            "total": round(subtotal + shipping, 2),
            "currency": "USD",
            "products": [p.as_item() for p in products],
            **(extra or {}),
        }
        self.event("Order Completed", at, properties)
        self.transactional(EMAIL, "order-confirmation", copy.order_confirmation(self.sim.first_name, order_id, properties["total"]), at + timedelta(seconds=20))
        channel = PUSH if PUSH in self.sim.reachable_channels else (SMS if self.sim.phone else EMAIL)
        shipped = local_to_utc(at + timedelta(days=rng.choice((1, 1, 2))), rng.randrange(10, 17), rng.randrange(60), self.sim.timezone)
        self.transactional(channel, "order-shipped", copy.shipping_notice(channel, self.sim.first_name, order_id), shipped)
        return at

    # --- messages ------------------------------------------------------------------------
    def campaign_message(self, campaign: Campaign) -> None:
        sim, rng = self.sim, self.rng
        if campaign.channel not in sim.reachable_channels or rng.random() >= campaign.audience_share:
            return
        queued = local_to_utc(campaign.at, campaign.hour, campaign.minute, sim.timezone)
        queued += timedelta(seconds=rng.randrange(300))
        if not self.active_from <= queued < self.now:
            return
        if self.blocked(campaign.channel, MARKETING, queued):
            if rng.random() < 0.2:  # most audiences exclude them; a few sends reach the governor
                self.message(campaign.channel, MARKETING, campaign.template_name, self.content(campaign), queued, self.suppressed(campaign.channel, queued))
            return
        queued = self.gate(campaign.channel, queued, campaign.template_name, lambda: self.content(campaign))
        if queued is None:
            return
        outcome = self.delivery(campaign.channel, queued)
        if outcome.final == "delivered":
            self.engage(campaign.channel, outcome, 1.0)
        self.sent_gated(self.message(campaign.channel, MARKETING, campaign.template_name, self.content(campaign), queued, outcome))

    def sent_gated(self, past: PastMessage | None) -> None:
        if past is not None:
            self.gated.append((past, *self.rows.messages[-1]))

    def gate(self, channel: str, queued: datetime, template: str, content: Callable[[], dict]) -> datetime | None:
        """A campaign or reminder send (outside journeys) through the governor, as
        ``dispatch.decide`` with on-cap "skip": held by quiet hours alone, it goes when they
        end (None if that is past the window); held by a cap or spacing, it is suppressed
        (None). Returns when it goes."""
        verdict = self.governed(channel, queued)
        if verdict is None:
            return queued
        if verdict.decision == Decision.DEFER and verdict.always_defers:
            self.verdict(channel, queued, verdict, Decision.DEFER, None)
            return verdict.until if verdict.until < self.now else None
        outcome = Outcome({"suppressed": queued + timedelta(milliseconds=40)}, "suppressed", verdict.reason)
        self.message(channel, MARKETING, template, content(), queued, outcome)
        self.verdict(channel, queued, verdict, Decision.SUPPRESS, self.rows.messages[-1][0]["idempotency_key"])
        return None

    def displaces(self, channel: str, at: datetime) -> bool:
        """Whether a marketing send at ``at`` would make the governor hold back one this
        person was already sent later (drawn earlier: histories are not drawn in time order)."""
        policy = self.run.policy
        if policy is None:
            return False
        mine = PastMessage(channel, MARKETING, at)
        later = [m for m in self.received if m.at > at and m.category == MARKETING]
        return any(
            not judge(policy, Candidate(m.channel, m.category, m.at, self.sim.timezone),
                      sorted([*(h for h in self.received if h is not m), mine], key=lambda h: h.at)).allowed
            for m in later if m.at - at <= history_window(policy)
        )

    def settle_governor(self) -> None:
        """Campaign and reminder sends were drawn before the journey sends that came before
        some of them. Judged again in time order against everything, one the governor
        would have held back then is suppressed, as ``gate`` does."""
        policy = self.run.policy
        if policy is None:
            return
        for past, message, transitions in sorted(self.gated, key=lambda row: row[0].at):
            others = [m for m in self.received if m is not past]
            verdict = judge(policy, Candidate(past.channel, MARKETING, past.at, self.sim.timezone), others)
            if verdict.allowed:
                continue
            self.received = others
            _suppress(message, transitions, verdict.reason)
            self.verdict(past.channel, past.at, verdict, Decision.SUPPRESS, message["idempotency_key"])

    def governed(self, channel: str, at: datetime) -> Verdict | None:
        """The governor's verdict on a marketing send at ``at`` (the real rules, over what this
        person was sent before it); None when it may go."""
        policy = self.run.policy
        if policy is None:
            return None
        verdict = judge(policy, Candidate(channel, MARKETING, at, self.sim.timezone), self.received)
        return None if verdict.allowed else verdict

    def verdict(
        self, channel: str, at: datetime, verdict: Verdict, decision: Decision, message_key: str | None,
        journey_id: int | None = None, node_id: str = "",
    ) -> None:
        self.rows.verdicts.append(({
            "customer": self.customer, "decision": decision.value, "until": verdict.until if decision == Decision.DEFER else None,
            "rule": verdict.rule[:200], "reason": verdict.reason[:500], "counts": verdict.counts, "channel": channel,
            "category": MARKETING, "at": at, "journey_id": journey_id, "node_id": node_id,
        }, message_key))

    def content(self, campaign: Campaign) -> dict:
        url = f"{copy.SHOP_URL}/c/{campaign.template_name}?utm_source=chorus&utm_medium={campaign.channel}&utm_campaign={campaign.template_name}"
        return copy.render(campaign.content, self.sim.first_name, url)

    def cart_reminder(self, abandoned_at: datetime, product) -> None:
        rng = self.rng
        queued = abandoned_at + timedelta(minutes=rng.randrange(45, 120))
        channels = [ch for ch in self.sim.reachable_channels if ch != IN_APP and not self.blocked(ch, MARKETING, queued)]
        if not channels or queued >= self.now:
            return
        channel = rng.choice(channels)
        content = copy.cart_reminder(channel, self.sim.first_name, product)
        queued = self.gate(channel, queued, "cart-reminder", lambda: content)
        if queued is None:
            return
        outcome = self.delivery(channel, queued)
        if outcome.final == "delivered":
            self.engage(channel, outcome, 1.4)
        self.sent_gated(self.message(channel, MARKETING, "cart-reminder", content, queued, outcome))

    def transactional(self, channel: str, template: str, content: dict, queued: datetime) -> None:
        if queued >= self.now or self.blocked(channel, TRANSACTIONAL, queued):
            return
        outcome = self.delivery(channel, queued)
        if outcome.final == "delivered" and channel != SMS and self.rng.random() < 0.6:
            opened = outcome.times["delivered"] + timedelta(minutes=self.rng.randrange(1, 240))
            if opened < self.now:
                outcome.times["opened"], outcome.final = opened, "opened"
        self.message(channel, TRANSACTIONAL, template, content, queued, outcome)

    def suppressed(self, channel: str, queued: datetime) -> Outcome:
        """A blocked marketing send, with the reason the send-time rule would give."""
        statuses = {category: self.status_at(channel, category, queued) for category in (MARKETING, TRANSACTIONAL)}
        refusal = consent_refusal(channel, MARKETING, statuses, opt_in_channels=MARKETING_OPT_IN_DEFAULT)
        reason = refusal.reason if refusal else ""
        return Outcome({"suppressed": queued + timedelta(milliseconds=40)}, "suppressed", reason)

    def delivery(self, channel: str, queued: datetime) -> Outcome:
        """Queued → sending → sent → delivered, or a failure on the way."""
        rng = self.rng
        sending = queued + timedelta(milliseconds=rng.randrange(50, 900))
        sent = sending + timedelta(milliseconds=rng.randrange(80, 1500))
        times = {"sending": sending}
        if channel == EMAIL and self.bounce_planned is not None and self.bounced_at is None and queued >= self.bounce_planned:
            self.bounced_at = sent + timedelta(seconds=4)
            return Outcome({**times, "sent": sent, "bounced": self.bounced_at}, "bounced", "550 5.1.1 mailbox does not exist")
        roll = rng.random()
        if roll < 0.004:
            return Outcome({**times, "failed": sent}, "failed", "provider error 503: service unavailable")
        if channel == SMS and roll < 0.005:
            return Outcome({**times, "unknown": sending + timedelta(seconds=10)}, "unknown", "timeout after the request was sent")
        delay = timedelta(seconds=rng.randrange(1, 60 if channel == EMAIL else 8))
        return Outcome({**times, "sent": sent, "delivered": sent + delay}, "delivered")

    def engage(self, channel: str, outcome: Outcome, boost: float, *, intent: float = 1.0, products: list | None = None) -> None:
        """Opens, clicks and conversions drawn from the person's true propensities.

        ``intent`` scales the conversion after a click: a reminder of one's own cart
        (``products``, what they then order) converts more often than a campaign."""
        rng, sim = self.rng, self.sim
        truth = sim.propensities[channel]
        delivered = outcome.times["delivered"]
        in_hours = delivered.astimezone(self.tz).hour in sim.active_hours
        factor = boost * (1.0 if in_hours else OFF_HOURS_FACTOR)
        roll = rng.random()
        if roll >= truth.open * factor:
            return
        seen = self.seen_at(delivered, in_hours)
        if seen >= self.now:
            return
        if channel != SMS:  # SMS opens are not observable
            outcome.times["opened"], outcome.final = seen, "opened"
        if roll >= truth.click * factor:
            return
        clicked = seen + timedelta(seconds=rng.randrange(5, 180))
        if clicked >= self.now:
            return
        outcome.times["clicked"], outcome.final = clicked, "clicked"
        self.open_app_or_site(clicked + timedelta(seconds=2), {"utm_source": "chorus", "utm_medium": channel})
        if rng.random() < min(0.9, truth.convert * intent):
            converted = clicked + timedelta(minutes=rng.randrange(3, 90))
            if converted < self.now:
                outcome.times["converted"], outcome.final = converted, "converted"
                products = products or rng.sample(copy.CATALOG, rng.choice((1, 1, 2)))
                self.order(converted, products, {"utm_source": "chorus", "utm_medium": channel})

    def seen_at(self, delivered: datetime, in_hours: bool) -> datetime:
        """When they notice it: soon in active hours, else mostly at their next active hour."""
        rng = self.rng
        if in_hours or rng.random() < 0.3:
            return delivered + timedelta(seconds=int(rng.expovariate(1 / 900)) + 5)
        local = delivered.astimezone(self.tz)
        for ahead in range(1, 25):
            candidate = local + timedelta(hours=ahead)
            if candidate.hour in self.sim.active_hours:
                start = candidate.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
                return start + timedelta(seconds=rng.randrange(3600))
        return delivered + timedelta(hours=1)

    def message(
        self, channel: str, category: str, template: str, content: dict, queued: datetime, outcome: Outcome
    ) -> PastMessage | None:
        rng = self.rng
        message = {
            "public_id": uuid.UUID(int=rng.getrandbits(128), version=4),
            "customer": self.customer,
            "channel": channel,
            "category": category,
            "template_name": template,
            "content": content,
            "status": outcome.final,
            "provider": "outbox" if outcome.final != "suppressed" else "",
            "provider_message_id": f"outbox-{rng.getrandbits(64):016x}" if "sent" in outcome.times else "",
            "idempotency_key": self.run.next_message_key(),
            "error": outcome.error,
            "queued_at": queued,
        }
        transitions = [("", "queued", queued, "")]
        previous, last = "queued", queued
        for status, at in sorted(outcome.times.items(), key=lambda item: item[1]):
            message[f"{status}_at"] = at
            transitions.append((previous, status, at, outcome.error if status in ERROR_STATUSES else ""))
            previous, last = status, at
        if "clicked" in outcome.times:  # as the ledger does: a click implies an open
            message.setdefault("opened_at", outcome.times["clicked"])
        message["updated_at"] = last
        if previous != outcome.final or outcome.final not in STATUSES:
            raise ValueError(f"inconsistent outcome {outcome}")
        self.rows.messages.append((message, transitions))
        if "sending" not in outcome.times:
            return None
        past = PastMessage(channel, category, queued)  # it left: caps and spacing count it
        insort(self.received, past, key=lambda m: m.at)
        return past


def _suppress(message: dict, transitions: list[tuple], reason: str) -> None:
    """Rewrite a drawn message as one the governor suppressed when it was queued."""
    queued = message["queued_at"]
    suppressed = queued + timedelta(milliseconds=40)
    for status in HAPPY_PATH[1:] + tuple(ERROR_STATUSES):
        message.pop(f"{status}_at", None)
    message.update(status="suppressed", error=reason, provider="", provider_message_id="", suppressed_at=suppressed,
                   updated_at=suppressed)
    transitions[:] = [("", "queued", queued, ""), ("queued", "suppressed", suppressed, reason)]


def _opt_out_covers(status: str, category: str) -> bool:
    """An opt-out ends marketing; a STOP (the carrier-level one) ends every SMS."""
    return category == MARKETING or status in CHANNEL_WIDE_CONSENT


def _b64(rng: random.Random, size: int, first: bytes = b"") -> str:
    raw = first + rng.getrandbits(8 * (size - len(first))).to_bytes(size - len(first), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
