"""Section kind ``reconstruction``: how close the model's reconstruction of a (noisy) image comes to the clean image
at each timestep (Predify, Fig. 2b), and the per-layer reconstruction errors the model reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field

from pcrobust.engine import full_precision
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
from pcrobust.models import TimestepOutput, evaluation_mode
from pcrobust.run.context import RunContext
from pcrobust.sections import Measure, Section, SectionKind, SectionOptions, SectionResult, Unit

PROTOCOL = ("per image and timestep t, with the model given the noisy copy: the MSE (mean over C·H·W) between its "
            "reconstruction of the image at t (its first decoder's prediction) and the clean image, both in the "
            "space the model reconstructs (reconstruction_target: the normalised image for a model that "
            "normalises inside); and each layer's reconstruction error as the model reports it (against its own, "
            "noisy, input). Means over images, also divided by their value at t=0")
IMAGE_PANEL = "image: reconstruction vs the clean image"


class ReconstructionOptions(AnalysisOptions):
    sigmas: tuple[Annotated[float, Field(ge=0)], ...] = Field(
        (0.0, 0.1, 0.2, 0.3), min_length=1, description="Gaussian σ of the model's input, pixel units (0: clean)")


def _options(section: Section) -> ReconstructionOptions:
    assert isinstance(section.options, ReconstructionOptions)
    return section.options


def _layer_panel(layer: int) -> str:
    return f"layer {layer}: the model's reconstruction error"


def image_mse(reconstructions: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per timestep and image, the MSE over C·H·W between ``[T+1, B, C, H, W]`` reconstructions and a ``[B, C, H, W]``
    target, in float64: ``[T+1, B]``."""
    return (reconstructions.double() - target.double().unsqueeze(0)).pow(2).flatten(2).mean(2)


class Reconstruction(SectionKind):
    name = "reconstruction"
    description = "per timestep, the MSE between the model's reconstruction and the clean image, and layer errors"
    options = ReconstructionOptions

    def title(self, options: SectionOptions) -> str:
        return "reconstruction error"

    def check(self, options: SectionOptions, context: RunContext) -> None:
        with evaluation_mode(context.model), torch.no_grad():
            output = context.model.unroll(probe(context), 0, reconstructions=True, errors=True)
        if output.reconstructions is None and output.reconstruction_errors is None:
            raise PcrobustError("the model offers neither reconstructions nor reconstruction errors "
                                "(TimestepOutput), which this section measures")

    def units(self, section: Section, context: RunContext) -> list[Unit]:
        return analysis_units(context, _options(section).n)

    def run_unit(self, section: Section, unit: Unit, context: RunContext) -> dict[str, Any]:
        indices = list(unit.indices)
        clean = context.data.images[indices]
        model = context.model
        by_sigma = []
        for sigma in _options(section).sigmas:
            noisy = noisy_copies(clean, sigma, indices, context.seed)
            images: list[torch.Tensor] = []
            layers: list[torch.Tensor] = []
            with torch.no_grad():
                for x, target in zip(batches(noisy, context), batches(clean, context), strict=True):
                    output: TimestepOutput = model.unroll(x, context.timesteps, reconstructions=True, errors=True)
                    if output.reconstructions is not None:
                        images.append(image_mse(full_precision(output.reconstructions),
                                                full_precision(model.reconstruction_target(target))).cpu())
                    if output.reconstruction_errors is not None:
                        layers.append(output.reconstruction_errors.double().cpu())
            by_sigma.append({
                "sigma": sigma,
                "image": as_rows(torch.cat(images, 1)) if images else None,
                "layers": [as_rows(per_layer) for per_layer in torch.cat(layers, 2).unbind(1)] if layers else None,
            })
        return {"indices": indices, "by_sigma": by_sigma}

    def assemble(self, section: Section, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]],
                 timesteps: int) -> SectionResult:
        options = _options(section)
        indices = [i for _, outcome in outcomes for i in outcome["indices"]]
        measures: list[Measure] = []
        offered = {"reconstructions": True, "reconstruction_errors": True}
        for position, sigma in enumerate(options.sigmas):
            parts = [outcome["by_sigma"][position] for _, outcome in outcomes]
            if parts and all(part["image"] is not None for part in parts):
                rows = np.asarray([row for part in parts for row in part["image"]], dtype=np.float64)
                measures.append(Measure(f"image, σ={sigma:g}", {"sigma": sigma, "layer": "image"},
                                        "reconstruction_mse", IMAGE_PANEL, indices, rows.reshape(len(indices), -1)))
            else:
                offered["reconstructions"] = False
            if parts and all(part["layers"] is not None for part in parts):
                for layer in range(len(parts[0]["layers"])):
                    rows = np.asarray([row for part in parts for row in part["layers"][layer]], dtype=np.float64)
                    measures.append(Measure(f"layer {layer + 1}, σ={sigma:g}", {"sigma": sigma, "layer": layer + 1},
                                            "reconstruction_error", _layer_panel(layer + 1), indices,
                                            rows.reshape(len(indices), -1)))
            else:
                offered["reconstruction_errors"] = False
        fields = {"protocol": PROTOCOL, "noise": NOISE_PROTOCOL, "sigmas": list(options.sigmas),
                  "normalisation": "each mean divided by its value at t=0 (Predify, Fig. 2b)",
                  "not_offered": [name for name, given in offered.items() if not given]}
        return SectionResult(fields, [], measures)
