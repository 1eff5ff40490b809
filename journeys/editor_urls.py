"""URLs of the journey editor; included by journeys/urls.py under the journeys: namespace."""

from django.urls import path

from journeys import editor_list, editor_panel, editor_publish, editor_views

urlpatterns: list = [
    path("new/", editor_list.create_journey, name="create"),
    path("<int:pk>/duplicate/", editor_list.duplicate_journey, name="duplicate"),
    path("<int:pk>/edit/", editor_views.journey_canvas, name="edit"),
    path("<int:pk>/edit/nodes/", editor_views.add_node, name="edit-add-node"),
    path("<int:pk>/edit/nodes/<slug:node_id>/", editor_panel.node_panel, name="edit-node"),
    path("<int:pk>/edit/nodes/<slug:node_id>/move/", editor_views.move_node, name="edit-move-node"),
    path("<int:pk>/edit/nodes/<slug:node_id>/delete/", editor_views.delete_node, name="edit-delete-node"),
    path("<int:pk>/edit/nodes/<slug:node_id>/check/", editor_panel.content_check, name="edit-check"),
    path("<int:pk>/edit/edges/", editor_views.connect, name="edit-connect"),
    path("<int:pk>/edit/edges/delete/", editor_views.delete_edge, name="edit-delete-edge"),
    path("<int:pk>/edit/undo/", editor_views.undo, name="edit-undo"),
    path("<int:pk>/edit/redo/", editor_views.redo, name="edit-redo"),
    path("<int:pk>/edit/layout/", editor_views.layout, name="edit-layout"),
    path("<int:pk>/edit/publish/", editor_publish.publish, name="edit-publish"),
    path("<int:pk>/status/", editor_publish.set_status, name="set-status"),
]
