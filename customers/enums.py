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


def consent_status_problem(channel: str, status: str) -> str | None:
    """Why ``status`` cannot be recorded on ``channel``, or None when it can.

    "Replied STOP" is a fact about SMS (a carrier keyword reply); on any other channel it
    would block sends for a reason nobody could ever lift with START."""
    if status == ConsentStatus.STOPPED and channel != Channel.SMS:
        return f"{ConsentStatus.STOPPED.label!r} applies only to SMS, where an inbound STOP reply sets it"
    return None


def consent_statuses_for(channel: str) -> list[tuple[str, str]]:
    """The statuses a person may choose for ``channel`` (value, label), in enum order."""
    return [(value, label) for value, label in ConsentStatus.choices if consent_status_problem(channel, value) is None]


class PushPlatform(models.TextChoices):
    WEB = "web", "Web Push"
    ANDROID = "android", "Android (FCM)"
    IOS = "ios", "iOS (FCM)"
