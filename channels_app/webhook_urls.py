"""Provider webhooks, mounted at /webhooks/ (orchestrator/urls.py).

Twilio signs the exact URL it was given, so these paths must match what the adapters
announce (channels_app.providers.twilio.STATUS_CALLBACK_PATH) and what the Twilio
console's messaging webhook is set to: {PUBLIC_URL}/webhooks/twilio/inbound/.
"""

from django.urls import path

from channels_app.webhooks import anymail, twilio

app_name = "webhooks"

urlpatterns = [
    path("twilio/status/", twilio.status_callback, name="twilio-status"),
    path("twilio/inbound/", twilio.inbound_sms, name="twilio-inbound"),
    path("anymail/<slug:esp>/tracking/", anymail.tracking, name="anymail-tracking"),
]
