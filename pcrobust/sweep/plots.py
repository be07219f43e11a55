"""Heat maps of a sweep (Agg canvas, nothing process-wide): per section series, the value at the last timestep
and its change from t = 0 over the grid; rows are the first axis, columns the second, each cell annotated and
skipped points marked. A one-axis grid gets the same two panels as curves over the axis."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pcrobust.names import slug
from pcrobust.plots import DPI, figure_png
from pcrobust.sweep.cells import SeriesCells, series_cells
from pcrobust.sweep.grid import Point, canonical_number

SKIPPED_COLOUR = "#3a3a3a"


def _grid(document: dict[str, Any]) -> list[tuple[str, list[float]]]:
    return [(key, [float(v) for v in values]) for key, values in document["grid"].items()]


def _status(document: dict[str, Any]) -> dict[str, str]:
    return {point["folder"]: point["status"] for point in document["points"]}


def _name(values: dict[str, float]) -> str:
    return Point(tuple(values.items())).name


def _matrix(cells: SeriesCells, axes: list[tuple[str, list[float]]], which: str) -> np.ndarray:
    (ykey, ys), (xkey, xs) = axes
    matrix = np.full((len(ys), len(xs)), np.nan)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            cell = cells.cells.get(_name({ykey: y, xkey: x}))
            number = None if cell is None else getattr(cell, which)
            if number is not None:
                matrix[i, j] = number
    return matrix


def _heatmap(ax: Any, matrix: np.ndarray, axes: list[tuple[str, list[float]]], status: dict[str, str],
             change: bool, title: str) -> None:
    (ykey, ys), (xkey, xs) = axes
    ax.set_facecolor(SKIPPED_COLOUR)
    finite = matrix[np.isfinite(matrix)]
    if change:
        bound = max(float(np.abs(finite).max()) if finite.size else 0.0, 0.01)
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-bound, vmax=bound, origin="lower", aspect="auto")
    else:
        image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, origin="lower", aspect="auto")
    ax.figure.colorbar(image, ax=ax, shrink=0.85)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            state = status.get(_name({ykey: y, xkey: x}), "pending")
            if math.isfinite(matrix[i, j]):
                text = f"{matrix[i, j]:+.3f}" if change else f"{matrix[i, j]:.3f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black",
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.6, "linewidth": 0})
            else:
                ax.text(j, i, "skipped" if state == "skipped" else "–", ha="center", va="center", fontsize=8,
                        color="white")
    ax.set_xticks(range(len(xs)), [canonical_number(x) for x in xs])
    ax.set_yticks(range(len(ys)), [canonical_number(y) for y in ys])
    ax.set_xlabel(xkey)
    ax.set_ylabel(ykey)
    ax.set_title(title, fontsize=9)


def _curve(ax: Any, cells: SeriesCells, axis: tuple[str, list[float]], status: dict[str, str], which: str,
           title: str) -> None:
    key, values = axis
    drawn = [(v, getattr(cells.cells[_name({key: v})], which)) for v in values if _name({key: v}) in cells.cells]
    drawn = [(v, number) for v, number in drawn if number is not None]
    if drawn:
        ax.plot([v for v, _ in drawn], [number for _, number in drawn], marker="o", markersize=4)
    if which == "value":
        ax.set_ylim(0, 1)  # rates, on the axis of the runs' own plots
    else:
        ax.axhline(0.0, color="#666666", linewidth=0.8)
    ax.set_xticks(values, [canonical_number(v) for v in values])
    skipped = [v for v in values if status.get(_name({key: v})) == "skipped"]
    for v in skipped:
        ax.axvline(v, color=SKIPPED_COLOUR, linestyle=":", linewidth=1)
    ax.set_xlabel(key + (" (dotted: skipped)" if skipped else ""))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, linewidth=0.6)


def sweep_figure(document: dict[str, Any], cells: SeriesCells) -> Figure:
    """The value at the last timestep and its change from t = 0 of one series, side by side."""
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    last = document["timesteps"][-1]
    axes, status = _grid(document), _status(document)
    titles = (f"{cells.metric} at t={last}", f"change from t=0 at t={last}")
    for position, (which, title) in enumerate(zip(("value", "change"), titles, strict=True)):
        ax = fig.add_subplot(1, 2, position + 1)
        if len(axes) == 2:
            _heatmap(ax, _matrix(cells, axes, which), axes, status, which == "change", title)
        else:
            _curve(ax, cells, axes[0], status, which, title)
    model = document.get("model") or document["plan"]["model"]
    fig.suptitle(f"{cells.section_title} [{cells.section_id}] · {cells.label} · {model['plugin']}"
                 f"{' ' + model['name'] if model.get('name') else ''}", fontsize=10)
    return fig


def write_sweep_plots(document: dict[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per section series (``sweep-<section>-<series>.png``) in ``out_dir``; returns the files written."""
    written: list[Path] = []
    for cells in series_cells(document):
        path = out_dir / f"sweep-{slug(cells.section_id)}-{slug(cells.label)}.png"
        if path in written:
            path = path.with_name(f"{path.stem}-{len(written) + 1}.png")
        path.write_bytes(figure_png(sweep_figure(document, cells), DPI))
        written.append(path)
    return written
