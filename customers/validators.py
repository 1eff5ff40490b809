"""Field validators shared by models, the API and the admin."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

from django.core.exceptions import ValidationError

# ASCII digits only (``\d`` would take ``+1٤١٥…``, whose hash differs from the ASCII number,
# so the suppression list would miss it) and ``\Z`` (``$`` also matches before a final newline).
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}\Z")


def validate_e164(value: str) -> None:
    if value:
        canonical_e164(value)


def canonical_e164(value: str) -> str:
    """The number in canonical E.164 form (``+442079460000`` for ``+4402079460000``), or
    ValidationError if it is not one."""
    if not _E164.match(value):
        raise ValidationError("must be an E.164 phone number: '+', country code, number, 8–15 digits (e.g. +14155550100)")
    import phonenumbers

    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"is not a phone number ({exc})") from None
    if not phonenumbers.is_possible_number(parsed):
        raise ValidationError("is not a possible phone number for its country code")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value and value not in _timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name (e.g. America/New_York)")
