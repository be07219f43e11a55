"""What a ``gradcam`` section adds to a run's outputs: heat maps per timestep, its statistics per timestep, its
table in the report, and all its maps as ``<section>-maps.npz``; everything is drawn from the results document."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pcrobust.document import as_dict, as_list, is_number
from pcrobust.files import atomic_write_bytes

KIND = "gradcam"
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


def gradcam_html(entry: dict[str, Any], timesteps: list[Any]) -> str:
    """How the maps were made and their statistics per timestep (HTML)."""
    from pcrobust.html_report import _e, _facts, _measure_table

    metrics = as_dict(entry.get("map_statistics"))
    iou = metrics.get("iou")
    rows = [("layer", _e(entry.get("layer", ""))), ("explained class", _e(entry.get("target", ""))),
            ("images", _e(entry.get("images", ""))), ("calls and timesteps", _e(entry.get("calls", ""))),
            ("region", _e(entry.get("region", ""))),
            ("IoU", _e(entry.get("iou_definition") or entry.get("iou", "")))]
    bootstrap = as_dict(entry.get("bootstrap"))
    if bootstrap:
        rows.append(("IoU intervals", _e(f"{bootstrap.get('method')} bootstrap over {bootstrap.get('over')}, "
                                         f"{bootstrap.get('resamples')} resamples, seed {bootstrap.get('seed')}")))
    table: list[tuple[str, Any, Any]] = [("mean peak of the map", as_dict(metrics.get("peak")).get("mean"), None),
             ("mean area of the region", as_dict(metrics.get("area")).get("mean"), None),
             ("mean similarity to t=0", as_dict(metrics.get("similarity_to_t0")).get("mean"), None)]
    if isinstance(iou, dict):
        table += [("mean IoU", iou.get("mean"), iou.get("interval")),
                  ("mean IoU / mean IoU at t=0", iou.get("normalised_by_t0"), None)]
    return "<h3>Grad-CAM maps</h3>" + _facts(rows) + _measure_table("map statistics per timestep", table, timesteps)


def maps_arrays(entry: dict[str, Any], timesteps: Sequence[int]) -> dict[str, np.ndarray] | None:
    """The section's maps as arrays: ``maps`` ``[N, T+1, h, w]``, ``indices``, ``labels``, ``classes``
    ``[N, T+1]``, ``timesteps`` and, with masks, ``iou`` ``[N, T+1]``; ``None`` when it holds no maps."""
    maps = as_dict(entry.get("maps"))
    values = as_list(maps.get("values"))
    if not values:
        return None
    arrays: dict[str, np.ndarray] = {"timesteps": np.asarray(timesteps, dtype=np.int64),
              "indices": np.asarray(maps.get("indices"), dtype=np.int64),
              "labels": np.asarray(maps.get("labels"), dtype=np.int64),
              "classes": np.asarray(maps.get("classes"), dtype=np.int64),
              "maps": np.asarray(values, dtype=np.float32)}
    if as_list(maps.get("iou")):
        arrays["iou"] = np.asarray(maps["iou"], dtype=np.float64)
    return arrays


def write_maps(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """``<section>-maps.npz`` for every gradcam section of ``results``; returns the files written."""
    from pcrobust.plots import entry_slugs

    timesteps = [int(t) for t in as_list(results.get("timesteps")) if is_number(t)]
    written = []
    for entry, stem in entry_slugs(results):
        arrays = maps_arrays(entry, timesteps) if entry.get("kind") == KIND else None
        if arrays is not None:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
            written.append(atomic_write_bytes(Path(out_dir) / f"{stem}-maps.npz", buffer.getvalue()))
    return written
