"""URLs of the journey studio; included by journeys/urls.py under the journeys: namespace."""

from django.urls import path

from journeys import studio_preview, studio_simulate, studio_stats, studio_versions

urlpatterns: list = [
    path("<int:pk>/preview/", studio_preview.preview, name="studio-preview"),
    path("<int:pk>/simulate/", studio_simulate.simulate_view, name="studio-simulate"),
    path("<int:pk>/node-stats/", studio_stats.node_stats_view, name="studio-stats"),
    path("<int:pk>/versions/", studio_versions.versions, name="studio-versions"),
    path("<int:pk>/versions/<int:number>/restore/", studio_versions.restore_version, name="studio-restore"),
]
