from django.urls import path

from customers.api import ingest, read

# External ids are your system's ids and may contain "/", so they are matched with the
# path converter; the sub-resource routes come first so ".../events" is not read as an id.
urlpatterns = [
    # Ingestion: the Segment tracking spec.
    path("identify", ingest.identify, name="api-identify"),
    path("track", ingest.track, name="api-track"),
    path("page", ingest.page, name="api-page"),
    path("screen", ingest.screen, name="api-screen"),
    path("batch", ingest.batch, name="api-batch"),
    # Read API.
    path("customers", read.customer_list, name="api-customer-list"),
    path("customers/<path:external_id>/events", read.customer_events, name="api-customer-events"),
    path("customers/<path:external_id>/messages", read.customer_messages, name="api-customer-messages"),
    path("customers/<path:external_id>/consent", read.customer_consent, name="api-customer-consent"),
    path("customers/<path:external_id>", read.customer_detail, name="api-customer-detail"),
]
