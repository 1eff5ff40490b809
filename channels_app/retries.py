"""One channel's claimed messages through its providers: failover, retries, breaker, rate.

For each provider of ``get_providers(channel)`` in order (primary first): skip it while
its circuit is open; take a rate-limit token per message (none left: back to the queue
for the next second, no attempt used); send; then judge each outcome:

- sent: recorded sent (the caller writes all of them in one statement);
- a permanent refusal: failed, without failover (the address or content is bad, and
  another provider of the channel would refuse it too);
- a transient failure: on to the next provider in the same attempt;
- ambiguous (the request may have left: ProviderError.ambiguous or any other exception):
  a marketing message is marked unknown and never resent; a transactional one is resent
  later, under the same idempotency key and through that same provider only, when the
  provider honours the key; otherwise unknown.

A message no provider took is put back in the queue with capped exponential backoff
and full jitter (at least the provider's Retry-After), or failed once its attempts are
used up. Waiting for an open circuit uses no attempt: an outage must not fail messages
that never reached a provider. recover_stranded picks queued messages up when due.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings

from channels_app import ratelimit
from channels_app.breaker import Breaker
from channels_app.ledger import IllegalTransition, do_requeue_message, do_transition_message
from channels_app.models import Message, MessageStatus
from channels_app.providers import Delivery, Provider, ProviderError, SendResult
from customers.enums import Category

logger = logging.getLogger(__name__)
S = MessageStatus
Outcome = SendResult | Exception


def backoff_seconds(attempts: int, retry_after: float | None = None, *, rng: random.Random | None = None) -> float:
    """The wait before the next attempt, after ``attempts`` failed ones (0 for the first).

    Full jitter over a capped exponential: uniform in [0, min(cap, base·2^attempts)], so
    many messages failing at once spread out instead of retrying in step. A provider's
    Retry-After is a floor.
    """
    ceiling = min(settings.CHORUS_RETRY_CAP_SECONDS, settings.CHORUS_RETRY_BASE_SECONDS * 2**attempts)
    return max((rng or random).uniform(0, ceiling), retry_after or 0.0)


def call_provider(provider: Provider, deliveries: Sequence[Delivery]) -> list[Outcome]:
    """The provider's outcomes, one per delivery; if the batch call itself breaks, that error for each."""
    try:
        outcomes = provider.send_batch(list(deliveries))
    except Exception as error:
        logger.exception("%s provider: send_batch raised", provider.name)
        return [error] * len(deliveries)
    if len(outcomes) != len(deliveries):
        error = RuntimeError(f"send_batch answered {len(outcomes)} outcomes for {len(deliveries)} messages")
        logger.error("%s provider: %s", provider.name, error)
        return [error] * len(deliveries)
    return outcomes


def finish(message_id: int, status: str, now: datetime | None, **fields) -> str:
    try:
        return do_transition_message(message_id, status, at=now, **fields).status
    except IllegalTransition as error:
        # A receipt (a bounce, say) moved the message on while we were sending: it wins.
        logger.warning("%s; keeping the receipt's status", error)
        return error.from_status


def is_ambiguous(error: Exception) -> bool:
    return not isinstance(error, ProviderError) or error.ambiguous


def describe(error: Exception) -> str:
    if isinstance(error, ProviderError):
        return error.reason
    return f"provider raised {type(error).__name__}: {error}"


