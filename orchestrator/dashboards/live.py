"""Live updates of the cadence dashboard.

With a channel layer that crosses processes (Redis, ``REDIS_URL``), the ledger's listener
announces after commit that the rollups changed, to the group every open dashboard joined
(``consumers.CadenceConsumer``); the page then re-fetches its panels, at most every
``REFRESH_SECONDS``. The in-memory layer reaches no other process (a worker's sends would
never arrive), so then nothing is announced and the page polls every ``POLL_SECONDS``.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction

GROUP = "dashboards.cadence"
EVENT = "dashboard.dirty"
POLL_SECONDS = 30
REFRESH_SECONDS = 5

log = logging.getLogger(__name__)


def pushes_live() -> bool:
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    return bool(backend) and not backend.endswith("InMemoryChannelLayer")


def announce_change() -> None:
    if pushes_live():
        transaction.on_commit(_send, robust=True)


def _send() -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(GROUP, {"type": EVENT})
    except Exception:  # an unreachable Redis must never fail a send; the page still polls rarely
        log.warning("cadence dashboard: could not announce a change", exc_info=True)
