# Written by hand on 0006 (sibling migrations of other work may share that parent).
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels_app", "0006_provider_config"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="dismissed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
