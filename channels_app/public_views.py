"""Pages customers reach from their messages: one-click unsubscribe, open and click tracking,
and the receipts a push notification's own code posts.

No login and no CSRF token: the links arrive in emails and text messages, and a signed
token in the URL is the whole authorisation. State changes only on POST (unsubscribe) or
on a signed tracking URL (an open or a click, which cannot be undone and never moves a
message backwards).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from channels_app import push_receipts, tracking, unsubscribe
from channels_app.models import MessageStatus

TEMPLATE = "channels_app/unsubscribe.html"
# What the page calls the messages a token unsubscribes from.
CHANNEL_WORDS = {"email": "emails", "sms": "text messages", "push": "notifications", "in_app": "in-app messages"}


@csrf_exempt  # RFC 8058: mail providers POST `List-Unsubscribe=One-Click` with no token
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET: a confirmation page with a button (a link scanner changes nothing). POST: unsubscribe."""
    try:
        target = unsubscribe.resolve(token)
    except unsubscribe.BadToken:
        return render(request, TEMPLATE, {"state": "invalid"}, status=400)
    what = CHANNEL_WORDS.get(target.channel, "messages")
    if request.method == "POST":
        unsubscribe.do_unsubscribe(target)
        return render(request, TEMPLATE, {"state": "done", "target": target, "what": what})
    return render(request, TEMPLATE, {"state": "confirm", "target": target, "token": token, "what": what})


@never_cache
@require_GET
def click_view(request: HttpRequest, token: str) -> HttpResponse:
    """Record a click, then send the reader on to the URL signed in the token (and only there)."""
    try:
        public_id, url = tracking.read_click(token)
    except tracking.BadToken:
        return HttpResponseBadRequest("This link is not valid.", content_type="text/plain")
    tracking.do_record_engagement(public_id, MessageStatus.CLICKED, detail="tracked link")
    return HttpResponseRedirect(url)


@never_cache
@require_GET
def open_view(request: HttpRequest, token: str) -> HttpResponse:
    """Record an open; answer the 1×1 GIF either way a valid token arrives."""
    try:
        public_id = tracking.read_open(token)
    except tracking.BadToken:
        return HttpResponse(status=404)
    tracking.do_record_engagement(public_id, MessageStatus.OPENED, detail="tracking pixel")
    return HttpResponse(tracking.PIXEL_GIF, content_type="image/gif")


@never_cache
@require_GET
def short_click_view(request: HttpRequest, code: str) -> HttpResponse:
    """A short tracked link from a text message: record the click, go to the message's URL."""
    try:
        message, url = tracking.read_short(code)
    except tracking.BadToken:
        return HttpResponseBadRequest("This link is not valid.", content_type="text/plain")
    tracking.do_record_engagement(str(message.public_id), MessageStatus.CLICKED, detail="tracked link")
    return HttpResponseRedirect(url)


@csrf_exempt  # posted by a service worker on the customer's site: the signed token is the authorisation
@never_cache
@require_POST
def push_receipt_view(request: HttpRequest, token: str, event: str) -> HttpResponse:
    """A push notification was shown, clicked or dismissed (channels_app.push_receipts).
    204 with CORS open to any origin: the worker runs on the customer's site, not ours."""
    if event not in push_receipts.EVENTS:
        return _cors(HttpResponse(f"event: expected one of {', '.join(push_receipts.EVENTS)}", status=400,
                                  content_type="text/plain"))
    try:
        public_id = tracking.read_receipt(token)
    except tracking.BadToken:
        return _cors(HttpResponse("receipt token: not valid", status=400, content_type="text/plain"))
    if not push_receipts.do_record_push_receipt(public_id, event):
        return _cors(HttpResponse("no such push message", status=404, content_type="text/plain"))
    return _cors(HttpResponse(status=204))


def _cors(response: HttpResponse) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = "*"
    return response
