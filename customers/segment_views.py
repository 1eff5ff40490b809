"""Segment pages: the list with live member counts, and the editor with its live count.

The editor posts its rows to itself: with ``op`` set (add, remove or retype a row) it
answers the re-rendered rows; without, it saves through ``do_save_segment``. The count
panel posts the same form to ``segment_count``. Definitions are validated and compiled
only by ``customers.segments``.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event
from django_htmx.middleware import HtmxDetails

from customers.models import Segment
from customers.segment_forms import (
    SegmentForm,
    apply_edit,
    definition_from_post,
    editor_rows,
    type_choices,
)
from customers.segments import (
    COUNT_FAILED,
    InvalidSegment,
    compile_segment,
    do_save_segment,
    member_counts,
    validate_definition,
)
from orchestrator.roles import Capability, has_capability, require_capability

SAMPLE_SIZE = 10
LIST_PAGE_SIZE = 50  # segments per list page; each page's counts are one query
TEMPLATE = "customers/segment_edit.html"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _render(request: HtmxHttpRequest, fragment: str | None, context: dict, status: int = 200) -> HttpResponse:
    template = f"{TEMPLATE}#{fragment}" if fragment and request.htmx else TEMPLATE
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response


@require_capability(Capability.VIEW_CUSTOMERS)
@require_http_methods(["GET", "HEAD"])
def segment_list(request: HtmxHttpRequest) -> HttpResponse:
    page = Paginator(Segment.objects.all(), LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    segments = list(page.object_list)
    counts = member_counts({s.pk: s.definition for s in segments})
    rows = [(segment, counts.get(segment.pk)) for segment in segments]
    return render(request, "customers/segments.html", {"rows": rows, "page": page, "count_failed": COUNT_FAILED})


@require_capability(Capability.VIEW_CUSTOMERS)
@require_http_methods(["GET", "HEAD", "POST"])
def segment_edit(request: HtmxHttpRequest, pk: int | None = None) -> HttpResponse:
    op = request.POST.get("op", "")
    if request.method == "POST" and not op and not has_capability(request.user, Capability.EDIT_JOURNEYS):
        raise PermissionDenied("Your role does not allow saving segments.")
    segment = get_object_or_404(Segment, pk=pk) if pk is not None else None
    if request.method != "POST":
        definition = segment.definition if segment else {"match": "all", "conditions": []}
        initial = {"name": segment.name, "description": segment.description, "match": definition.get("match", "all")} if segment else None
        form = SegmentForm(initial=initial, segment=segment)
        return _render(request, None, _context(request, segment, form, definition, {}, with_count=True))
    definition = definition_from_post(request.POST)
    if op:  # an edit of the rows, not a save
        apply_edit(definition, op)
        response = _render(request, "editor", _context(request, segment, None, definition, {}, with_count=not request.htmx))
        return trigger_client_event(response, "segment-changed", after="settle")
    return _save(request, segment, definition)


def _save(request: HtmxHttpRequest, segment: Segment | None, definition: dict) -> HttpResponse:
    form = SegmentForm(request.POST, segment=segment)
    problems: dict[str, str] = {}
    try:
        validated = validate_definition(definition)
    except InvalidSegment as invalid:
        problems = _first_per_path(invalid.problems)
    if form.is_valid() and not problems:
        try:
            saved = do_save_segment(
                segment, name=form.cleaned_data["name"], description=form.cleaned_data["description"],
                definition=validated, actor=request.user,
            )
        except IntegrityError:  # a concurrent save took the name between the check and the write
            form.add_error("name", "Another segment already has this name.")
        except InvalidSegment as invalid:  # valid, but it does not compile to a query
            problems = _first_per_path(invalid.problems)
        else:
            messages.success(request, f"Saved segment “{saved.name}”.")
            url = reverse("customers:segments")
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return _render(request, "form", _context(request, segment, form, definition, problems, with_count=not request.htmx), status=422)


@require_capability(Capability.VIEW_CUSTOMERS)
@require_POST
def segment_count(request: HtmxHttpRequest) -> HttpResponse:
    definition = definition_from_post(request.POST)
    context = {"count": _count(definition)}
    return render(request, f"{TEMPLATE}#count", context)


def _count(definition: dict) -> dict[str, Any]:
    """The live count panel: members and a sample, or what to fix first."""
    try:
        validated = validate_definition(definition)
    except InvalidSegment as invalid:
        return {"problems": [f"{_label(path)}: {reason}" for path, reason in invalid.problems]}
    members = compile_segment(validated)
    return {
        "total": members.count(),
        "sample": list(members[:SAMPLE_SIZE]),
        "json": json.dumps(validated.to_json(), indent=2),
    }


def _context(request, segment, form, definition: dict, problems: dict[str, str], *, with_count: bool) -> dict:
    form = form or SegmentForm(initial=_meta(request.POST), segment=segment)
    rows, general = editor_rows(definition, problems)
    return {
        "segment": segment,
        "form": form,
        "rows": rows,
        "general_problems": general,
        "problem_count": len(problems),
        "type_choices": type_choices(),
        "edit_url": reverse("customers:segment-edit", args=[segment.pk]) if segment else reverse("customers:segment-new"),
        "count": _count(definition) if with_count else None,
    }


def _meta(data: QueryDict) -> dict[str, str]:
    """The name, description and match of a POST, re-shown unvalidated while rows change."""
    return {key: data.get(key, "") for key in ("name", "description", "match")}


def _first_per_path(problems: list[tuple[str, str]]) -> dict[str, str]:
    first: dict[str, str] = {}
    for path, reason in problems:
        first.setdefault(path, reason)
    return first


def _label(path: str) -> str:
    """``conditions.4.conditions.0.value`` → ``Condition 5.1 value``."""
    parts, numbers, rest = path.split("."), [], []
    for i, part in enumerate(parts):
        if part.isdigit() and i and parts[i - 1] == "conditions":
            numbers.append(str(int(part) + 1))
        elif part != "conditions" or i == len(parts) - 1:
            rest.append(part)
    head = f"Condition {'.'.join(numbers)}" if numbers else "Definition"
    return f"{head} {' '.join(rest).replace('_', ' ')}".strip()
