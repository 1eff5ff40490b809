"""WebSocket routes. The in-app inbox and live dashboards register here as they land."""

websocket_urlpatterns: list = []
