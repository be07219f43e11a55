"""Helpers shared by the built-in section kinds: choosing images, per-image outcomes to and from JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pcrobust.run.context import RunContext
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


def chosen_images(context: RunContext, n: int, selection: str) -> list[int]:
    """The dataset indices of the first ``n`` evaluated images that meet the ``selection`` rule (``all``,
    ``correct-at-t0`` or ``correct-at-every-timestep``), in evaluation order."""
    chosen: list[int] = []
    for number, chunk in enumerate(context.chunks()):
        if len(chosen) >= n:
            break
        if selection == "all":
            keep = torch.ones(len(chunk), dtype=torch.bool)
        else:
            right = context.clean_logits(number).argmax(2) == context.data.labels[chunk]
            keep = right.all(0) if selection == "correct-at-every-timestep" else right[0]
        chosen.extend(int(i) for i in chunk[keep].tolist())
    return chosen[:n]
