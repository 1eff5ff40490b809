"""The development outbox page: what the outbox provider "sent", newest first."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods
from django_htmx.middleware import HtmxDetails

from channels_app.models import OutboxMessage
from customers.enums import Channel
from orchestrator.roles import Capability, require_capability

PAGE_SIZE = 50


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@dataclass(frozen=True)
class Preview:
    """Recorded content under one set of names, whichever channel's fields it used."""

    title: str = ""  # email subject, push or in-app title
    preheader: str = ""
    html: str = ""  # email HTML: shown escaped, in a sandboxed frame
    body: str = ""  # plain text: email text, SMS, push or in-app body
    button: str = ""
    url: str = ""


def preview_of(content: dict) -> Preview:
    c = {key: str(value) for key, value in (content or {}).items() if value is not None}
    return Preview(
        title=c.get("subject") or c.get("title", ""),
        preheader=c.get("preheader", ""),
        html=c.get("html", ""),
        body=c.get("text") or c.get("body", ""),
        button=c.get("button_label") or c.get("cta", ""),  # demo content says "cta"
        url=c.get("url", ""),
    )


@dataclass(frozen=True)
class OutboxRow:
    record: OutboxMessage
    preview: Preview


def channel_links(channel: str) -> list[tuple[str, str, bool]]:
    """(label, url, active) for "Every channel" and each channel."""
    base = reverse("channels_app:outbox")
    links = [("Every channel", base, not channel)]
    links += [(label, f"{base}?{urlencode({'channel': value})}", value == channel) for value, label in Channel.choices]
    return links


@require_capability(Capability.VIEW_CUSTOMERS)
@require_http_methods(["GET", "HEAD"])
def outbox(request: HtmxHttpRequest) -> HttpResponse:
    channel = request.GET.get("channel", "")
    channel = channel if channel in Channel.values else ""
    records = OutboxMessage.objects.select_related("message__customer")
    if channel:
        records = records.filter(channel=channel)
    page = Paginator(records, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": [OutboxRow(record, preview_of(record.content)) for record in page.object_list],
        "channel": channel,
        "channel_query": urlencode({"channel": channel}) if channel else "",
        "channel_links": channel_links(channel),
    }
    template = "channels_app/outbox.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#results"
    response = render(request, template, context)
    # The same URL answers with a page or a fragment: keep caches from mixing them up.
    patch_vary_headers(response, ("HX-Request",))
    return response
