"""The figures of a ``gradcam`` section, drawn from its results entry: heat maps over the images per timestep, and
the maps' statistics per timestep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pcrobust.document import as_dict, as_list

MAX_COLUMNS = 9  # timesteps drawn per image; longer runs show evenly spaced ones, the first and the last included


def shown_timesteps(timesteps: Sequence[int]) -> list[int]:
    """Positions of the timesteps drawn: all of them, or :data:`MAX_COLUMNS` evenly spaced."""
    if len(timesteps) <= MAX_COLUMNS:
        return list(range(len(timesteps)))
    return sorted({round(float(v)) for v in np.linspace(0, len(timesteps) - 1, MAX_COLUMNS)})


def heatmap_figure(entry: dict[str, Any], timesteps: Sequence[int], model: str | None = None) -> Figure | None:
    """Per example image (rows): the image with its mask outlined, then its map at each drawn timestep over the
    image, on one colour scale per row so changes over time show; ``None`` without examples."""
    examples = as_dict(entry.get("examples"))
    maps = as_dict(entry.get("maps"))
    chosen = [int(i) for i in as_list(examples.get("indices"))]
    row_of = {int(index): r for r, index in enumerate(as_list(maps.get("indices")))}
    chosen = [index for index in chosen if index in row_of]
    if not chosen:
        return None
    columns = shown_timesteps(timesteps)
    thumbnails, masks = as_list(examples.get("thumbnails")), as_list(examples.get("masks"))
    fig = Figure(figsize=(1.35 * (len(columns) + 1), 1.45 * len(chosen) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(chosen), len(columns) + 1, squeeze=False)
    for row, index in enumerate(chosen):
        image = np.asarray(thumbnails[row], dtype=np.float64)
        values = np.asarray(maps["values"][row_of[index]], dtype=np.float64)
        top = float(values.max()) or 1.0
        extent = (0.0, float(image.shape[1]), float(image.shape[0]), 0.0)
        mask = np.asarray(masks[row], dtype=np.float64) if row < len(masks) else None
        label = as_list(maps.get("labels"))[row_of[index]]
        for column, ax in enumerate(axes[row]):
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, extent=extent)
            if column:
                t = columns[column - 1]
                ax.imshow(values[t], cmap="jet", alpha=0.5, vmin=0, vmax=top, extent=extent,
                          interpolation="bilinear")
                if row == 0:
                    ax.set_title(f"t={timesteps[t]}", fontsize=8)
            else:
                ax.set_ylabel(f"#{index} (y={label})", fontsize=7)
                if row == 0:
                    ax.set_title("image", fontsize=8)
            if mask is not None and mask.any():
                ax.contour(mask, levels=[0.5], colors="white", linewidths=0.8, extent=extent, origin="upper")
            ax.set_xticks([])
            ax.set_yticks([])
    head = f"{model}: " if model else ""
    outlined = "; mask outlined in white" if masks else ""
    fig.suptitle(f"{head}{entry.get('title', 'Grad-CAM')}\n(one colour scale per image{outlined})", fontsize=9)
    return fig


def statistics_figure(entry: dict[str, Any], timesteps: Sequence[int], model: str | None = None,
                      level: float = 0.95) -> Figure | None:
    """Mean IoU per timestep with its bootstrap band when there are masks; else the maps' mean similarity to
    t = 0 and mean area. ``None`` when the section holds neither."""
    metrics = as_dict(entry.get("map_statistics"))
    iou = as_dict(metrics.get("iou"))
    curves = [("mean IoU with the mask", iou)] if iou else [
        ("mean cosine similarity to the map at t=0", as_dict(metrics.get("similarity_to_t0"))),
        ("mean area (share of pixels in the region)", as_dict(metrics.get("area")))]
    curves = [(name, block) for name, block in curves if len(as_list(block.get("mean"))) == len(timesteps)]
    if not curves:
        return None
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, block in curves:
        line = ax.plot(timesteps, block["mean"], marker="o", markersize=4, label=name)[0]
        interval = as_dict(block.get("interval"))
        if len(as_list(interval.get("low"))) == len(timesteps):
            ax.fill_between(timesteps, interval["low"], interval["high"], color=line.get_color(), alpha=0.18,
                            linewidth=0, label=f"{level:.0%} bootstrap interval")
    ax.set_ylim(0, 1)
    ax.set_xticks(list(timesteps))
    ax.set_xlabel("timestep t (0 = feedforward pass)")
    ax.grid(alpha=0.3, linewidth=0.6)
    head = f"{model}: " if model else ""
    ax.set_title(f"{head}{entry.get('title', 'Grad-CAM')}\n(n={entry.get('images', '?')})", fontsize=10)
    ax.legend(fontsize="small", loc="best")
    return fig


def gradcam_figures(entry: dict[str, Any], timesteps: Sequence[int], model: str | None = None,
                    level: float = 0.95) -> list[tuple[str, Figure]]:
    """The section's own figures: ``("maps", heat maps)`` and ``("iou", ...)`` or ``("maps-stats", ...)``."""
    found = [("maps", heatmap_figure(entry, timesteps, model)),
             ("iou" if as_dict(entry.get("map_statistics")).get("iou") else "maps-stats",
              statistics_figure(entry, timesteps, model, level))]
    return [(kind, fig) for kind, fig in found if fig is not None]
