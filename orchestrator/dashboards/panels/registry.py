"""The panels, in page order: key -> module (each with ``INFO`` and ``load``)."""

from __future__ import annotations

from types import ModuleType

from orchestrator.dashboards.panels import fatigue, governor, mix, overlap, pressure, upcoming

PANELS: dict[str, ModuleType] = {m.INFO.key: m for m in (pressure, mix, governor, fatigue, upcoming, overlap)}
