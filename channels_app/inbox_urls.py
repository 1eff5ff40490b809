"""The in-app inbox API, under /api/v1/ (external ids may contain "/": the path converter)."""

from django.urls import path

from channels_app import api_inbox

urlpatterns = [
    path("inbox/<path:external_id>/token", api_inbox.inbox_token, name="api-inbox-token"),
    path(
        "inbox/<path:external_id>/messages/<str:public_id>/<str:action>",
        api_inbox.inbox_mark,
        name="api-inbox-mark",
    ),
    path("inbox/<path:external_id>", api_inbox.inbox_list, name="api-inbox"),
]
