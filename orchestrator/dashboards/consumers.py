"""``ws/dashboards/cadence/``: tells an open cadence dashboard that its numbers changed.

Only people who may see the dashboard join (closed with 4401 signed out, 4403 without the
capability, after accepting so the browser sees the code). Each change announced by
``live.announce_change`` is relayed as ``{"type": "dirty"}``; the page re-fetches its
panels, throttled on its side.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from orchestrator.dashboards.live import GROUP
from orchestrator.roles import Capability, has_capability

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _allowed(user) -> bool:
    return has_capability(user, Capability.VIEW_DASHBOARDS)


class CadenceConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
        elif not await _allowed(user):
            await self._refuse(CLOSE_FORBIDDEN)
        else:  # joined before accepting: a change announced once the page sees "open" reaches it
            await self.channel_layer.group_add(GROUP, self.channel_name)
            self.joined = True
            await self.accept()

    async def _refuse(self, code: int):
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code):
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def dashboard_dirty(self, event):
        await self.send_json({"type": "dirty"})
