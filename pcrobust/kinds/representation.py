"""Section kind ``representation``: at each timestep, the correlation distance between each layer's representation
of a clean image and of its noisy copy (Predify, Fig. 2d)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from pcrobust.errors import PcrobustError
from pcrobust.kinds.analysis import (
    NOISE_PROTOCOL,
    AnalysisOptions,
    analysis_units,
    as_rows,
    batches,
    noisy_copies,
    probe,
)
from pcrobust.models import evaluation_mode
from pcrobust.run.context import RunContext
from pcrobust.sections import Measure, Section, SectionKind, SectionOptions, SectionResult, Unit

PROTOCOL = ("per image, layer and timestep t: the correlation distance 1 − r, r the Pearson correlation over the "
            "flattened representations of the clean image and of its noisy copy at t (each run from its own "
            "feedforward pass); undefined where a representation is constant. Means over images, also divided by "
            "their value at t=0")


class RepresentationOptions(AnalysisOptions):
    sigmas: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        (0.1, 0.2, 0.3), min_length=1, description="Gaussian σ of the noisy copies, pixel units")


def _options(section: Section) -> RepresentationOptions:
    assert isinstance(section.options, RepresentationOptions)
    return section.options


def correlation_distance(a: Tensor, b: Tensor) -> Tensor:
    """``1 − r`` per timestep and image of ``[T+1, B, ...]`` representations, r the Pearson correlation over the
    flattened trailing dimensions, in float64: ``[T+1, B]``; NaN where either is constant."""
    x, y = (v.double().flatten(2) for v in (a, b))
    x, y = x - x.mean(2, keepdim=True), y - y.mean(2, keepdim=True)
    scale = torch.sqrt(x.pow(2).sum(2) * y.pow(2).sum(2))
    r = (x * y).sum(2) / torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.where(scale > 0, 1 - r, torch.full_like(r, float("nan")))


def _representations(context: RunContext, x: Tensor, timesteps: int) -> dict[str, Tensor]:
    found = context.model.representations(x, timesteps)
    if found is None:
        raise PcrobustError("the model offers no per-layer representations (TimestepModel.representations), "
                            "which this section compares")
    return found


class Representation(SectionKind):
    name = "representation"
    description = "per layer and timestep, the correlation distance between clean and noisy representations"
    options = RepresentationOptions

    def title(self, options: SectionOptions) -> str:
        return "correlation distance, clean vs noisy representations"

    def check(self, options: SectionOptions, context: RunContext) -> None:
        with evaluation_mode(context.model), torch.no_grad():
            found = _representations(context, probe(context), 0)
        wrong = [name for name, rep in found.items() if rep.dim() < 3 or tuple(rep.shape[:2]) != (1, 1)]
        if not found or wrong:
            raise PcrobustError(f"the model's representations must be [T+1, B, ...] tensors; "
                                f"{wrong[0] if wrong else 'none'} is not")

    def units(self, section: Section, context: RunContext) -> list[Unit]:
        return analysis_units(context, _options(section).n)

    def run_unit(self, section: Section, unit: Unit, context: RunContext) -> dict[str, Any]:
        indices = list(unit.indices)
        clean = context.data.images[indices]
        sigmas = _options(section).sigmas
        distances: list[dict[str, list[Tensor]]] = [{} for _ in sigmas]
        with torch.no_grad():
            for position, x in enumerate(batches(clean, context)):
                start = position * context.batch_size
                reference = _representations(context, x, context.timesteps)
                for s, sigma in enumerate(sigmas):
                    noisy = noisy_copies(clean[start:start + len(x)], sigma, indices[start:start + len(x)],
                                         context.seed).to(context.device)
                    for name, rep in _representations(context, noisy, context.timesteps).items():
                        distances[s].setdefault(name, []).append(correlation_distance(reference[name], rep).cpu())
        layers = list(distances[0])
        return {"indices": indices, "layers": layers,
                "distance": [[as_rows(torch.cat(per_sigma[name], 1)) for name in layers] for per_sigma in distances]}

    def assemble(self, section: Section, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]],
                 timesteps: int) -> SectionResult:
        options = _options(section)
        indices = [i for _, outcome in outcomes for i in outcome["indices"]]
        layers: list[str] = list(outcomes[0][1]["layers"]) if outcomes else []
        measures = []
        for s, sigma in enumerate(options.sigmas):
            for position, layer in enumerate(layers):
                rows = np.asarray([row for _, outcome in outcomes for row in outcome["distance"][s][position]],
                                  dtype=np.float64).reshape(len(indices), -1)
                measures.append(Measure(f"{layer}, σ={sigma:g}", {"sigma": sigma, "layer": layer},
                                        "correlation_distance", layer, indices, rows))
        fields = {"protocol": PROTOCOL, "noise": NOISE_PROTOCOL, "sigmas": list(options.sigmas), "layers": layers,
                  "normalisation": "each mean divided by its value at t=0 (Predify, Fig. 2d)"}
        return SectionResult(fields, [], measures)
