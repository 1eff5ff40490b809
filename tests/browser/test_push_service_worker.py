"""static/js/chorus-sw.js in a real browser: a Web Push message reaches the service worker,
which shows the notification and reports it to Chorus through the payload's receipt_url.

The push is delivered through the Chrome DevTools Protocol
(``ServiceWorker.deliverPushMessage``), as a push service's message would arrive: the
payload is what the Web Push adapter sends (channels_app.providers.push_common), with a
receipt_url signed for a real Message. The worker is served by the live server at
/static/js/chorus-sw.js at ``http://localhost:<port>`` (pytest-django's default host), a
secure context, which service workers need (``http://127.0.0.1`` is one too in Chromium).
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page

from channels_app.ledger import do_transition_message
from channels_app.models import Message
from channels_app.tracking import receipt_url
from tests import api_factories as make

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = "/static/js/chorus-sw.js"
# Registers the worker and resolves with its scope once it is active. (Not
# serviceWorker.ready: that waits for a worker whose scope covers this page.)
ACTIVATED = """async (url) => {
  const registration = await navigator.serviceWorker.register(url);
  const worker = registration.installing || registration.waiting || registration.active;
  if (worker.state !== "activated") {
    await new Promise((resolve) => worker.addEventListener("statechange", () => worker.state === "activated" && resolve()));
  }
  return registration.scope;
}"""

# In the worker: its shown notification, clicked. A dispatched event is not trusted, so its
# waitUntil() throws after the handler has posted the receipt; that error is expected.
CLICK = """async () => {
  const [notification] = await self.registration.getNotifications();
  self.dispatchEvent(new NotificationEvent("notificationclick", { notification }));
  return notification.title;
}"""


def sent_push() -> Message:
    message = make.message(make.customer("ada"), channel="push", status="queued",
                           content={"title": "Back in stock", "body": "The blue kettle is back."})
    do_transition_message(message.pk, "sending")
    do_transition_message(message.pk, "sent")
    return message


def registered_worker(page: Page, context: BrowserContext) -> tuple[object, str]:
    """Register the worker from a page of the live server; (CDP session, registration id)."""
    cdp = context.new_cdp_session(page)
    registrations: dict[str, str] = {}
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda event: registrations.update({r["scopeURL"]: r["registrationId"] for r in event["registrations"]}))
    cdp.send("ServiceWorker.enable")
    page.goto("/accounts/login/")
    assert page.evaluate("window.isSecureContext") is True
    scope = page.evaluate(ACTIVATED, WORKER)
    return cdp, wait_for(lambda: registrations.get(scope))


def wait_for(read, timeout: float = 10.0):
    """Poll ``read`` until it answers something truthy (the browser acts on its own clock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def status_of(message: Message) -> str:
    return Message.objects.filter(pk=message.pk).values_list("status", flat=True).get()


def test_a_pushed_notification_reports_delivered_then_clicked(page: Page, context: BrowserContext, live_server, settings):
    settings.PUBLIC_URL = live_server.url
    message = sent_push()
    context.grant_permissions(["notifications"], origin=live_server.url)
    cdp, registration_id = registered_worker(page, context)
    payload = {"title": "Back in stock", "body": "The blue kettle is back.", "message_id": str(message.public_id),
               "receipt_url": receipt_url(str(message.public_id))}

    origin = "{0.scheme}://{0.netloc}".format(urlsplit(live_server.url))
    cdp.send("ServiceWorker.deliverPushMessage",
             {"origin": origin, "registrationId": registration_id, "data": json.dumps(payload)})

    assert wait_for(lambda: status_of(message) == "delivered")  # the worker showed it and said so

    # A click, as the browser would hand it to the worker: the notification it shows, in a
    # notificationclick event dispatched in the worker (no DevTools command clicks one).
    worker = wait_for(lambda: next((w for w in context.service_workers if w.url.endswith(WORKER)), None))
    assert worker.evaluate(CLICK) == "Back in stock"

    assert wait_for(lambda: status_of(message) == "clicked")
    clicked = Message.objects.get(pk=message.pk)
    assert (clicked.delivered_at is not None, clicked.clicked_at is not None) == (True, True)
