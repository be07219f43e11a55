"""Section kind ``noise``: accuracy per timestep under additive Gaussian noise, one series per σ."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field

from pcrobust.engine import add_gaussian_noise, standard_normal_per_image
from pcrobust.kinds.common import chunk_units, correct_per_image, stacked
from pcrobust.run.context import RunContext
from pcrobust.sections import Section, SectionKind, SectionOptions, SectionResult, Series, Unit

PROTOCOL = ("x + σ·z clipped to [0, 1]; σ in pixel units of images in [0, 1]; z ~ N(0, I) drawn per image "
            "from a generator seeded by (seed, image index in the dataset), shared across σ")


class NoiseOptions(SectionOptions):
    sigmas: tuple[Annotated[float, Field(ge=0)], ...] = Field(
        (0.1, 0.2, 0.3), min_length=1, description="Gaussian σ, pixel units of images in [0, 1]")


class Noise(SectionKind):
    name = "noise"
    description = "accuracy per timestep under Gaussian noise (pixel σ, clipped to [0, 1])"
    options = NoiseOptions

    def title(self, options: SectionOptions) -> str:
        return "Gaussian noise (pixel σ, clipped)"

    def units(self, section: Section, context: RunContext) -> list[Unit]:
        assert isinstance(section.options, NoiseOptions)
        return [unit for sigma in section.options.sigmas
                for unit in chunk_units(context.chunks(), f"sigma={sigma!r}/", {"sigma": sigma})]

    def run_unit(self, section: Section, unit: Unit, context: RunContext) -> dict[str, Any]:
        indices = list(unit.indices)
        images = context.data.images[indices]
        noisy = add_gaussian_noise(images, float(unit.params["sigma"]),
                                   standard_normal_per_image(images.shape[1:], indices, context.seed))
        logits = context.logits(noisy, unit.key)
        return {"indices": indices, "correct": correct_per_image(logits, context.data.labels[indices])}

    def assemble(self, section: Section, outcomes: Sequence[tuple[Unit, Mapping[str, Any]]],
                 timesteps: int) -> SectionResult:
        assert isinstance(section.options, NoiseOptions)
        series = []
        for sigma in section.options.sigmas:
            indices, correct = stacked([o for o in outcomes if o[0].params["sigma"] == sigma], "correct")
            series.append(Series(f"σ={sigma:g}", {"sigma": sigma}, "accuracy", True, indices, correct))
        return SectionResult({"protocol": PROTOCOL}, series)
