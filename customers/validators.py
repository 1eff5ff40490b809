"""Field validators shared by models, the API and the admin."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

from django.core.exceptions import ValidationError

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def validate_e164(value: str) -> None:
    if value and not _E164.match(value):
        raise ValidationError("must be an E.164 phone number: '+', country code, number, 8–15 digits (e.g. +14155550100)")
    if value:
        import phonenumbers

        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException as exc:
            raise ValidationError(f"is not a phone number ({exc})") from None
        if not phonenumbers.is_possible_number(parsed):
            raise ValidationError("is not a possible phone number for its country code")


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value and value not in _timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name (e.g. America/New_York)")
