"""Remove the journey overlap rollup and its trigger on the enrollments.

The trigger took a per-customer advisory lock while the engine holds customer rows, so a
segment entry (inserting enrollments, checking each customer's key) and a worker (holding
a customer row, exiting an enrollment) deadlocked (bench/engine.py --quick). The panel
reads the live enrollments directly again."""

from importlib import import_module

from django.db import migrations

rollup = import_module("orchestrator.dashboards.migrations.0002_customer_journeys_rollup")


class Migration(migrations.Migration):
    dependencies = [("dashboards", "0002_customer_journeys_rollup")]

    operations = [
        migrations.RunPython(rollup.drop_trigger, rollup.create_trigger),
        migrations.DeleteModel(name="CustomerJourneys"),
    ]