class ChannelRun:
    """One delivery attempt of one channel's claimed messages (see the module docstring)."""

    def __init__(self, providers: list[Provider], clock: datetime, at: datetime | None):
        self.providers, self.clock, self.at = providers, clock, at
        self.sent: list[tuple[int, str, str]] = []
        self.config_ids: dict[int, int] = {}  # message id → the ProviderConfig that sent it
        self.statuses: dict[int, str] = {}
        self.errors: dict[int, ProviderError] = {}  # the last transient error per message
        self.waiting: set[int] = set()  # passed over only because circuits were open

    def deliver(self, items: list[tuple[Message, Delivery]]) -> dict[int, str]:
        messages = {message.pk: message for message, _ in items}
        pending = []
        for message, delivery in items:
            if any(_may_use(message, provider) for provider in self.providers):
                pending.append(delivery)
            else:  # it may have reached a provider no longer configured: resending could duplicate
                detail = f"ambiguous earlier via {message.provider}, which is no longer configured; not resent"
                self.statuses[message.pk] = finish(message.pk, S.UNKNOWN, self.at, detail=detail)
        for provider in self.providers:
            if not pending:
                break
            mine = [d for d in pending if _may_use(messages[d.message_id], provider)]
            others = [d for d in pending if not _may_use(messages[d.message_id], provider)]
            pending = others + self._through(provider, mine, messages)
        for delivery in pending:
            self._not_taken(messages[delivery.message_id])
        return self.statuses

    def _through(self, provider: Provider, deliveries: list[Delivery], messages: dict[int, Message]) -> list[Delivery]:
        """Send what this provider will take now; return what should try the next provider."""
        ready = [d for d in deliveries if self._token(provider, messages[d.message_id])]
        breaker = Breaker.for_provider(provider)
        untried = ready
        while untried and breaker.allow(self.clock):
            size = len(untried) if breaker.healthy() else 1
            chunk, untried = untried[:size], untried[size:]
            for delivery, outcome in zip(chunk, call_provider(provider, chunk), strict=True):
                self._judge(provider, breaker, messages[delivery.message_id], outcome)
        self.waiting.update(d.message_id for d in untried)
        return [d for d in ready if d.message_id in self.errors or d.message_id in self.waiting]

    def _token(self, provider: Provider, message: Message) -> bool:
        if ratelimit.take(provider, self.clock):
            return True
        self._requeue(message, ratelimit.next_window(self.clock), f"rate limit of {provider.name}", count=False)
        return False

    def _judge(self, provider: Provider, breaker: Breaker, message: Message, outcome: Outcome) -> None:
        self.waiting.discard(message.pk)
        if isinstance(outcome, SendResult):
            breaker.record_success()
            self.errors.pop(message.pk, None)
            self.sent.append((message.pk, provider.name, outcome.provider_message_id))
            if provider.config.config_id is not None:
                self.config_ids[message.pk] = provider.config.config_id
        elif isinstance(outcome, ProviderError) and outcome.permanent and not outcome.ambiguous:
            breaker.record_success()  # the provider answered: it is up
            self.errors.pop(message.pk, None)
            self.statuses[message.pk] = finish(message.pk, S.FAILED, self.at, detail=outcome.reason, provider=provider.name)
        elif is_ambiguous(outcome):
            breaker.record_failure(self.clock)
            self.errors.pop(message.pk, None)
            self._ambiguous(provider, message, outcome)
        else:
            breaker.record_failure(self.clock)
            self.errors[message.pk] = outcome

    def _ambiguous(self, provider: Provider, message: Message, error: Exception) -> None:
        detail = describe(error)
        resend = message.category == Category.TRANSACTIONAL and provider.honours_idempotency_key
        if resend and message.attempts + 1 < settings.CHORUS_RETRY_MAX_ATTEMPTS:
            when = self.clock + timedelta(seconds=backoff_seconds(message.attempts))
            self._requeue(message, when, detail, provider=provider)
            return
        logger.warning("message %s: %s via %s; marking unknown, not resending", message.pk, detail, provider.name)
        self.statuses[message.pk] = finish(message.pk, S.UNKNOWN, self.at, detail=detail, provider=provider.name)

    def _not_taken(self, message: Message) -> None:
        """No provider took it: wait for the circuit, retry with backoff, or give up."""
        error = self.errors.get(message.pk)
        if error is None:  # only open circuits stood in the way
            wait = settings.CHORUS_BREAKER_COOLDOWN_SECONDS * random.uniform(1.0, 1.5)
            self._requeue(message, self.clock + timedelta(seconds=wait), "every provider's circuit is open", count=False)
        elif message.attempts + 1 >= settings.CHORUS_RETRY_MAX_ATTEMPTS:
            detail = f"transient: {error.reason} (after {message.attempts + 1} attempts)"
            self.statuses[message.pk] = finish(message.pk, S.FAILED, self.at, detail=detail)
        else:
            when = self.clock + timedelta(seconds=backoff_seconds(message.attempts, error.retry_after))
            self._requeue(message, when, f"transient: {error.reason}")

    def _requeue(self, message: Message, when: datetime, error: str, *, count: bool = True, provider=None) -> None:
        moved = do_requeue_message(
            message.pk, next_attempt_at=when, error=error, at=self.at, count_attempt=count,
            provider=provider.name if provider else message.provider,
            provider_config_id=provider.config.config_id if provider else message.provider_config_id,
        )
        self.statuses[message.pk] = S.QUEUED if moved else _status(message.pk)


def _may_use(message: Message, provider: Provider) -> bool:
    """A queued message with a provider set may have reached it: resend there only."""
    if not message.provider:
        return True
    pinned_config = message.provider_config_id
    return message.provider == provider.name and (pinned_config is None or pinned_config == provider.config.config_id)


def _status(message_id: int) -> str:
    return Message.objects.filter(pk=message_id).values_list("status", flat=True).first() or ""
