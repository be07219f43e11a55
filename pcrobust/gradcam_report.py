"""What a ``gradcam`` section adds to a run's outputs besides its figures (:mod:`pcrobust.gradcam_plots`): its
table in the report, and all its maps as ``<section>-maps.npz``; everything is drawn from the results document."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pcrobust.document import as_dict, as_list, is_number
from pcrobust.files import atomic_write_bytes
from pcrobust.html_parts import escaped, facts, measure_table
from pcrobust.plots import entry_slugs

KIND = "gradcam"


def gradcam_html(entry: dict[str, Any], timesteps: list[Any]) -> str:
    """How the maps were made and their statistics per timestep (HTML)."""
    metrics = as_dict(entry.get("map_statistics"))
    iou = metrics.get("iou")
    rows = [("layer", escaped(entry.get("layer", ""))), ("explained class", escaped(entry.get("target", ""))),
            ("images", escaped(entry.get("images", ""))), ("calls and timesteps", escaped(entry.get("calls", ""))),
            ("region", escaped(entry.get("region", ""))),
            ("IoU", escaped(entry.get("iou_definition") or entry.get("iou", "")))]
    bootstrap = as_dict(entry.get("bootstrap"))
    if bootstrap:
        rows.append(("IoU intervals", escaped(f"{bootstrap.get('method')} bootstrap over {bootstrap.get('over')}, "
                                              f"{bootstrap.get('resamples')} resamples, seed {bootstrap.get('seed')}")))
    table: list[tuple[str, Any, Any]] = [("mean peak of the map", as_dict(metrics.get("peak")).get("mean"), None),
             ("mean area of the region", as_dict(metrics.get("area")).get("mean"), None),
             ("mean similarity to t=0", as_dict(metrics.get("similarity_to_t0")).get("mean"), None)]
    if isinstance(iou, dict):
        table += [("mean IoU", iou.get("mean"), iou.get("interval")),
                  ("mean IoU / mean IoU at t=0", iou.get("normalised_by_t0"), None)]
    return "<h3>Grad-CAM maps</h3>" + facts(rows) + measure_table("map statistics per timestep", table, timesteps)


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
    timesteps = [int(t) for t in as_list(results.get("timesteps")) if is_number(t)]
    written = []
    for entry, stem in entry_slugs(results):
        arrays = maps_arrays(entry, timesteps) if entry.get("kind") == KIND else None
        if arrays is not None:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
            written.append(atomic_write_bytes(Path(out_dir) / f"{stem}-maps.npz", buffer.getvalue()))
    return written
