"""The frequency policy a careful team would ship: caps, spacing and quiet hours.

At most 3 marketing messages per 24 h and 8 per 7 days across all channels, at most 1
marketing SMS per 24 h, 30 minutes between any two marketing messages, and no marketing
SMS or push 21:00–08:00 in the customer's local time. Admins change them in the admin.
"""

import datetime

from django.db import migrations

RULES = [
    {"name": "Marketing, all channels, 24 h", "scope": "all", "channels": [], "max_count": 3, "window_minutes": 1440},
    {"name": "Marketing, all channels, 7 days", "scope": "all", "channels": [], "max_count": 8, "window_minutes": 10080},
    {"name": "Marketing SMS, 24 h", "scope": "channel", "channels": ["sms"], "max_count": 1, "window_minutes": 1440},
]
SETTINGS = {"min_spacing_minutes": 30, "fallback_timezone": "UTC", "in_app_counts": False, "defer_horizon_hours": 72}
QUIET_HOURS = [("sms", datetime.time(21, 0), datetime.time(8, 0)), ("push", datetime.time(21, 0), datetime.time(8, 0))]


def create_default_policy(apps, schema_editor):
    FrequencyRule = apps.get_model("orchestrator", "FrequencyRule")
    GovernorSettings = apps.get_model("orchestrator", "GovernorSettings")
    QuietHoursRule = apps.get_model("orchestrator", "QuietHoursRule")
    for rule in RULES:
        FrequencyRule.objects.get_or_create(name=rule["name"], defaults=rule)
    GovernorSettings.objects.get_or_create(pk=1, defaults=SETTINGS)
    for channel, start, end in QUIET_HOURS:
        QuietHoursRule.objects.get_or_create(channel=channel, defaults={"start": start, "end": end})


def delete_default_policy(apps, schema_editor):
    apps.get_model("orchestrator", "FrequencyRule").objects.filter(name__in=[r["name"] for r in RULES]).delete()
    apps.get_model("orchestrator", "GovernorSettings").objects.filter(pk=1).delete()
    apps.get_model("orchestrator", "QuietHoursRule").objects.filter(channel__in=[c for c, _, _ in QUIET_HOURS]).delete()


class Migration(migrations.Migration):
    dependencies = [("orchestrator", "0006_frequency_policy")]

    operations = [migrations.RunPython(create_default_policy, delete_default_policy)]
