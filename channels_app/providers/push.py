"""One push configuration for every kind of device: Web Push for browsers, FCM for apps.

A provider is configured per channel, and failover moves between configurations of one
channel when a provider is down. A customer's push subscription may be a browser's or a
phone's, and only Web Push reaches the first, only FCM the second: they are not
alternatives to fail over between, but halves of one channel. So the "push" adapter holds
both sets of credentials and sends each subscription through the half for its platform.
"webpush" and "fcm" remain registered on their own for a product with only one kind of
device; each refuses the other kind's subscriptions permanently.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import ClassVar

from channels_app.providers.base import Delivery, SendResult
from channels_app.providers.fcm import FcmProvider
from channels_app.providers.fields import ProviderField as Field
from channels_app.providers.push_common import PushAdapter, Subscription
from channels_app.providers.webpush import WebPushProvider


def _union(*groups: tuple[Field, ...]) -> tuple[Field, ...]:
    """Both halves' fields, each once; none required, since a product may use one half."""
    merged: dict[str, Field] = {}
    for field in (field for group in groups for field in group):
        merged.setdefault(field.name, replace(field, required=False))
    return tuple(merged.values())


class PushProvider(PushAdapter):
    name = "push"
    platforms = WebPushProvider.platforms | FcmProvider.platforms
    option_fields: ClassVar[tuple[Field, ...]] = _union(WebPushProvider.option_fields, FcmProvider.option_fields)
    secret_fields: ClassVar[tuple[Field, ...]] = _union(WebPushProvider.secret_fields, FcmProvider.secret_fields)

    def send_to(self, delivery: Delivery, subscription: Subscription) -> SendResult:
        half = self._web if subscription.platform in WebPushProvider.platforms else self._fcm
        return half.send_to(delivery, subscription)

    @cached_property
    def _web(self) -> WebPushProvider:
        web = WebPushProvider(self.config)
        web.timeout = self.timeout
        return web

    @cached_property
    def _fcm(self) -> FcmProvider:
        fcm = FcmProvider(self.config)
        fcm.timeout = self.timeout
        return fcm
