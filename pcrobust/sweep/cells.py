"""The numbers a sweep's plots and summary show: per section series, each point's value at the last timestep
and its change from t = 0."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pcrobust.document import is_number


@dataclass(frozen=True)
class Cell:
    """One point of one series: ``value`` at the last timestep and ``change`` from t = 0 (``None``: not scored)."""

    value: float | None
    change: float | None


@dataclass
class SeriesCells:
    """One series of one section over the grid, keyed by point folder name."""

    section_id: str
    section_title: str
    label: str
    metric: str
    cells: dict[str, Cell] = field(default_factory=dict)


def _last(values: Any) -> float | None:
    return float(values[-1]) if isinstance(values, list) and values and is_number(values[-1]) else None


def series_cells(document: dict[str, Any]) -> list[SeriesCells]:
    """Every (section, series) of the finished points, in the order the first finished point lists them."""
    table: dict[tuple[str, str], SeriesCells] = {}
    for point in document["points"]:
        if point["status"] != "done":
            continue
        for section in point["sections"]:
            for series in section["series"]:
                key = (section["id"], series["label"])
                if key not in table:
                    table[key] = SeriesCells(section["id"], section["title"], series["label"],
                                             str(series.get("metric") or "value"))
                table[key].cells[point["folder"]] = Cell(_last(series.get("values")),
                                                         _last(series.get("change_from_t0")))
    return list(table.values())
