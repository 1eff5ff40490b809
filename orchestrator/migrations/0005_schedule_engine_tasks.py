"""Start the engine's poller and segment entry on django-q2 schedules (every minute).

The poller keeps itself running between slots (see orchestrator.engine.tasks.tick); the
schedule only restarts it within a minute if its worker died.
"""

from django.db import migrations

SCHEDULES = [
    ("chorus: journey engine poller", "orchestrator.engine.tasks.tick"),
    ("chorus: segment entry", "orchestrator.engine.tasks.enrol_segments"),
]


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": "I", "minutes": 1, "repeats": -1}
        )


def delete_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=[name for name, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orchestrator", "0004_journey_engine_runtime"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedules, delete_schedules)]
