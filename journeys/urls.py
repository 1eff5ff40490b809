from django.urls import path

from journeys import views

app_name = "journeys"
urlpatterns = [
    path("", views.journey_list, name="list"),
    path("<int:pk>/", views.journey_detail, name="detail"),
    path("<int:pk>/enrollments/<int:enrollment_id>/", views.enrollment_path, name="enrollment"),
]
