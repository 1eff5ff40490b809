"""The journey engine: one public surface for the rest of Chorus.

- ``run_due`` / ``advance``: claim due enrollments and move them along their graph.
- ``handle_events``: entries, wake-ups and conversions caused by stored events.
- ``enrol_segment``: set-based segment entry.
- ``exit_journey``, ``trigger``: operator and API actions.
- ``on_message_engagement``: receipts wake engagement waits.

Imports are lazy so that ``orchestrator.engine.models`` can be imported while Django
loads models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.engine.control import NotApiTriggered, exit_journey, trigger
    from orchestrator.engine.entry import EntryResult, enrol, enrol_segment
    from orchestrator.engine.events import handle_events, on_message_engagement
    from orchestrator.engine.runner import RunStats, advance, run_due

__all__ = [
    "EntryResult", "NotApiTriggered", "RunStats", "advance", "enrol", "enrol_segment", "exit_journey",
    "handle_events", "on_message_engagement", "run_due", "trigger",
]

_EXPORTS = {
    "exit_journey": "control", "trigger": "control", "NotApiTriggered": "control",
    "EntryResult": "entry", "enrol": "entry", "enrol_segment": "entry",
    "handle_events": "events", "on_message_engagement": "events",
    "RunStats": "runner", "advance": "runner", "run_due": "runner",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f"orchestrator.engine.{module}"), name)
