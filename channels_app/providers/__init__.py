"""Provider adapters behind one interface, and the one way to pick one: ``get_provider()``.

``settings.CHORUS_PROVIDERS`` maps each channel to a provider name; PROVIDERS maps each
name to its class. Nothing else chooses a provider.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from channels_app.providers.base import (
    Delivery,
    Provider,
    ProviderConfigValues,
    ProviderError,
    SendResult,
)
from channels_app.providers.outbox import OutboxProvider
from customers.enums import Channel

__all__ = ["PROVIDERS", "Delivery", "Provider", "ProviderConfigValues", "ProviderError", "SendResult", "get_provider"]

PROVIDERS: dict[str, type[Provider]] = {
    OutboxProvider.name: OutboxProvider,
}


def get_provider(channel: str) -> Provider:
    """The provider configured for a channel; fails loudly, naming the setting, when unknown."""
    channel = Channel(channel)
    name = settings.CHORUS_PROVIDERS.get(channel.value)
    if name not in PROVIDERS:
        raise ImproperlyConfigured(
            f"CHORUS_PROVIDERS[{channel.value!r}] is {name!r}; expected one of {', '.join(sorted(PROVIDERS))}"
        )
    return PROVIDERS[name]()
