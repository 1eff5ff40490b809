"""What every panel hands the page and the CSV export: figures, each a table and its chart."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from customers.enums import Channel

CHANNEL_LABELS = dict(Channel.choices)


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple[float, ...]
    key: str = ""  # a channel or status the page colours consistently ("" = by position)


@dataclass(frozen=True)
class Chart:
    kind: str  # "bar" or "line"
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    stacked: bool = False
    horizontal: bool = False
    y_title: str = ""
    links: tuple[str, ...] = ()  # per label: where clicking its bars goes (what its table row links to)

    def config(self) -> dict:
        """The data and options the page's Chart.js reads (static/js/dashboards.js)."""
        return {
            "kind": self.kind, "labels": list(self.labels), "stacked": self.stacked,
            "horizontal": self.horizontal, "yTitle": self.y_title, "links": list(self.links),
            "series": [{"label": s.label, "key": s.key, "values": list(s.values)} for s in self.series],
        }

    @property
    def config_json(self) -> str:
        return json.dumps(self.config())

    @property
    def has_data(self) -> bool:
        return any(v for s in self.series for v in s.values)


@dataclass(frozen=True)
class Link:
    """A table cell that links somewhere (a customer's timeline); CSV writes the text."""

    text: str
    url: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Figure:
    key: str  # unique within its panel; the CSV export names it
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple, ...]
    chart: Chart | None = None
    note: str = ""
    empty: str = "Nothing in this period."

    def csv_rows(self) -> list[list[str]]:
        return [list(self.header), *([_cell(v) for v in row] for row in self.rows)]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return "" if value is None else str(value)


@dataclass(frozen=True)
class PanelInfo:
    key: str
    title: str
    applies: tuple[str, ...] = field(default=("period", "journey", "channel", "category"))


def channel_label(key: str) -> str:
    return CHANNEL_LABELS.get(key, key or "All channels")


def share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def as_of(moment: dt.datetime) -> str:
    return f"As of {moment.astimezone(dt.UTC):%H:%M} UTC."
