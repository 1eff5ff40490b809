"""URLs of the cadence dashboard, mounted at /dashboards/."""

app_name = "dashboards"
urlpatterns: list = []
