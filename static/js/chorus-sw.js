/*
 * Chorus Web Push service worker: shows Chorus notifications and reports what happened.
 *
 * Serve it from your site's origin (a service worker must come from the page's origin),
 * e.g. copy it to /chorus-sw.js, then subscribe with your VAPID public key and send the
 * subscription (endpoint + keys) to Chorus as a push contact point:
 *
 *   const registration = await navigator.serviceWorker.register("/chorus-sw.js");
 *   const subscription = await registration.pushManager.subscribe({
 *     userVisibleOnly: true, applicationServerKey: VAPID_PUBLIC_KEY,
 *   });
 *
 * Each push payload Chorus sends is JSON: {title, body, url?, icon?, tag?, message_id,
 * receipt_url}. receipt_url is signed for that one message; posting to
 * `${receipt_url}/shown/`, `/clicked/` or `/dismissed/` records the receipt (no body, no
 * credentials: the token is the authorisation). Repeats are harmless: Chorus records each
 * receipt once and never moves a message backwards. The url is already a click-tracking
 * link, so opening it records the click even if the "clicked" receipt is lost.
 *
 * If your site already has a service worker, copy the three listeners into it.
 */

/* global self, clients */

function report(data, event) {
  if (!data || !data.receipt_url) {
    return Promise.resolve();
  }
  // "no-cors" keeps this a simple request (no preflight); the response is not needed.
  return fetch(`${data.receipt_url}/${event}/`, { method: "POST", mode: "no-cors", keepalive: true })
    .catch(() => undefined); // offline: a lost receipt must never break the notification
}

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (error) {
    data = { title: "", body: event.data ? event.data.text() : "" };
  }
  const shown = self.registration.showNotification(data.title || "", {
    body: data.body || "",
    icon: data.icon || undefined,
    tag: data.tag || undefined,
    data, // kept on the notification for the click and close handlers
  });
  event.waitUntil(shown.then(() => report(data, "shown")));
});

self.addEventListener("notificationclick", (event) => {
  const data = event.notification.data || {};
  event.notification.close();
  const opening = data.url ? clients.openWindow(data.url) : Promise.resolve();
  event.waitUntil(Promise.all([opening, report(data, "clicked")]));
});

self.addEventListener("notificationclose", (event) => {
  event.waitUntil(report(event.notification.data || {}, "dismissed"));
});
