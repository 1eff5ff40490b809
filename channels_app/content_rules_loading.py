"""The stored content rules as the frozen ``RuleSet`` the checks read, cached because every send reads it.

Cached per process for ``TTL_SECONDS`` and invalidated everywhere through a shared
generation (see ``channels_app.cached``): ``forget_rules()``, run by the admin on commit,
clears this process at once and every other one within ``TTL_SECONDS``.

A stored value that fails validation (written around the admin, e.g. from a shell) is
logged and replaced by its default, rule by rule: a bad row must not stop every send.
"""

from __future__ import annotations

import logging

from channels_app.cached import GenerationCached
from channels_app.content_rules import DEFAULT_RULES, RuleSet, rule_errors
from channels_app.models import ContentRuleSettings

TTL_SECONDS = 5.0
GENERATION_KEY = "chorus:content-rules:generation"

logger = logging.getLogger(__name__)


def load_rules() -> RuleSet:
    """The current content rules (one small read at most, and usually none)."""
    return _cached.load()


def forget_rules() -> None:
    """Drop the cached content rules here and, through a new generation, in every process."""
    _cached.forget()


def read_rules() -> RuleSet:
    """The rules straight from the database, uncached; the defaults when there is no row."""
    row = ContentRuleSettings.objects.filter(pk=ContentRuleSettings.SINGLETON_PK).first()
    if row is None:
        return DEFAULT_RULES
    values = row.rule_values()
    errors = rule_errors(values)
    if errors:
        logger.error("Stored content rules are invalid, defaults used instead: %s", "; ".join(errors.values()))
    return RuleSet.from_mapping({name: value for name, value in values.items() if name not in errors})


_cached = GenerationCached(GENERATION_KEY, read_rules, ttl=TTL_SECONDS)
