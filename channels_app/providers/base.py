"""The provider interface: one small class per provider, with one ``send()``.

A provider turns a Delivery (a message already written to the ledger and claimed for
sending) into a real email, SMS, push or in-app card, and answers with its own id for
the message, or raises ProviderError saying whether trying again could help.

Timeouts: every network call a provider makes passes an explicit timeout (``timeout``
below, in seconds; never the library default, which is often "forever"). A send that
times out after the request left may or may not have been delivered: the caller marks
it ``unknown`` unless the provider honours idempotency keys. The development outbox
makes no network call, so it has no timeout to set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One message to hand to a provider: where to, what, and the key it must not repeat."""

    message_id: int
    public_id: str
    channel: str
    category: str
    to: str  # an email address, an E.164 number, a push endpoint or token, or "inbox"
    content: dict
    idempotency_key: str


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


class ProviderError(Exception):
    """The provider refused or failed. ``permanent``: the same send would fail again.

    ``ambiguous``: the request left and no answer came back (a read timeout, a dropped
    connection): it may have been delivered. ``retry_after``: seconds the provider asked
    us to wait (HTTP 429/503 ``Retry-After``)."""

    def __init__(self, reason: str, *, permanent: bool, ambiguous: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.ambiguous = ambiguous
        self.retry_after = retry_after


@dataclass(frozen=True)
class ProviderConfigValues:
    """One configured provider account, as an adapter reads it: plain options (a sender
    address, an API base URL, a messaging service id) and the decrypted secrets (an API
    key, a password). Built from the admin's ProviderConfig rows; tests build it directly."""

    name: str  # the registry key, e.g. "smtp", "twilio"
    options: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    config_id: int | None = None  # the ProviderConfig row, when it came from one


class Provider(ABC):
    name: ClassVar[str]
    # The channels this adapter sends on (the admin offers it only for these).
    channels: ClassVar[frozenset[str]] = frozenset()
    # True only when sending the same idempotency key twice can never deliver twice:
    # then a send interrupted by a crash may simply be sent again.
    honours_idempotency_key: ClassVar[bool] = False
    # Seconds allowed for each network call a provider makes (see the module docstring).
    timeout: ClassVar[float] = 10.0

    def __init__(self, config: ProviderConfigValues | None = None):
        self.config = config or ProviderConfigValues(name=self.name)

    @abstractmethod
    def send(self, delivery: Delivery) -> SendResult:
        """Send once; raise ProviderError on a refusal or failure the provider reported."""

    def send_batch(self, deliveries: Sequence[Delivery]) -> list[SendResult | Exception]:
        """Send each delivery once; one outcome per delivery, in order.

        An outcome is a SendResult, the ProviderError the provider reported (nothing was
        sent), or any other exception the call raised (the provider may have sent). One
        failure never loses the others' outcomes. Providers with a batch API override this.
        """
        outcomes: list[SendResult | Exception] = []
        for delivery in deliveries:
            try:
                outcomes.append(self.send(delivery))
            except Exception as error:  # each outcome is judged by the caller
                outcomes.append(error)
        return outcomes
