"""WebSocket routes. The in-app inbox and live dashboards register here as they land."""

from django.urls import path

from channels_app.consumers import InboxConsumer

websocket_urlpatterns: list = [
    path("ws/inbox/<path:external_id>/", InboxConsumer.as_asgi()),
]
