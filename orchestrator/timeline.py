"""One customer's history across apps: events, profile updates, messages, consent changes,
the steps their journeys took and the frequency governor's verdicts on their sends.

Each source is read newest first with keyset pagination on its own indexed time column,
then the six are merged. The order is total — (time, kind rank, id), descending — so a
cursor names exactly one position and "load older" never skips or repeats an entry,
however many rows share a timestamp. Lives in orchestrator because it reads customers,
channels_app and the journey engine's step log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from django.db.models import OuterRef, Q, QuerySet, Subquery

from channels_app.models import Message, MessageTransition
from customers.models import ConsentChange, Customer, Event, ProfileUpdate
from journeys.models import Journey
from orchestrator.engine.models import EnrollmentStep
from orchestrator.governor.models import GovernorVerdict

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# "<microseconds since EPOCH>.<kind>.<id>": digits only, so no sign, spaces or underscores;
# 18 digits reach past year 9999 (which the datetime check then refuses), 19 hold a bigint id.
CURSOR = re.compile(r"([0-9]{1,18})\.([a-z]{1,16})\.([0-9]{1,19})")


class Kind(StrEnum):
    EVENT = "event"
    PROFILE = "profile"
    MESSAGE = "message"
    CONSENT = "consent"
    JOURNEY = "journey"  # one step of one of the customer's journey enrollments
    GOVERNOR = "governor"  # a send the governor, consent or reachability deferred or suppressed


# Tie-break between kinds at the same instant (higher first when reading newest first).
# A journey step sits between the event that caused it and what it caused (a profile
# update, a message), so a newest-first list reads as cause below effect; a verdict sits
# just above the suppressed message it explains.
RANK = {Kind.EVENT: 0, Kind.JOURNEY: 1, Kind.PROFILE: 2, Kind.MESSAGE: 3, Kind.GOVERNOR: 4, Kind.CONSENT: 5}
# Kinds that belong to a channel; a channel filter leaves only these.
CHANNELLED = frozenset({Kind.MESSAGE, Kind.CONSENT, Kind.GOVERNOR})

# The filters offered on the profile: name -> kinds shown.
FILTERS: dict[str, frozenset[Kind]] = {
    "all": frozenset(Kind),
    "events": frozenset({Kind.EVENT}),
    "profile": frozenset({Kind.PROFILE}),
    "messages": frozenset({Kind.MESSAGE}),
    "consent": frozenset({Kind.CONSENT}),
    "journeys": frozenset({Kind.JOURNEY}),
    "governor": frozenset({Kind.GOVERNOR}),
}


def _events(customer: Customer) -> QuerySet:
    return Event.objects.filter(customer=customer)


def _profile_updates(customer: Customer) -> QuerySet:
    return ProfileUpdate.objects.filter(customer=customer)


def _messages(customer: Customer) -> QuerySet:
    # Why it was written, when not the obvious (a fallback after another channel failed, a
    # send released after quiet hours): its first transition's detail.
    why = MessageTransition.objects.filter(message=OuterRef("pk"), from_status="").order_by("at", "pk").values("detail")[:1]
    return Message.objects.filter(customer=customer).annotate(written_because=Subquery(why))


def _consent_changes(customer: Customer) -> QuerySet:
    return ConsentChange.objects.filter(customer=customer).select_related("actor")


def _verdicts(customer: Customer) -> QuerySet:
    # Verdicts keep plain journey ids (they outlive the journeys); the name comes along.
    name = Journey.objects.filter(pk=OuterRef("journey_id")).values("name")[:1]
    return GovernorVerdict.objects.filter(customer=customer).annotate(journey_name=Subquery(name))


def _journey_steps(customer: Customer) -> QuerySet:
    # The journey's name comes along in the same query; the enrollment's JSON does not.
    return (
        EnrollmentStep.objects.filter(enrollment__customer=customer)
        .select_related("enrollment__journey")
        .defer("enrollment__context", "enrollment__touch_sequence")
    )


# kind -> (rows of one customer, the time column the timeline sorts on)
SOURCES = {
    Kind.EVENT: (_events, "occurred_at"),
    Kind.PROFILE: (_profile_updates, "occurred_at"),
    Kind.MESSAGE: (_messages, "queued_at"),
    Kind.CONSENT: (_consent_changes, "changed_at"),
    Kind.JOURNEY: (_journey_steps, "at"),
    Kind.GOVERNOR: (_verdicts, "at"),
}


@dataclass(frozen=True)
class Cursor:
    """A position in the merged order; entries strictly older than it come next."""

    at: datetime
    kind: Kind
    id: int

    def __str__(self) -> str:
        micros = (self.at - EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.kind}.{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """Inverse of str(); raises ValueError on anything else (never OverflowError)."""
        match = CURSOR.fullmatch(text)
        if match is None:
            raise ValueError(f"Malformed timeline cursor: {text[:100]!r}")
        micros, kind, pk = match.groups()
        try:
            return cls(EPOCH + timedelta(microseconds=int(micros)), Kind(kind), int(pk))
        except OverflowError as error:  # a time past year 9999
            raise ValueError(f"Timeline cursor out of range: {text!r}") from error


@dataclass(frozen=True)
class Entry:
    kind: Kind
    at: datetime
    id: int
    obj: Any

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.at, self.kind, self.id)

    @property
    def sort_key(self) -> tuple[datetime, int, int]:
        return (self.at, RANK[self.kind], self.id)


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    next_cursor: Cursor | None  # None when nothing older remains


def older_than(kind: Kind, field: str, cursor: Cursor) -> Q:
    """Rows of one kind that come after the cursor in the merged, newest-first order."""
    condition = Q(**{f"{field}__lt": cursor.at})
    same_instant = Q(**{field: cursor.at})
    if RANK[kind] < RANK[cursor.kind]:
        condition |= same_instant
    elif kind == cursor.kind:
        condition |= same_instant & Q(id__lt=cursor.id)
    return condition


def read_page(
    customer: Customer,
    kinds: Iterable[Kind],
    *,
    channel: str = "",
    before: Cursor | None = None,
    size: int = 50,
) -> Page:
    """The next `size` entries older than `before`, merged newest first.

    One query per kind, each limited to size + 1 rows, so the cost does not grow with
    the customer's history.
    """
    entries: list[Entry] = []
    for kind in kinds:
        if channel and kind not in CHANNELLED:
            continue
        rows_of, field = SOURCES[kind]
        rows = rows_of(customer)
        if channel:
            rows = rows.filter(channel=channel)
        if before is not None:
            rows = rows.filter(older_than(kind, field, before))
        rows = rows.order_by(f"-{field}", "-id")[: size + 1]
        entries.extend(Entry(kind, getattr(row, field), row.id, row) for row in rows)
    entries.sort(key=lambda entry: entry.sort_key, reverse=True)
    if len(entries) <= size:
        return Page(entries, None)
    entries = entries[:size]
    return Page(entries, entries[-1].cursor)
