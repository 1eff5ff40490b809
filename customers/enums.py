"""Vocabulary shared by every app: channels, message categories and consent states."""

from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"
    IN_APP = "in_app", "In-app"


class Category(models.TextChoices):
    MARKETING = "marketing", "Marketing"
    TRANSACTIONAL = "transactional", "Transactional"


class ConsentStatus(models.TextChoices):
    OPTED_IN = "opted_in", "Opted in"
    OPTED_OUT = "opted_out", "Opted out"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"


# Statuses under which nothing of that category may be sent on that channel.
BLOCKING_CONSENT = frozenset(
    {
        ConsentStatus.OPTED_OUT,
        ConsentStatus.UNSUBSCRIBED,
        ConsentStatus.BOUNCED,
        ConsentStatus.COMPLAINED,
    }
)


class PushPlatform(models.TextChoices):
    WEB = "web", "Web Push"
    ANDROID = "android", "Android (FCM)"
    IOS = "ios", "iOS (FCM)"
