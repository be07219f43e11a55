"""The operators of CNN-F: instance RMS normalisation, AdaReLU and AdaPool (Eq. 3), and the pool's latent."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

EPSILON = 1e-8


def ins_norm(x: Tensor) -> Tensor:
    """``x / sqrt(mean(x²) + 1e-8)`` per sample and channel over H, W (per sample over features for vectors):
    no mean subtraction, no running statistics."""
    dims = (2, 3) if x.dim() == 4 else (1,)
    return x / torch.sqrt(x.pow(2).mean(dim=dims, keepdim=True) + EPSILON)


def branch_sign(g: Tensor) -> Tensor:
    """+1 where the feedback map is non-negative, −1 where it is negative (Eq. 3's branch)."""
    return torch.where(g >= 0, 1.0, -1.0).to(g.dtype)


def ada_relu(f: Tensor, g: Tensor | None, straight_through: bool = False) -> Tensor:
    """Eq. 3: ReLU(f) where g ≥ 0, ReLU(−f) where g < 0; plain ReLU without feedback.

    ``straight_through`` keeps the value and passes the gradient of the selected branch's linear part
    (``±1``, the sign of g) to every unit, gated or not."""
    if g is None:
        return F.relu(f)
    signed = branch_sign(g) * f
    out = F.relu(signed)
    if straight_through:
        return signed + (out - signed).detach()
    return out


@dataclass(frozen=True)
class PoolChoice:
    """The latent ẑ_P of one 2×2 pool (Eq. 5): the chosen (max or min) position of every window."""

    indices: Tensor
    shape: torch.Size  # the input's [B, C, H, W]


def ada_pool(x: Tensor, g: Tensor | None) -> tuple[Tensor, PoolChoice]:
    """Eq. 3: max over each 2×2 window where g ≥ 0, min (−max(−x)) where g < 0; max-pool without feedback.

    Returns the pooled map and the chosen positions; the gradient goes to the chosen position."""
    pooled, index = F.max_pool2d(x, 2, return_indices=True)
    if g is None:
        return pooled, PoolChoice(index, x.shape)
    negated, index_min = F.max_pool2d(-x, 2, return_indices=True)
    keep = g >= 0
    return torch.where(keep, pooled, -negated), PoolChoice(torch.where(keep, index, index_min), x.shape)


def _upsample(x: Tensor, shape: torch.Size) -> Tensor:
    """Each value copied to its 2×2 window, zero-padded to ``shape`` (pooling floors odd sizes)."""
    b, c, h, w = x.shape
    up = x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)
    return F.pad(up, (0, shape[-1] - 2 * w, 0, shape[-2] - 2 * h))


def unpool(g: Tensor, choice: PoolChoice) -> Tensor:
    """The feedback through a pool: each value goes back to its window's chosen position, zeros elsewhere."""
    height, width = choice.shape[-2:]
    positions = torch.arange(height * width, device=g.device).view(height, width)
    chosen = _upsample(choice.indices, choice.shape) == positions
    return _upsample(g, choice.shape) * chosen
