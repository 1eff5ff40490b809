"""URLs printed into messages ({PUBLIC_URL}/u/…, /t/…): changing them breaks mail already sent."""

from django.urls import path

from channels_app import public_views

urlpatterns = [
    path("u/<str:token>/", public_views.unsubscribe_view, name="unsubscribe"),
    path("t/c/<str:token>/", public_views.click_view, name="track-click"),
    path("t/o/<str:token>.gif", public_views.open_view, name="track-open"),
    path("s/<str:code>", public_views.short_click_view, name="track-short-click"),
    path("t/p/<str:token>/<slug:event>/", public_views.push_receipt_view, name="push-receipt"),
]
