"""Section kind ``gradcam``: Grad-CAM maps of one layer at every timestep, and their IoU with segmentation masks.

Per image and timestep it stores the map at the layer's resolution, its peak, its area (the share of image pixels
at or above ``threshold`` × the peak after bilinear upsampling) and its cosine similarity with the map at t = 0;
with masks, the IoU of that area with the mask. Assembly gives means per timestep, a seeded bootstrap interval
of the mean IoU; as series with the core's intervals and tests, the accuracy of the explained images and, with
masks, the localisation rate (IoU ≥ 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import Field

from pcrobust.gradcam import Target, binarised, find_layer, gradcam_per_timestep, iou, similarity_to_first, upsampled
from pcrobust.kinds.common import chunk_units
from pcrobust.models import evaluation_mode
from pcrobust.run.context import RunContext
from pcrobust.sections import Section, SectionKind, SectionOptions, SectionResult, Series, Unit
from pcrobust.stats import bootstrap_interval

LOCALISED_AT = 0.5  # IoU from which a map counts as localising the object (the usual detection criterion)
RESAMPLES = 1000
THUMBNAIL = 64  # largest side of the example images and masks kept for the report's heat maps
CALLS = ("call k (0-based) of the layer in one forward pass is timestep k's activation; the layer must run "
         "T + 1 times (a family that runs its network once per timestep, as Predify does); the activation is the "
         "layer's output after the model's own hooks on it (for a Predify pcoder layer, the pcoder state e_n(t))")


class GradcamOptions(SectionOptions):
    layer: str = Field(min_length=1, description="the module explained, by its name in the model's "
                                                 "named_modules() (e.g. backbone.features.7)")
    target: Target = Field("label", description="class explained: label, or prediction (the argmax at the same "
                                                "timestep)")
    n: int = Field(50, ge=1, description="images explained: the first n evaluated")
    threshold: float = Field(0.5, gt=0, le=1, description="a map's region: pixels ≥ threshold × its peak")
    examples: int = Field(4, ge=0, le=16, description="images whose heat maps the report draws")


def _options(section: Section) -> GradcamOptions:
    assert isinstance(section.options, GradcamOptions)
    return section.options


def _rounded(values: torch.Tensor) -> Any:
    """Nested lists of floats with 7 significant digits (float32 precision, half the JSON)."""
    return np.vectorize(lambda v: float(f"{v:.7g}"), otypes=[float])(values.double().cpu().numpy()).tolist()


def _thumbnails(images: torch.Tensor) -> torch.Tensor:
    """Grey thumbnails ``[N, h, w]`` (mean over channels), the largest side at most :data:`THUMBNAIL`."""
    grey = images.mean(1, keepdim=True)
    scale = min(1.0, THUMBNAIL / max(grey.shape[-2:]))
    size = (max(1, round(grey.shape[-2] * scale)), max(1, round(grey.shape[-1] * scale)))
    return torch.nn.functional.interpolate(grey, size=size, mode="area")[:, 0]


class Gradcam(SectionKind):
    name = "gradcam"
    description = "Grad-CAM maps of a layer per timestep, with their IoU against segmentation masks when the " \
                  "dataset has them"
    options = GradcamOptions

    def title(self, options: SectionOptions) -> str:
        assert isinstance(options, GradcamOptions)
        return f"Grad-CAM of {options.layer} per timestep ({options.target} class)"

    def check(self, options: SectionOptions, context: RunContext) -> None:
        assert isinstance(options, GradcamOptions)
        layer = find_layer(context.model, options.layer)
        probe = context.data.images[:1].to(context.device)
        with evaluation_mode(context.model):  # one image through the layer's calls, before any work
            gradcam_per_timestep(context.model, layer, probe, context.data.labels[:1], context.timesteps,
                                 options.target, options.layer)

    def units(self, section: Section, context: RunContext) -> list[Unit]:
        chosen = context.evaluated[: _options(section).n]
        return chunk_units(list(chosen.split(context.run.images_per_unit)))

    def run_unit(self, section: Section, unit: Unit, context: RunContext) -> dict[str, Any]:
        options = _options(section)
        indices = list(unit.indices)
        layer = find_layer(context.model, options.layer)
        images, labels = context.data.images[indices], context.data.labels[indices]
        maps, classes, predictions = [], [], []
        for batch, batch_labels in zip(images.split(context.batch_size), labels.split(context.batch_size),
                                       strict=True):
            found = gradcam_per_timestep(context.model, layer, batch.to(context.device), batch_labels,
                                         context.timesteps, options.target, options.layer)
            maps.append(found.maps.float().cpu())
            classes.append(found.classes.cpu())
            predictions.append(found.logits.argmax(2).cpu())
        per_t = torch.cat(maps, dim=1)  # [T+1, N, h, w]
        region = binarised(upsampled(per_t, tuple(images.shape[-2:])), options.threshold)  # type: ignore[arg-type]
        outcome: dict[str, Any] = {
            "indices": indices, "labels": labels.tolist(),
            "classes": torch.cat(classes, dim=1).T.tolist(),
            "correct": (torch.cat(predictions, dim=1) == labels).T.int().tolist(),
            "maps": _rounded(per_t.transpose(0, 1)),
            "peak": _rounded(per_t.flatten(2).amax(2).T),
            "area": _rounded(region.flatten(2).double().mean(2).T),
            "similarity_to_t0": _rounded(similarity_to_first(per_t).T),
            "thumbnails": _rounded(_thumbnails(images)),
            "seed": context.seed, "level": context.run.level,
            "dataset": context.data.name, "image_size": list(images.shape[-2:]),
        }
        masks = context.data.masks
        if masks is not None:
            chosen = masks[indices]
            outcome["iou"] = _rounded(iou(region, chosen.unsqueeze(0)).T)
            outcome["mask_thumbnails"] = _rounded(_thumbnails(chosen.unsqueeze(1).float()))
        return outcome

    def assemble(self, section: Section, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]],
                 timesteps: int) -> SectionResult:
        options = _options(section)
        done = [outcome for _, outcome in outcomes]

        def rows(key: str) -> list[Any]:
            return [row for outcome in done for row in outcome[key]]

        indices = rows("indices")
        first: Mapping[str, Any] = done[0] if done else {"seed": 0, "level": 0.95, "dataset": "", "image_size": []}
        seed, level = int(first["seed"]), float(first["level"])
        has_masks = bool(done) and all("iou" in outcome for outcome in done)
        metrics: dict[str, Any] = {}
        for key in ("peak", "area", "similarity_to_t0"):
            values = np.asarray(rows(key), dtype=np.float64).reshape(len(indices), timesteps + 1)
            metrics[key] = {"mean": values.mean(0).tolist() if len(indices) else [],
                            "std": values.std(0).tolist() if len(indices) else []}
        shown = min(options.examples, len(indices))
        fields: dict[str, Any] = {
            "protocol": "Grad-CAM (Selvaraju et al. 2017) of the class score (logit) read out at timestep t with "
                        "respect to the layer's activation at its call of timestep t: ReLU(Σ_c α_c A_t[c]), α_c the "
                        "mean over positions of ∂y_t/∂A_t[c]",
            "layer": options.layer, "target": options.target, "calls": CALLS, "threshold": options.threshold,
            "region": f"the map upsampled bilinearly (align_corners=False) to the image size, pixels ≥ "
                      f"{options.threshold:g} × its peak; an all-zero map has an empty region",
            "images": len(indices), "explained_indices": indices, "map_statistics": metrics,
            "maps": {"indices": indices, "labels": rows("labels"), "classes": rows("classes"),
                     "values": rows("maps")},
            "examples": {"indices": indices[:shown], "thumbnails": rows("thumbnails")[:shown],
                         "masks": rows("mask_thumbnails")[:shown] if has_masks else None},
        }
        correct = np.asarray(rows("correct"), dtype=bool).reshape(len(indices), timesteps + 1)
        series = [Series("explained images: prediction correct", {}, "accuracy", True, indices, correct)]
        if has_masks and indices:
            scores = np.asarray(rows("iou"), dtype=np.float64).reshape(len(indices), timesteps + 1)
            low, high = bootstrap_interval(lambda sample: sample.mean(0), scores, level, seed, RESAMPLES)
            mean = scores.mean(0)
            metrics["iou"] = {"mean": mean.tolist(), "std": scores.std(0).tolist(),
                              "interval": {"low": low, "high": high},
                              "normalised_by_t0": (mean / mean[0]).tolist() if mean[0] > 0 else None}
            fields["iou_definition"] = "|R ∩ M| / |R ∪ M| of the map's region R and the mask M (1 when both are empty)"
            fields["bootstrap"] = {"over": "images", "resamples": RESAMPLES, "seed": seed, "level": level,
                                   "method": "percentile"}
            fields["maps"]["iou"] = scores.tolist()
            series.append(Series(f"IoU ≥ {LOCALISED_AT:g}", {"iou_at_least": LOCALISED_AT}, "localisation_rate",
                                 True, indices, scores >= LOCALISED_AT))
        else:
            fields["iou"] = f"not available: dataset {first['dataset']!r} provides no segmentation masks"
        return SectionResult(fields, series)

