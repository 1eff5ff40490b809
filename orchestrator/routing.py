"""WebSocket routes. The in-app inbox and live dashboards register here as they land."""

from django.urls import path

from channels_app.consumers import InboxConsumer
from orchestrator.dashboards.consumers import CadenceConsumer

websocket_urlpatterns: list = [
    path("ws/inbox/<path:external_id>/", InboxConsumer.as_asgi()),
    path("ws/dashboards/cadence/", CadenceConsumer.as_asgi()),
]
