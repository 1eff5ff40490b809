"""The content rules Chorus ships with, written out so this migration never changes.

Push: a title of at most 50 characters, a body of at most 120 (about what a lock screen
shows), one action. SMS: at most 3 parts for marketing and 10 for transactional, opt-out
wording in every marketing SMS, no promotional wording or discount code in a
transactional one. Email: a subject over 60 characters is a warning. In-app: only where
the customer is in the app. Admins change them in the admin (Content rules).
"""

from django.db import migrations

DEFAULTS = {
    "push_title_max_chars": 50,
    "push_body_max_chars": 120,
    "push_max_actions": 1,
    "sms_max_segments_marketing": 3,
    "sms_max_segments_transactional": 10,
    "sms_opt_out_phrases": [
        "reply stop", "text stop", "txt stop", "send stop", "stop to opt out",
        "stop to end", "stop to unsubscribe", "stop to cancel", "stop to quit", "stop2end",
    ],
    "sms_promotional_terms": [
        "% off", "sale", "discount", "promo code", "coupon", "limited time", "free shipping",
        "deal", "deals", "save $", "buy now", "shop now", "exclusive offer", "clearance",
    ],
    "sms_discount_code_pattern": r"\b(?i:code)(?:\s*:\s*|\s+)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{4,}\b",
    "email_subject_max_chars": 60,
    "in_app_requires_app_presence": True,
    "in_app_presence_events": ["Screen Viewed", "Page Viewed", "Application Opened"],
}


def create_default_content_rules(apps, schema_editor):
    apps.get_model("channels_app", "ContentRuleSettings").objects.get_or_create(pk=1, defaults=DEFAULTS)


def delete_content_rules(apps, schema_editor):
    apps.get_model("channels_app", "ContentRuleSettings").objects.filter(pk=1).delete()


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0003_content_rule_settings")]

    operations = [migrations.RunPython(create_default_content_rules, delete_content_rules)]
