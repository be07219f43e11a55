"""What the analysis sections (``reconstruction``, ``representation``) share: their images, and noisy copies drawn
independently per image from a seed keyed by (run seed, σ, dataset index)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field
from torch import Tensor

from pcrobust.engine import add_gaussian_noise
from pcrobust.kinds.common import chunk_units
from pcrobust.run.context import RunContext
from pcrobust.sections import SectionOptions, Unit
from pcrobust.seeding import derived_seed, float_key, per_item_draws

NOISE_PROTOCOL = ("noisy copy clip(x + σ·z, 0, 1), σ in pixel units of images in [0, 1]; z ~ N(0, I) drawn "
                  "independently per image from a generator seeded by (seed, σ, image index in the dataset), the "
                  "same draw in both analysis sections (the reference scripts used one noise pattern for every "
                  "image, added after normalisation and not clipped)")


class AnalysisOptions(SectionOptions):
    n: int | None = Field(None, ge=1, description="images analysed: the first n evaluated (default: all)")


def analysis_units(context: RunContext, n: int | None) -> list[Unit]:
    """One unit per chunk of the first ``n`` evaluated images (all of them without ``n``)."""
    chosen = context.evaluated[:n] if n else context.evaluated
    return chunk_units(list(chosen.split(context.run.images_per_unit)))


def noise_seeds(seed: int, sigma: float, indices: Sequence[int]) -> list[int]:
    """Each image's noise seed, from (run seed, σ, dataset index): never from its position."""
    return [derived_seed(seed, float_key(sigma), int(index)) for index in indices]


def noisy_copies(images: Tensor, sigma: float, indices: Sequence[int], seed: int) -> Tensor:
    """``clip(x + σ·z, 0, 1)`` with ``z`` drawn per image (:func:`noise_seeds`); the images themselves at σ = 0."""
    if sigma == 0:
        return images.clone()
    draws = per_item_draws(images.shape[1:], noise_seeds(seed, sigma, indices)).to(images.dtype)
    return add_gaussian_noise(images, sigma, draws)


def batches(images: Tensor, context: RunContext) -> list[Tensor]:
    """``images`` in batches of the plan's batch size, on the run's device."""
    return [batch.to(context.device) for batch in images.split(context.batch_size)]


def as_rows(values: Tensor) -> list[list[float | None]]:
    """``[T+1, B]`` → per image, per timestep, in float64; ``None`` where a value is undefined (NaN)."""
    return [[v if math.isfinite(v) else None for v in row] for row in values.double().T.cpu().tolist()]


def probe(context: RunContext) -> Tensor:
    """One evaluated image on the run's device, to ask a model what it offers before any work."""
    return context.data.images[context.evaluated[:1]].to(context.device)

