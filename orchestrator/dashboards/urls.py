"""URLs of the cadence dashboard, mounted at /dashboards/."""

from django.urls import path

from orchestrator.dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("cadence/", views.cadence, name="cadence"),
    path("cadence/overlap/<int:first>/<int:second>/", views.overlap_customers, name="overlap"),
]
