"""Small presentation filters shared by Chorus pages."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """'3 hours ago', with one unit only (naturaltime says '2 days, 21 hours ago')."""
    if not value:
        return ""
    if value > timezone.now():
        return "just now"
    text = timesince(value, depth=1)
    return "just now" if text.startswith("0\xa0") else f"{text} ago"
