"""Provider adapters behind one interface, and the one way to pick them: ``get_providers()``.

The Admin role configures provider accounts per channel (``ProviderConfig``: one primary,
optional failover order). ``get_providers(channel)`` answers the enabled ones, primary
first, each adapter built from its row's values; with no row for a channel it falls back
to ``settings.CHORUS_PROVIDERS`` (the development outbox). ``get_provider(channel)`` is
the first of them. PROVIDERS maps each adapter's name to its class: adding a provider is
one module, one line here and one test file (see CONTRIBUTING.md).

The rows are cached per process (``channels_app.cached``) so a send does not read and
decrypt them every batch; the admin calls ``forget_provider_configs`` on commit.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from channels_app.cached import GenerationCached
from channels_app.models import ProviderConfig
from channels_app.providers.base import (
    Delivery,
    Provider,
    ProviderConfigValues,
    ProviderError,
    SendResult,
)
from channels_app.providers.email import AnymailProvider, SmtpProvider
from channels_app.providers.fcm import FcmProvider
from channels_app.providers.fields import ProviderField, declared_fields
from channels_app.providers.inapp import InAppProvider
from channels_app.providers.outbox import OutboxProvider
from channels_app.providers.push import PushProvider
from channels_app.providers.twilio import TwilioProvider
from channels_app.providers.webpush import WebPushProvider
from customers.enums import Channel

__all__ = [
    "PROVIDERS", "Delivery", "Provider", "ProviderConfigValues", "ProviderError", "ProviderField", "SendResult",
    "declared_fields", "forget_provider_configs", "get_provider", "get_providers", "provider_choices",
]

PROVIDERS: dict[str, type[Provider]] = {
    OutboxProvider.name: OutboxProvider,
    PushProvider.name: PushProvider,
    WebPushProvider.name: WebPushProvider,
    FcmProvider.name: FcmProvider,
    InAppProvider.name: InAppProvider,
    SmtpProvider.name: SmtpProvider,
    AnymailProvider.name: AnymailProvider,
    TwilioProvider.name: TwilioProvider,
}

TTL_SECONDS = 5.0
GENERATION_KEY = "chorus:provider-configs:generation"


def get_providers(channel: str) -> list[Provider]:
    """The channel's providers in the order to try them: configured ones, else the settings' one."""
    channel = Channel(channel)
    rows = _cached.load().get(channel.value, ())
    configured = [PROVIDERS[values.name](values) for values in rows if values.name in PROVIDERS]
    if rows and not configured:
        # Never fall back to the outbox here: messages would be "sent" nowhere.
        names = ", ".join(sorted({values.name for values in rows}))
        raise ImproperlyConfigured(f"{channel.label}: the enabled provider configurations name unregistered providers ({names})")
    return configured or [_from_settings(channel)]


def get_provider(channel: str) -> Provider:
    """The provider to try first for a channel; fails loudly, naming the setting, when unknown."""
    return get_providers(channel)[0]


def provider_choices(channel: str | None = None) -> list[tuple[str, str]]:
    """(name, name) for the adapters sending on ``channel`` (every adapter when None)."""
    return [(name, name) for name, adapter in sorted(PROVIDERS.items()) if channel is None or channel in adapter.channels]


def forget_provider_configs() -> None:
    """Drop the cached configurations here and, through a new generation, in every process."""
    _cached.forget()


def _from_settings(channel: Channel) -> Provider:
    name = settings.CHORUS_PROVIDERS.get(channel.value)
    if name not in PROVIDERS:
        raise ImproperlyConfigured(
            f"CHORUS_PROVIDERS[{channel.value!r}] is {name!r}; expected one of {', '.join(sorted(PROVIDERS))}"
        )
    return PROVIDERS[name]()


def read_provider_configs() -> dict[str, tuple[ProviderConfigValues, ...]]:
    """channel → the enabled rows' values (secrets decrypted), primary first, then by failover order.

    A row naming an adapter no longer registered is kept here; ``get_providers`` skips it.
    """
    by_channel: dict[str, list[ProviderConfigValues]] = {}
    rows = ProviderConfig.objects.filter(enabled=True).order_by("channel", "-is_primary", "failover_order", "id")
    for row in rows:
        by_channel.setdefault(row.channel, []).append(row.values())
    return {channel: tuple(values) for channel, values in by_channel.items()}


_cached = GenerationCached(GENERATION_KEY, read_provider_configs, ttl=TTL_SECONDS)
