"""Starting points for attacks that need one per copy (decision-based attacks such as HopSkipJump).

A copy's start is an image of the data that the model already puts in the goal class at the attacked
readout: for a targeted attack an image *of* the target class classified as the target, for an untargeted
one any image not classified as the copy's label. Of those, the nearest to the attacked image in the
attack's norm (ties: the lowest dataset index) — a deterministic choice that depends on no batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pcrobust.engine import StartPoints, attacked_steps
from pcrobust.models import select_readout
from pcrobust.vocabulary import Norm, Readout


def _predictions(pool_logits: Tensor, readout: Readout, step: int) -> Tensor:
    if readout == "t":
        return pool_logits[step].argmax(1)
    return select_readout(pool_logits, readout).argmax(1)


def _distances(images: Tensor, pool: Tensor, norm: Norm) -> Tensor:
    """``[N, P]`` distances between flattened images, one attacked image at a time (bounded memory)."""
    flat = pool.flatten(1).double()
    rows = []
    for image in images.flatten(1).double():
        difference = flat - image
        rows.append(difference.abs().amax(1) if norm == "linf" else difference.norm(dim=1))
    return torch.stack(rows)


def nearest_starts(images: Tensor, image_ids: Sequence[int], labels: Tensor, goals: Tensor, targeted: bool,
                   pool: Tensor, pool_ids: Sequence[int], pool_labels: Tensor, pool_logits: Tensor,
                   readout: Readout, timesteps: int, norm: Norm) -> StartPoints:
    """Per attacked step and image, the nearest pool image the model puts in the goal class (−1: none).

    ``pool_logits`` are the clean ``[T+1, P, K]`` logits of ``pool``; ``goals`` are the targets (targeted)
    or the labels (untargeted); an image is never its own start."""
    distance = _distances(images, pool, norm)
    order = torch.tensor(pool_ids, dtype=torch.float64)
    same = torch.tensor(image_ids).view(-1, 1) == torch.tensor(pool_ids).view(1, -1)
    choices = []
    for step in attacked_steps(readout, timesteps):
        predicted = _predictions(pool_logits, readout, step)
        if targeted:
            valid = (predicted.view(1, -1) == goals.view(-1, 1)) & (pool_labels.view(1, -1) == goals.view(-1, 1))
        else:
            valid = predicted.view(1, -1) != labels.view(-1, 1)
        valid &= ~same
        key = torch.where(valid, distance, torch.full_like(distance, float("inf")))
        best = torch.stack([_argmin_then_index(row, order) for row in key])
        choices.append(torch.where(valid.any(1), best, torch.full_like(best, -1)))
    return StartPoints(pool, torch.stack(choices))


def _argmin_then_index(key: Tensor, order: Tensor) -> Tensor:
    """Position of the smallest ``key``; among equal keys the one with the smallest ``order``."""
    smallest = key.min()
    tied = (key == smallest).nonzero().squeeze(1)
    return tied[order[tied].argmin()]
