"""A simulated customer population with known ground truth.

``generate_population(n, seed)`` is pure (no database, no clock): it returns the same
people for the same arguments, each with the hidden truth a channel-affinity or
send-time model should recover: the channel they really prefer, their response
propensity on every channel and the hours (local time) when they are active. The demo
seeder (``orchestrator.demo_history`` + ``manage.py seed_demo``) draws their observable
history from this truth. The truth itself (best channel, click rates, active hours) is
drawn by the models' evaluation simulator (``orchestrator.intelligence.simulate.draw_truth``),
so the demo and ``bench/intelligence.py`` share one model of people; the demo adds
what only it needs (names, addresses, opens and conversions, purchases).

Person 0 is always the customer from the launch story (``launch_customer()``).
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from customers.enums import Channel
from orchestrator.intelligence.simulate import TrueProfile, draw_truth

EMAIL, SMS, PUSH, IN_APP = (str(ch.value) for ch in (Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.IN_APP))
CHANNELS: tuple[str, ...] = (EMAIL, SMS, PUSH, IN_APP)
LAUNCH_EXTERNAL_ID = "cust_maya"


@dataclass(frozen=True)
class ChannelPropensity:
    """Probabilities for one delivered marketing message, when sent in active hours.

    ``click`` is the engagement rate (clicked | delivered); ``open`` ≥ ``click`` (SMS opens
    are not observable, so for SMS open == click); ``convert`` is converted | clicked.
    """

    open: float
    click: float
    convert: float


@dataclass(frozen=True)
class SimCustomer:
    index: int
    external_id: str
    first_name: str
    last_name: str
    email: str
    phone: str  # "" when the person gave no number
    timezone: str
    locale: str
    city: str
    country: str
    plan: str
    loyalty_tier: str
    signup_days_ago: int
    mobile_first: bool
    has_app: bool  # FCM device: push + in-app
    web_push: bool  # a browser Web Push subscription
    # Hidden truth.
    preferred_channel: str
    propensities: Mapping[str, ChannelPropensity] = field(hash=False)
    active_hours: tuple[int, ...] = ()  # local hours (0-23) when they browse and read
    sessions_per_week: float = 1.0
    purchase_propensity: float = 0.5  # P(order | checkout started)

    @property
    def reachable_channels(self) -> tuple[str, ...]:
        return reachable_channels(self.phone, self.has_app, self.web_push)

    @property
    def engagement_ranking(self) -> tuple[str, ...]:
        """Reachable channels, best first by true click propensity."""
        return tuple(sorted(self.reachable_channels, key=lambda ch: -self.propensities[ch].click))


def reachable_channels(phone: str, has_app: bool, web_push: bool) -> tuple[str, ...]:
    """Channels someone can be reached on: email always, SMS with a phone, push with a device."""
    reachable = {EMAIL}
    if phone:
        reachable.add(SMS)
    if has_app or web_push:
        reachable.add(PUSH)
    if has_app:
        reachable.add(IN_APP)
    return tuple(ch for ch in CHANNELS if ch in reachable)


@dataclass(frozen=True)
class Region:
    timezone: str
    country: str
    locale: str
    cities: tuple[str, ...]
    weight: float
    names: str  # key into NAMES


REGIONS: tuple[Region, ...] = (
    Region("America/Los_Angeles", "US", "en-US", ("Los Angeles", "San Francisco", "Seattle", "Portland", "San Diego"), 0.17, "en"),
    Region("America/Chicago", "US", "en-US", ("Chicago", "Austin", "Minneapolis", "Dallas"), 0.09, "en"),
    Region("America/New_York", "US", "en-US", ("New York", "Boston", "Philadelphia", "Atlanta", "Miami"), 0.20, "en"),
    Region("America/Toronto", "CA", "en-CA", ("Toronto", "Ottawa", "Montreal"), 0.05, "en"),
    Region("America/Sao_Paulo", "BR", "pt-BR", ("São Paulo", "Rio de Janeiro", "Curitiba"), 0.07, "pt"),
    Region("Europe/London", "GB", "en-GB", ("London", "Manchester", "Bristol", "Edinburgh", "Leeds"), 0.15, "en"),
    Region("Europe/Berlin", "DE", "de-DE", ("Berlin", "Munich", "Hamburg", "Cologne"), 0.08, "de"),
    Region("Asia/Kolkata", "IN", "en-IN", ("Mumbai", "Bengaluru", "Delhi", "Pune"), 0.07, "in"),
    Region("Asia/Tokyo", "JP", "ja-JP", ("Tokyo", "Osaka", "Yokohama"), 0.05, "ja"),
    Region("Australia/Sydney", "AU", "en-AU", ("Sydney", "Melbourne", "Brisbane"), 0.07, "en"),
)

NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        ("Olivia", "Liam", "Emma", "Noah", "Ava", "Ethan", "Sophia", "Mason", "Isabella", "Lucas",
         "Mia", "James", "Amelia", "Benjamin", "Harper", "Elijah", "Evelyn", "Oliver", "Abigail",
         "Daniel", "Grace", "Henry", "Chloe", "Samuel", "Zoe", "Jack", "Nora", "Leo", "Priya",
         "Omar", "Aisha", "Mateo", "Hannah", "Theo", "Ruby", "Isaac", "Freya", "Kai", "Layla"),
        ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
         "Taylor", "Anderson", "Thomas", "Moore", "Martin", "Lee", "Thompson", "White", "Harris",
         "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Lopez", "Hill", "Green",
         "Adams", "Baker", "Nguyen", "Patel", "Campbell", "Evans", "Murphy", "O'Brien", "Kim"),
    ),
    "pt": (
        ("Ana", "João", "Beatriz", "Pedro", "Larissa", "Gabriel", "Juliana", "Rafael", "Camila",
         "Lucas", "Fernanda", "Thiago", "Mariana", "Bruno", "Letícia", "Sérgio"),
        ("Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira", "Costa", "Ferreira",
         "Almeida", "Ribeiro", "Carvalho", "Gomes"),
    ),
    "de": (
        ("Lena", "Lukas", "Mia", "Felix", "Hannah", "Jonas", "Lea", "Paul", "Emilia", "Max",
         "Clara", "Finn", "Jürgen", "Sophie"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
         "Hoffmann", "Schulz", "Koch", "Richter"),
    ),
    "in": (
        ("Aarav", "Ananya", "Vihaan", "Diya", "Arjun", "Isha", "Rohan", "Kavya", "Aditya",
         "Meera", "Karan", "Nisha", "Siddharth", "Pooja"),
        ("Sharma", "Patel", "Iyer", "Reddy", "Gupta", "Nair", "Singh", "Menon", "Rao",
         "Joshi", "Kapoor", "Das"),
    ),
    "ja": (
        ("Yui", "Haruto", "Aoi", "Sota", "Hina", "Ren", "Sakura", "Yuto", "Mei", "Riku",
         "Akari", "Kaito"),
        ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura",
         "Kobayashi", "Kato"),
    ),
}

EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
# Reserved for fiction: NANP 555-0100..0199 in any area code; Ofcom 07700 900000..900999.
US_AREA_CODES = ("212", "213", "206", "312", "305", "404", "415", "503", "512", "617",
                 "619", "646", "718", "773", "786", "917", "303", "612", "214", "323")
CA_AREA_CODES = ("416", "647", "613", "514")
PLANS = (("free", 0.68), ("plus", 0.24), ("vip", 0.08))
TIERS = (("bronze", 0.45), ("silver", 0.3), ("gold", 0.18), ("platinum", 0.07))


def _weighted(rng: random.Random, pairs) -> str:
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights=weights)[0]


def ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def launch_customer() -> SimCustomer:
    """The loyal, mobile-first customer of the launch story: SMS engages her ~4× more than email."""
    return SimCustomer(
        index=0,
        external_id=LAUNCH_EXTERNAL_ID,
        first_name="Maya",
        last_name="Chen",
        email="maya.chen@example.com",
        phone="+12125550147",
        timezone="America/New_York",
        locale="en-US",
        city="New York",
        country="US",
        plan="plus",
        loyalty_tier="gold",
        signup_days_ago=420,
        mobile_first=True,
        has_app=True,
        web_push=False,
        preferred_channel=SMS,
        propensities=MappingProxyType(
            {
                EMAIL: ChannelPropensity(open=0.38, click=0.12, convert=0.1),
                SMS: ChannelPropensity(open=0.5, click=0.5, convert=0.2),
                PUSH: ChannelPropensity(open=0.45, click=0.3, convert=0.15),
                IN_APP: ChannelPropensity(open=0.7, click=0.18, convert=0.1),
            }
        ),
        active_hours=(20, 21, 22),
        sessions_per_week=2.5,
        purchase_propensity=0.6,
    )


class _Numbers:
    """Hands out unique fictional phone numbers; empty when a range runs out."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = {launch_customer().phone}

    def draw(self, country: str) -> str:
        for _ in range(20):
            if country == "US":
                number = f"+1{self.rng.choice(US_AREA_CODES)}55501{self.rng.randrange(100):02d}"
            elif country == "CA":
                number = f"+1{self.rng.choice(CA_AREA_CODES)}55501{self.rng.randrange(100):02d}"
            elif country == "GB":
                number = f"+447700900{self.rng.randrange(1000):03d}"
            else:
                return ""
            if number not in self.used:
                self.used.add(number)
                return number
        return ""


