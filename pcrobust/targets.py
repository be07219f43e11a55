"""Deterministic attack targets: the same target for an image at every timestep."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

TargetMode = Literal["shift", "random", "least-likely"]
TARGET_MODES: tuple[TargetMode, ...] = ("shift", "random", "least-likely")


def choose_targets(mode: TargetMode, labels: Tensor, num_classes: int, *, shift: int = 1, seed: int = 0,
                   feedforward_logits: Tensor | None = None) -> Tensor:
    """``shift``: (y + shift) mod K; ``random``: uniform over the other classes, seeded;
    ``least-likely``: the class with the lowest feedforward (t = 0) clean logit."""
    if mode == "shift":
        if shift % num_classes == 0:
            raise ValueError(f"target shift {shift} maps every label onto itself with {num_classes} classes")
        return (labels + shift) % num_classes
    if mode == "random":
        generator = torch.Generator().manual_seed(seed)
        offset = torch.randint(1, num_classes, labels.shape, generator=generator)
        return (labels + offset) % num_classes
    if mode == "least-likely":
        if feedforward_logits is None:
            raise ValueError("least-likely targets need the feedforward logits")
        return feedforward_logits.argmin(1)
    raise ValueError(f"unknown target mode {mode!r}; choose from {', '.join(TARGET_MODES)}")
