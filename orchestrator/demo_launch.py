"""The launch-story customer's history, scripted rather than drawn, so the demo always shows it.

Maya Chen (``cust_maya``, New York): three purchases in the last six months, mobile-first
(an Android device and a phone), clicks SMS 4× as often as email (5 of 10 against 3 of
24), browses around 21:00, and most recently abandoned a cart holding the $280 Silk Wrap
Midi Dress at 21:14 on a Tuesday, her time. What she clicked was styling advice, never a
discount. Nothing happens after that abandonment: the
journey that reacts to it is what the demo shows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from customers.enums import PushPlatform
from orchestrator import demo_content as copy
from orchestrator.demo import EMAIL, IN_APP, PUSH, SMS
from orchestrator.demo_history import MARKETING, Outcome, local_to_utc, zone

if TYPE_CHECKING:
    from orchestrator.demo_history import PersonHistory

TUESDAY = 1
ABANDON_HOUR, ABANDON_MINUTE = 21, 14
# Marketing messages per channel: (delivered only, opened, clicked); SMS opens are not seen.
SCRIPT = {EMAIL: (15, 6, 3), SMS: (5, 0, 5), PUSH: (5, 3, 4), IN_APP: (2, 3, 1)}
SEND_HOURS = {EMAIL: (9, 10, 11, 12), SMS: (18, 19), PUSH: (18, 19, 20), IN_APP: (12, 19)}


def launch_abandon_time(now: datetime, tz: str = "America/New_York") -> datetime:
    """The latest Tuesday 21:14 (local) at least ten minutes before ``now``, in UTC."""
    local = now.astimezone(zone(tz))
    for back in range(0, 15):
        day = local - timedelta(days=back)
        if day.weekday() != TUESDAY:
            continue
        at = local_to_utc(day, ABANDON_HOUR, ABANDON_MINUTE, tz)
        if at <= now - timedelta(minutes=10):
            return at
    raise AssertionError("unreachable: a Tuesday occurs every week")


def simulate_launch_customer(p: PersonHistory) -> None:
    p.devices.append((PushPlatform.ANDROID, "Pixel 8"))
    abandoned_at = launch_abandon_time(p.now, p.sim.timezone)
    last_session = abandoned_at - timedelta(minutes=22)
    for at in p.session_times(until=last_session - timedelta(days=1)):
        p.session(at, allow_orders=False, allow_carts=False)
    order_days = _order_days(p, abandoned_at)
    _organic_order(p, abandoned_at - timedelta(days=order_days[0]))
    _converting_message(p, SMS, "stylist-pick-sms", abandoned_at - timedelta(days=order_days[1]), [copy.CATALOG[2], copy.CATALOG[18]])
    _converting_message(p, PUSH, "styled-for-you-push", abandoned_at - timedelta(days=order_days[2]), [copy.CATALOG[17]])
    _marketing_history(p, last_session - timedelta(days=1))
    _abandoned_cart(p, last_session, abandoned_at)


def _order_days(p: PersonHistory, abandoned_at: datetime) -> list[int]:
    """Days before the abandonment of her three orders, inside the window and 180 days."""
    span = (abandoned_at - p.active_from).days
    horizon = max(6, min(span, 170))
    return [max(5 - i * 2, round(horizon * share)) for i, share in enumerate((0.82, 0.48, 0.16))]


def _evening(p: PersonHistory, day: datetime, hour: int, minute: int) -> datetime:
    return local_to_utc(day, hour, minute, p.sim.timezone)


def _organic_order(p: PersonHistory, day: datetime) -> None:
    t = p.event("App Opened", _evening(p, day, 20, 47), {"platform": PushPlatform.ANDROID})
    products = [copy.CATALOG[1], copy.CATALOG[16]]
    for product in products:
        t = p.event("Product Viewed", t + timedelta(minutes=3), {**product.as_item(), "currency": "USD"})
    cart_id = f"cart_{p.rng.getrandbits(48):012x}"
    for product in products:
        t = p.event("Added to Cart", t + timedelta(minutes=2), {"cart_id": cart_id, **product.as_item(), "currency": "USD"})
    value = sum(product.price for product in products)
    items = [product.as_item() for product in products]
    t = p.event("Checkout Started", t + timedelta(minutes=3), {"cart_id": cart_id, "value": value, "currency": "USD", "products": items})
    p.order(t + timedelta(minutes=4), products)


def _converting_message(p: PersonHistory, channel: str, template: str, day: datetime, products: list) -> None:
    queued = _evening(p, day, 19, 30)
    content = _content(p, channel, template)
    clicked = _evening(p, day, 20, 52)
    converted = clicked + timedelta(minutes=33)
    outcome = _delivered(queued)
    if channel != SMS:
        outcome.times["opened"] = clicked - timedelta(seconds=20)
    outcome.times.update(clicked=clicked, converted=converted)
    outcome.final = "converted"
    p.message(channel, MARKETING, template, content, queued, outcome)
    p.event("App Opened", clicked + timedelta(seconds=2), {"platform": PushPlatform.ANDROID, "utm_source": "chorus", "utm_medium": channel})
    p.order(converted, products, {"utm_source": "chorus", "utm_medium": channel, "utm_campaign": template})


def _marketing_history(p: PersonHistory, until: datetime) -> None:
    """Her other marketing messages, with exactly the engagement counts of SCRIPT."""
    rng = p.rng
    since = p.active_from + timedelta(days=1)
    for channel, (plain, opened, clicked) in SCRIPT.items():
        already = 1 if channel in (SMS, PUSH) else 0  # the converting message counts as a click
        fates = ["delivered"] * plain + ["opened"] * opened + ["clicked"] * (clicked - already)
        rng.shuffle(fates)
        for fate in fates:
            for _ in range(50):  # a day the governor would have let it go (caps, spacing)
                day = since + (until - since) * rng.random()
                queued = _evening(p, day, rng.choice(SEND_HOURS[channel]), rng.choice((0, 15, 30)))
                if p.governed(channel, queued) is None and not p.displaces(channel, queued):
                    break
            name = rng.choice(_templates(channel, styling=fate == "clicked"))
            outcome = _delivered(queued)
            if fate != "delivered":
                seen = p.seen_at(outcome.times["delivered"], False)
                if channel != SMS:
                    outcome.times["opened"], outcome.final = seen, "opened"
                if fate == "clicked":
                    outcome.times["clicked"], outcome.final = seen + timedelta(seconds=40), "clicked"
            p.message(channel, MARKETING, name, _content(p, channel, name), queued, outcome)


def _templates(channel: str, *, styling: bool) -> list[str]:
    """She responds to styling suggestions, not to discounts: clicks go to styling copy."""
    names = [name for name, _ in copy.MARKETING[channel]]
    chosen = [name for name in names if (name in copy.STYLING) == styling]
    return chosen or names


def _abandoned_cart(p: PersonHistory, start: datetime, abandoned_at: datetime) -> None:
    dress, earrings = copy.LAUNCH_DRESS, copy.CATALOG[16]
    p.event("App Opened", start, {"platform": PushPlatform.ANDROID})
    p.event("Product Viewed", start + timedelta(minutes=1), {**dress.as_item(), "currency": "USD"})
    p.event("Product Viewed", start + timedelta(minutes=6), {**earrings.as_item(), "currency": "USD"})
    cart_id = "cart_maya_silk_wrap"
    p.event("Added to Cart", start + timedelta(minutes=12), {"cart_id": cart_id, **dress.as_item(), "currency": "USD"})
    cart = {"cart_id": cart_id, "value": dress.price, "currency": "USD", "products": [dress.as_item()]}
    p.event("Checkout Started", start + timedelta(minutes=16), cart)
    p.event("Cart Abandoned", abandoned_at, {**cart, "checkout_started": True})


def _delivered(queued: datetime) -> Outcome:
    sending = queued + timedelta(milliseconds=300)
    sent = sending + timedelta(milliseconds=700)
    return Outcome({"sending": sending, "sent": sent, "delivered": sent + timedelta(seconds=3)}, "delivered")


def _content(p: PersonHistory, channel: str, template: str) -> dict:
    content = dict(copy.MARKETING[channel])[template]
    url = f"{copy.SHOP_URL}/c/{template}?utm_source=chorus&utm_medium={channel}&utm_campaign={template}"
    return copy.render(content, p.sim.first_name, url)
