"""The channel content rules as admins edit them: one row, pk=1 (filled in by 0004)."""

import channels_app.models
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('channels_app', '0002_development_outbox'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ContentRuleSettings',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ('push_title_max_chars', models.PositiveIntegerField(default=50, help_text='Longest push title; longer ones are cut.')),
                ('push_body_max_chars', models.PositiveIntegerField(default=120, help_text='Longest push body: about what a lock screen shows.')),
                ('push_max_actions', models.PositiveIntegerField(default=1, help_text='Most links (actions) a push may carry.')),
                ('sms_max_segments_marketing', models.PositiveIntegerField(default=3, help_text='Most SMS parts a marketing SMS may take.')),
                ('sms_max_segments_transactional', models.PositiveIntegerField(default=10, help_text='Most SMS parts a transactional SMS may take; carriers stop at about 10.')),
                ('sms_opt_out_phrases', models.JSONField(default=channels_app.models.default_sms_opt_out_phrases, help_text='A marketing SMS must contain one of these (any case, punctuation ignored).')),
                ('sms_promotional_terms', models.JSONField(default=channels_app.models.default_sms_promotional_terms, help_text='Wording that makes an SMS labelled transactional read as marketing (an error).')),
                ('sms_discount_code_pattern', models.CharField(default='\\b(?i:code)(?:\\s*:\\s*|\\s+)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{4,}\\b', help_text='A regular expression for discount codes, which a transactional SMS may not carry.', max_length=500)),
                ('email_subject_max_chars', models.PositiveIntegerField(default=60, help_text='Longer subjects get a warning: inboxes cut them.')),
                ('in_app_requires_app_presence', models.BooleanField(default=True, help_text='In-app messages only where the journey sends them as the customer is in the app.')),
                ('in_app_presence_events', models.JSONField(default=channels_app.models.default_in_app_presence_events, help_text='Events that mean the customer is in the app as they happen (exact event names, any case).')),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('updated_by', models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'content rules',
                'verbose_name_plural': 'content rules',
                'constraints': [models.CheckConstraint(condition=models.Q(('id', 1)), name='content_rule_settings_singleton')],
            },
        ),
    ]
