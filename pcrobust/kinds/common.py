"""Helpers shared by the built-in section kinds: per-image outcomes to and from JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from pcrobust.sections import Unit


def chunk_units(chunks: Sequence[Tensor], prefix: str = "", params: Mapping[str, Any] | None = None) -> list[Unit]:
    """One unit per chunk of dataset indices, keyed ``<prefix>images-<chunk number>``."""
    return [Unit(f"{prefix}images-{number:04d}", tuple(int(i) for i in chunk.tolist()),
                 {**(params or {}), "chunk": number}) for number, chunk in enumerate(chunks)]


def correct_per_image(logits: Tensor, labels: Tensor) -> list[list[int]]:
    """``[T+1, N, K]`` logits → per image, per timestep, 1 if the argmax is the label."""
    return (logits.argmax(2) == labels).T.int().tolist()


def stacked(outcomes: Sequence[tuple[Unit, Mapping[str, Any]]], key: str) -> tuple[list[int], np.ndarray]:
    """Dataset indices and the per-image rows stored under ``key``, concatenated over units in order."""
    indices = [i for _, outcome in outcomes for i in outcome["indices"]]
    rows = [row for _, outcome in outcomes for row in outcome[key]]
    return indices, np.asarray(rows, dtype=bool).reshape(len(indices), -1)
