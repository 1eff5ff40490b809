"""The canvas editor's state changes: one transaction each, on the journey's locked row.

Every edit names the graph revision it was based on (``base_revision``); when someone
else has written the draft since, ``StaleRevision`` says who and when, and nothing is
written. Edits go through ``services.write_draft_graph``, like the JSON API's, so both
bump the revision and feed undo/redo.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from django.db import transaction

from journeys import editor_history as history
from journeys.models import Journey, JourneyStatus, JourneyVersion
from journeys.services import (
    SETTINGS,
    JourneyInput,
    JourneyStateError,
    _lock,
    do_create_journey,
    write_draft_graph,
)

Change = Callable[[dict], dict]


def editable_version(journey: Journey) -> JourneyVersion | None:
    """What the canvas edits: the draft, else the live version (an edit starts a draft
    from it), else the newest."""
    draft = journey.versions.filter(published_at__isnull=True).first()
    if draft is not None:
        return draft
    return journey.live_version or journey.versions.order_by("-number").first()


def _writable(journey: Journey, base_revision: int | None) -> None:
    _lock(journey)
    if journey.status == JourneyStatus.ARCHIVED:
        raise JourneyStateError("An archived journey cannot be edited.", journey.status)
    history.check_revision(journey, base_revision)


def do_edit_journey_graph(journey: Journey, base_revision: int | None, change: Change, user, label: str) -> bool:
    """Apply ``change`` to the graph the canvas shows and store it as the draft.

    ``change`` may raise (editor_edits.EditError): nothing is written then. False when
    the change left the graph as it was (nothing stored, the revision unchanged)."""
    with transaction.atomic():
        _writable(journey, base_revision)
        version = editable_version(journey)
        current = copy.deepcopy(version.graph) if version else {"nodes": [], "edges": []}
        changed = write_draft_graph(journey, change(current), user, label)
        if changed:
            journey.updated_by = user
            journey.save(update_fields=["graph_revision", "updated_by", "updated_at"])
    return changed


def do_undo_graph_edit(journey: Journey, base_revision: int | None, user, *, redo: bool = False) -> str | None:
    """Take back the newest edit of the draft (or make the oldest undone one again);
    returns its label, or None when there is nothing to undo (redo)."""
    with transaction.atomic():
        _writable(journey, base_revision)
        draft = journey.versions.filter(published_at__isnull=True).first()
        edit = history.redoable(draft) if redo else history.undoable(draft)
        if edit is None:
            return None
        history.write_history_step(journey, draft, edit, undo=not redo)
        journey.updated_by = user
        journey.save(update_fields=["graph_revision", "updated_by", "updated_at"])
    return edit.label


def copy_name(name: str) -> str:
    """"Welcome (copy)", then "Welcome (copy 2)", … the first name no journey has."""
    taken = set(Journey.objects.filter(name__startswith=name).values_list("name", flat=True))
    candidate, number = f"{name} (copy)", 2
    while candidate in taken:
        candidate, number = f"{name} (copy {number})", number + 1
    return candidate


def do_duplicate_journey(journey: Journey, user) -> Journey:
    """A new draft journey with the same settings and the graph the canvas shows."""
    version = editable_version(journey)
    given = {name: copy.deepcopy(getattr(journey, name)) for name in SETTINGS}
    given["name"] = copy_name(journey.name)[:200]
    graph = copy.deepcopy(version.graph) if version else None
    return do_create_journey(JourneyInput(**given, graph=graph or {"nodes": [], "edges": []}), user)
