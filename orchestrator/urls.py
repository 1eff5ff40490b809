from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from orchestrator import views

admin.site.site_header = "Chorus administration"
admin.site.site_title = "Chorus admin"
admin.site.index_title = "Settings, credentials and records"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(template_name="auth/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("customers/", include("customers.urls")),
    path("journeys/", include("journeys.urls")),
    path("dashboards/", include("orchestrator.dashboards.urls")),
    path("outbox/", include("channels_app.urls")),
    path("", include("channels_app.public_urls")),
    path("webhooks/", include("channels_app.webhook_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("customers.api.urls")),
    path("api/v1/", include("channels_app.inbox_urls")),
    path("api/v1/", include("orchestrator.api.journeys_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
