"""Deterministic attack targets: the same target for an image at every timestep."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pcrobust.seeding import derived_seed
from pcrobust.vocabulary import TARGET_MODES, TargetMode

RANDOM_TARGET_STREAM = 7  # separates target draws from every other per-image stream of a run's seed


def choose_targets(mode: TargetMode, labels: Tensor, num_classes: int, *, image_indices: Sequence[int],
                   shift: int = 1, seed: int = 0, feedforward_logits: Tensor | None = None) -> Tensor:
    """``shift``: (y + shift) mod K; ``random``: uniform over the other classes, drawn per image from a seed
    keyed by (seed, image index in the dataset); ``least-likely``: the lowest feedforward (t = 0) clean logit."""
    if mode == "shift":
        if shift % num_classes == 0:
            raise ValueError(f"target shift {shift} maps every label onto itself with {num_classes} classes")
        return (labels + shift) % num_classes
    if mode == "random":
        offsets = [int(torch.randint(1, num_classes, (1,), generator=torch.Generator().manual_seed(
            derived_seed(seed, RANDOM_TARGET_STREAM, index)))) for index in image_indices]
        return (labels + torch.tensor(offsets, dtype=labels.dtype)) % num_classes
    if mode == "least-likely":
        if feedforward_logits is None:
            raise ValueError("least-likely targets need the feedforward logits")
        return feedforward_logits.argmin(1)
    raise ValueError(f"unknown target mode {mode!r}; choose from {', '.join(TARGET_MODES)}")
