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
    # The carrier-level opt-out: the customer texted STOP. Set on both SMS categories at
    # once (customers.consent.do_record_sms_stop); START (do_record_sms_start) lifts it.
    STOPPED = "stopped", "Replied STOP"


# Statuses under which nothing of that category may be sent on that channel.
BLOCKING_CONSENT = frozenset(
    {
        ConsentStatus.OPTED_OUT,
        ConsentStatus.UNSUBSCRIBED,
        ConsentStatus.BOUNCED,
        ConsentStatus.COMPLAINED,
        ConsentStatus.STOPPED,
    }
)
# Statuses that end every message on the channel, whichever category they were recorded
# on: a bounce (a fact about the address) and a STOP (no more SMS of any kind).
CHANNEL_WIDE_CONSENT = frozenset({ConsentStatus.BOUNCED, ConsentStatus.STOPPED})


class PushPlatform(models.TextChoices):
    WEB = "web", "Web Push"
    ANDROID = "android", "Android (FCM)"
    IOS = "ios", "iOS (FCM)"
