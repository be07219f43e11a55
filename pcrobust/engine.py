"""The per-timestep evaluation engine: clean and Gaussian-noise accuracy, and batched attacks.

Attacks run on *copies*: one copy of an image per (ε, scored timestep), all attacked together;
each copy's loss reads the logits at its own timestep from one unroll of the chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor
from tqdm import tqdm

from pcrobust.attacks import Attack
from pcrobust.models import Readout, TimestepModel, select_readout
from pcrobust.seeding import derived_seed, per_item_draws


@dataclass(frozen=True)
class AttackOutcome:
    """Targeted successes per ε (rows) and timestep (columns) on ``n`` images."""

    successes: Tensor
    n: int


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


@torch.no_grad()
def predict(model: TimestepModel, images: Tensor, timesteps: int, batch_size: int, device: torch.device,
            desc: str = "clean", progress: bool = True) -> Tensor:
    """Logits ``[T+1, N, K]`` (on the CPU) for every image at every timestep."""
    chunks = images.split(batch_size)
    outputs = [model(chunk.to(device), timesteps).cpu() for chunk in tqdm(chunks, desc=desc, disable=not progress)]
    return torch.cat(outputs, dim=1)


def standard_normal_per_image(shape: torch.Size, image_indices: Sequence[int], seed: int) -> Tensor:
    """One standard-normal draw per image, seeded by (seed, image index): independent of batching."""
    return per_item_draws(shape, [derived_seed(seed, index) for index in image_indices])


def add_gaussian_noise(images: Tensor, sigma: float, unit_noise: Tensor) -> Tensor:
    """``clip(x + σ·z, 0, 1)`` with σ in [0, 1] pixel units."""
    return (images + sigma * unit_noise).clamp(0.0, 1.0)


def _scored_logits(model: TimestepModel, horizon: int, readout: Readout, scored_t: Tensor, x: Tensor) -> Tensor:
    """Per-copy logits of the attacked readout from one unroll to ``horizon``."""
    return select_readout(model(x, horizon), readout, scored_t)


def attack_per_timestep(model: TimestepModel, attack: Attack, images: Tensor, targets: Tensor,
                        epsilons: Sequence[float], timesteps: int, readout: Readout, batch_size: int,
                        device: torch.device, seed: int, progress: bool = True) -> AttackOutcome:
    """Attack every image at every ε and timestep; count targeted successes per (ε, t).

    Each copy's random draws come from its own seed, derived from (seed, ε index, timestep, image index),
    so results do not depend on ``batch_size`` or the device's chunking.
    Readout ``t`` makes one copy per (ε, t, image), each scored at the timestep it attacked;
    ``avg``/``last`` make one copy per (ε, image), attacked on that readout and scored at every t.
    Copies are ordered by timestep and a chunk unrolls only as far as its latest timestep. On the CPU,
    where time grows with the work done, a chunk never mixes timesteps (no copy unrolls past its own);
    on a GPU chunks fill up to ``batch_size`` across timesteps, trading that extra work for fewer, larger
    kernel launches.
    """
    n, n_eps = len(images), len(epsilons)
    steps = range(timesteps + 1) if readout == "t" else [timesteps]
    grid = torch.tensor([(t, e, i) for t in steps for e in range(n_eps) for i in range(n)], dtype=torch.long)
    eps_values = torch.tensor(epsilons, dtype=images.dtype)
    successes = torch.zeros(n_eps, timesteps + 1, dtype=torch.long)
    chunks = grid.split(batch_size)
    if device.type == "cpu" and readout == "t":
        chunks = tuple(c for t in steps for c in grid[grid[:, 0] == t].split(batch_size))
    for chunk in tqdm(chunks, desc=f"attack {type(attack).__name__}", disable=not progress):
        t_idx, e_idx, i_idx = chunk.unbind(1)
        x, target = images[i_idx].to(device), targets[i_idx].to(device)
        epsilon = eps_values[e_idx].to(device)
        logits_fn = partial(_scored_logits, model, int(t_idx.max()), readout, t_idx.to(device))
        seeds = [derived_seed(seed, e, t, i) for t, e, i in chunk.tolist()]
        with torch.enable_grad():
            x_adv = attack(logits_fn, x, target, epsilon, seeds)
        with torch.no_grad():
            if readout == "t":
                hit = (logits_fn(x_adv).argmax(1) == target).cpu().long()
                successes.index_put_((e_idx, t_idx), hit, accumulate=True)
            else:
                hits = (model(x_adv, timesteps).argmax(2) == target).cpu().long()  # [T+1, chunk]
                for t in range(timesteps + 1):
                    successes[:, t].index_add_(0, e_idx, hits[t])
    return AttackOutcome(successes, n)
