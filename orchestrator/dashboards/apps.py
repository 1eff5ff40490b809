from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "orchestrator.dashboards"
    label = "dashboards"
    verbose_name = "Cadence dashboard"
