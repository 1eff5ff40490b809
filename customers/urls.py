from django.urls import path

from customers import segment_views, views

app_name = "customers"
urlpatterns = [
    path("", views.customer_list, name="list"),
    path("<int:pk>/", views.customer_profile, name="profile"),
    path("segments/", segment_views.segment_list, name="segments"),
    path("segments/new/", segment_views.segment_edit, name="segment-new"),
    path("segments/<int:pk>/", segment_views.segment_edit, name="segment-edit"),
    path("segments/count/", segment_views.segment_count, name="segment-count"),
]
