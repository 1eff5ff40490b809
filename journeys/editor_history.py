"""The draft graph's revisions and its undo/redo history (GraphEdit rows).

``record_graph_write`` is called by ``services.write_draft_graph``, the one place a draft
graph is written, so every writer (the canvas, the JSON API, an import, a restored
version) bumps the revision and can be undone. The caller holds the journey's row lock.
"""

from __future__ import annotations

import copy

from journeys.models import GraphEdit, Journey, JourneyVersion


class StaleRevision(ValueError):
    """An edit based on a revision someone else has since replaced."""

    def __init__(self, journey: Journey):
        who = journey.updated_by.get_full_name() or journey.updated_by.get_username() if journey.updated_by else "Someone"
        when = journey.updated_at.strftime("%H:%M") if journey.updated_at else "a moment ago"
        super().__init__(f"{who} changed this journey at {when}; reload to see their changes.")


def check_revision(journey: Journey, base_revision: int | None) -> None:
    """Raise StaleRevision unless the edit was based on the journey's current revision.

    ``None`` (a writer that does not track revisions, such as the API) always passes."""
    if base_revision is not None and base_revision != journey.graph_revision:
        raise StaleRevision(journey)


def record_graph_write(journey: Journey, draft: JourneyVersion, before: dict, user, label: str) -> None:
    """Bump the revision and remember the write for undo (the draft is already saved)."""
    journey.graph_revision += 1
    GraphEdit.objects.filter(version=draft, undone=True).delete()  # a new edit ends the redo chain
    GraphEdit.objects.create(
        journey=journey, version=draft, revision=journey.graph_revision, label=label[:200],
        before=copy.deepcopy(before), after=copy.deepcopy(draft.graph), user=user,
    )
    stale = GraphEdit.objects.filter(version=draft).order_by("-id").values_list("id", flat=True)[GraphEdit.HISTORY_LENGTH:]
    GraphEdit.objects.filter(id__in=list(stale)).delete()


def undoable(draft: JourneyVersion | None) -> GraphEdit | None:
    """The edit an undo would take back: the newest one not undone."""
    if draft is None or draft.is_published:
        return None
    return GraphEdit.objects.filter(version=draft, undone=False).order_by("-id").first()


def redoable(draft: JourneyVersion | None) -> GraphEdit | None:
    """The edit a redo would make again: the oldest undone one."""
    if draft is None or draft.is_published:
        return None
    return GraphEdit.objects.filter(version=draft, undone=True).order_by("id").first()


def write_history_step(journey: Journey, draft: JourneyVersion, edit: GraphEdit, *, undo: bool) -> None:
    """Apply an undo or redo: the graph is put back, the revision moves on, and no new
    edit is recorded (that would end the redo chain)."""
    draft.graph = copy.deepcopy(edit.before if undo else edit.after)
    draft.save()
    edit.undone = undo
    edit.save(update_fields=["undone"])
    journey.graph_revision += 1
