"""Telling the rest of Chorus that events were stored, without customers depending on it.

Dependencies point one way (customers ← channels_app ← journeys ← orchestrator), yet the
journey engine must hear about every stored event. Ingestion calls ``events_stored``
explicitly, inside its transaction, and it calls the listeners named in
``settings.CHORUS_EVENT_LISTENERS`` (dotted paths). A listener that enqueues work on the
ORM broker commits that work together with the events, so none is lost between the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True, slots=True)
class StoredEvents:
    """Events one ingest request stored: all share the source and the received time."""

    source: str
    received_at: datetime
    customer_ids: frozenset[int]
    names: frozenset[str]


@cache
def _listener(path: str) -> Callable[[StoredEvents], None]:
    return import_string(path)


def events_stored(batch: StoredEvents) -> None:
    if not batch.names:
        return
    for path in getattr(settings, "CHORUS_EVENT_LISTENERS", ()):
        _listener(path)(batch)


@dataclass(frozen=True, slots=True)
class MessageMove:
    """A message the ledger moved (or a late receipt it recorded without moving it)."""

    message_id: int
    from_status: str
    to_status: str
    at: datetime
    late: bool = False


def messages_moved(moves: list[MessageMove]) -> None:
    """Called by channels_app.ledger inside the transaction that moved the messages, so the
    listeners (settings.CHORUS_MESSAGE_LISTENERS) commit or roll back with the move."""
    if not moves:
        return
    for path in getattr(settings, "CHORUS_MESSAGE_LISTENERS", ()):
        _listener(path)(moves)


def customer_erasing(customer_id: int) -> None:
    """Called by ``do_erase_customer`` inside its transaction, just before the customer and
    everything of theirs (their messages too) are deleted: each listener
    (settings.CHORUS_ERASURE_LISTENERS) takes out what it derived from them, and commits
    or rolls back with the erasure."""
    for path in getattr(settings, "CHORUS_ERASURE_LISTENERS", ()):
        _listener(path)(customer_id)
