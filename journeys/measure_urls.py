"""URLs of the journey measure; included by journeys/urls.py under the journeys: namespace."""

from django.urls import path

from journeys import measure_views

urlpatterns: list = [
    path("<int:pk>/measurement/", measure_views.journey_measurement, name="measurement"),
    path("measurement/attribution/", measure_views.attribution_overview, name="attribution"),
    path(
        "<int:pk>/conversions/<int:enrollment_id>/", measure_views.conversion_path_view, name="conversion_path"
    ),
]
