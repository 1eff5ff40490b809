from django.urls import include, path

from journeys import views

app_name = "journeys"
urlpatterns = [
    path("", views.journey_list, name="list"),
    path("<int:pk>/", views.journey_detail, name="detail"),
    path("<int:pk>/enrollments/<int:enrollment_id>/", views.enrollment_path, name="enrollment"),
    path("", include("journeys.editor_urls")),
    path("", include("journeys.studio_urls")),
    path("", include("journeys.measure_urls")),
]
