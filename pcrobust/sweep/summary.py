"""The terminal summary of a sweep: per section, rows = grid points, one column per series with its value at the
last timestep and, in brackets, the change from t = 0; then the skipped points and their reasons. Pure: it
returns plain text laid out by ``rich``."""

from __future__ import annotations

import io
import shutil
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pcrobust.summary import DEFAULT_WIDTH
from pcrobust.sweep.cells import Cell, SeriesCells, series_cells


def _cell_text(cell: Cell | None) -> str:
    if cell is None or cell.value is None:
        return "–"
    change = f" ({cell.change:+.3f})" if cell.change is not None else ""
    return f"{cell.value:.3f}{change}"


def _section_table(document: dict[str, Any], series: list[SeriesCells]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1), expand=False)
    for key in document["grid"]:
        table.add_column(key, justify="right", no_wrap=True)
    for item in series:
        table.add_column(item.label, justify="right", no_wrap=True)
    for point in document["points"]:
        if point["status"] != "done":
            continue
        values = [f"{point['values'][key]:g}" for key in document["grid"]]
        table.add_row(*values, *(_cell_text(item.cells.get(point["folder"])) for item in series))
    return table


def render_sweep_summary(document: dict[str, Any], width: int | None = None) -> str:
    """The summary of a ``pcrobust.sweep/1`` document as plain text, ``width`` columns wide at most."""
    if width is None:
        width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 20), force_terminal=False, color_system=None,
                      highlight=False, emoji=False, markup=False)
    last = document["timesteps"][-1] if document.get("timesteps") else "T"
    by_section: dict[str, list[SeriesCells]] = {}
    for item in series_cells(document):
        by_section.setdefault(item.section_id, []).append(item)
    for index, series in enumerate(by_section.values()):
        if index:
            console.print()
        console.print(Text(f"{series[0].section_title} [{series[0].section_id}] · {series[0].metric} at t={last} "
                           "(change from t=0)"))
        console.print(_section_table(document, series))
    skipped = [point for point in document["points"] if point["status"] == "skipped"]
    if skipped:
        console.print()
        for point in skipped:
            console.print(Text(f"skipped {point['folder']}: {point['reason']}"))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"