def _propensities(rng: random.Random, truth: TrueProfile) -> Mapping[str, ChannelPropensity]:
    """Click rates are the simulator's; opens and conversions, which it does not model, are
    drawn around them (SMS opens are invisible: open == click)."""
    best = truth.best_channels
    result = {}
    for ch in CHANNELS:
        click = truth.channel_rates[ch]
        if ch == SMS:
            opened = click
        elif ch == IN_APP:
            opened = min(0.95, click + rng.uniform(0.35, 0.55))
        else:
            opened = min(0.9, click + rng.uniform(0.1, 0.3))
        convert = rng.uniform(0.12, 0.3) if ch in best else rng.uniform(0.03, 0.12)
        result[ch] = ChannelPropensity(open=round(opened, 3), click=round(click, 3), convert=round(convert, 3))
    return MappingProxyType(result)


def _preferred(truth: TrueProfile, reachable: tuple[str, ...]) -> str:
    """The true best reachable channel; of two tied, the first in channel order."""
    return next(ch for ch in reachable if ch in truth.best_channels)


def _person(index: int, rng: random.Random, numbers: _Numbers, emails: set[str]) -> SimCustomer:
    region = rng.choices(REGIONS, weights=[r.weight for r in REGIONS])[0]
    firsts, lasts = NAMES[region.names]
    first, last = rng.choice(firsts), rng.choice(lasts)
    email = f"{ascii_slug(first)}.{ascii_slug(last)}@{rng.choice(EMAIL_DOMAINS)}"
    while email in emails:
        local, domain = email.split("@")
        email = f"{local.rstrip('0123456789')}{rng.randrange(10, 9999)}@{domain}"
    emails.add(email)
    mobile_first = rng.random() < 0.45
    has_app = (mobile_first and rng.random() < 0.85) or rng.random() < 0.12
    phone = numbers.draw(region.country) if rng.random() < (0.9 if mobile_first else 0.6) else ""
    web_push = not has_app and rng.random() < 0.22
    reachable = reachable_channels(phone, has_app, web_push)
    truth = draw_truth(rng, timezone=region.timezone, reachable=reachable, mobile_first=mobile_first)
    propensities = _propensities(rng, truth)
    return SimCustomer(
        index=index,
        external_id=f"cust_{rng.getrandbits(40):010x}",
        first_name=first,
        last_name=last,
        email=email,
        phone=phone,
        timezone=region.timezone,
        locale=region.locale,
        city=rng.choice(region.cities),
        country=region.country,
        plan=_weighted(rng, PLANS),
        loyalty_tier=_weighted(rng, TIERS),
        signup_days_ago=int(min(2000, rng.expovariate(1 / 420))) + 1,
        mobile_first=mobile_first,
        has_app=has_app,
        web_push=web_push,
        preferred_channel=_preferred(truth, reachable),
        propensities=propensities,
        active_hours=truth.active_hours(),
        sessions_per_week=round(min(6.0, rng.lognormvariate(-0.85, 0.7)), 3),
        purchase_propensity=round(rng.uniform(0.35, 0.75), 3),
    )


def generate_population(n: int, seed: int) -> list[SimCustomer]:
    """n simulated people (the launch-story customer first), identical for the same seed."""
    if n <= 0:
        return []
    rng = random.Random(f"chorus-demo:{seed}:population")
    numbers = _Numbers(rng)
    maya = launch_customer()
    emails = {maya.email}
    return [maya] + [_person(i, rng, numbers, emails) for i in range(1, n)]
