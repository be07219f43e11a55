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
from pcrobust.seeding import derived_seed, float_key, per_item_draws


@dataclass(frozen=True)
class AttackOutcome:
    """Per image, ε and scored timestep: ``success`` (bool) and ``margin`` (float), both ``[E, T+1, N]``.

    The margin is the logit of the target minus the largest other logit (targeted), or the logit of the
    true class minus the largest other logit (untargeted): positive means the target was hit, or the image
    is still right."""

    success: Tensor
    margin: Tensor


    @classmethod
    def empty(cls, epsilons: int, timesteps: int, images: int) -> AttackOutcome:
        return cls(torch.zeros(epsilons, timesteps + 1, images, dtype=torch.bool),
                   torch.zeros(epsilons, timesteps + 1, images, dtype=torch.float64))

    def record(self, e_idx: Tensor, t: Tensor | int, i_idx: Tensor, logits: Tensor, labels: Tensor,
               targeted: bool) -> None:
        """Store success and margin of ``[chunk, K]`` logits for the copies (ε ``e_idx``, timestep ``t``,
        image ``i_idx``)."""
        hit = logits.argmax(1) == labels
        self.success[e_idx, t, i_idx] = (hit if targeted else ~hit).cpu()
        self.margin[e_idx, t, i_idx] = margins(logits, labels).double().cpu()


def margins(logits: Tensor, labels: Tensor) -> Tensor:
    """``logits[label] − max over the other classes`` per row of ``[N, K]`` logits."""
    own = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), float("-inf")).amax(1)
    return own - others


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


def attack_per_timestep(model: TimestepModel, attack: Attack, images: Tensor, labels: Tensor,
                        epsilons: Sequence[float], timesteps: int, readout: Readout, batch_size: int,
                        device: torch.device, seed: int, image_ids: Sequence[int], *, targeted: bool = True,
                        progress: bool = True) -> AttackOutcome:
    """Attack every image at every ε and timestep; per-image success and margin per (ε, t).

    ``labels`` are the targets (targeted) or the true classes (untargeted). Each copy's random draws come
    from its own seed, keyed by (seed, ε value, attacked timestep, ``image_ids`` — the images' dataset
    indices), so no result depends on ``batch_size``, on the device's chunking, or on which other images
    or budgets a run holds.
    Readout ``t`` makes one copy per (ε, t, image), each scored at the timestep it attacked;
    ``avg``/``last`` make one copy per (ε, image), attacked on that readout and scored at every t; ``first``
    attacks the feedforward pass alone (an unroll to t = 0, so no gradient goes through the dynamics) and
    scores the result at every t: a transfer from the model's own feedforward network.
    Copies are ordered by timestep and a chunk unrolls only as far as its latest timestep. On the CPU,
    where time grows with the work done, a chunk never mixes timesteps (no copy unrolls past its own);
    on a GPU chunks fill up to ``batch_size`` across timesteps, trading that extra work for fewer, larger
    kernel launches.
    """
    n, n_eps = len(images), len(epsilons)
    steps = range(timesteps + 1) if readout == "t" else [0] if readout == "first" else [timesteps]
    grid = torch.tensor([(t, e, i) for t in steps for e in range(n_eps) for i in range(n)], dtype=torch.long)
    eps_values = torch.tensor(epsilons, dtype=images.dtype)
    eps_keys = [float_key(e) for e in epsilons]
    outcome = AttackOutcome.empty(n_eps, timesteps, n)
    chunks = grid.split(batch_size)
    if device.type == "cpu" and readout == "t":
        chunks = tuple(c for t in steps for c in grid[grid[:, 0] == t].split(batch_size))
    for chunk in tqdm(chunks, desc=f"attack {type(attack).__name__}", disable=not progress, leave=False):
        t_idx, e_idx, i_idx = chunk.unbind(1)
        x, label = images[i_idx].to(device), labels[i_idx].to(device)
        epsilon = eps_values[e_idx].to(device)
        logits_fn = partial(_scored_logits, model, int(t_idx.max()), readout, t_idx.to(device))
        seeds = [derived_seed(seed, eps_keys[e], t, int(image_ids[i])) for t, e, i in chunk.tolist()]
        with torch.enable_grad():
            x_adv = attack(logits_fn, x, label, epsilon, seeds, targeted=targeted)
        with torch.no_grad():
            if readout == "t":
                outcome.record(e_idx, t_idx, i_idx, logits_fn(x_adv), label, targeted)
            else:
                logits = model(x_adv, timesteps)  # [T+1, chunk, K]
                for t in range(timesteps + 1):
                    outcome.record(e_idx, t, i_idx, logits[t], label, targeted)
    return outcome


def _surrogate_logits(surrogate: TimestepModel, horizon: int, readout: Readout, x: Tensor) -> Tensor:
    return select_readout(surrogate(x, horizon), readout)


def transfer_per_timestep(surrogate: TimestepModel, surrogate_timesteps: int, surrogate_readout: Readout,
                          target: TimestepModel, attack: Attack, images: Tensor, labels: Tensor,
                          epsilons: Sequence[float], timesteps: int, batch_size: int, device: torch.device,
                          seed: int, image_ids: Sequence[int], *, targeted: bool = True,
                          progress: bool = True) -> AttackOutcome:
    """Craft on ``surrogate`` (its ``avg``, ``last`` or ``first`` readout over ``surrogate_timesteps``) and score
    the adversarials on ``target`` at every timestep 0..``timesteps``: an :class:`AttackOutcome` ``[E, T+1, N]``.

    One copy per (ε, image), seeded by (seed, ε value, timestep 0, ``image_ids``) as ``attack_per_timestep``
    seeds its ``first`` readout, so crafting on the target's own feedforward pass gives the same numbers.
    """
    if surrogate_readout not in ("avg", "last", "first"):
        raise ValueError(f"surrogate readout must be avg, last or first, not {surrogate_readout!r}")
    n, n_eps = len(images), len(epsilons)
    grid = torch.tensor([(e, i) for e in range(n_eps) for i in range(n)], dtype=torch.long)
    eps_values = torch.tensor(epsilons, dtype=images.dtype)
    eps_keys = [float_key(e) for e in epsilons]
    outcome = AttackOutcome.empty(n_eps, timesteps, n)
    horizon = 0 if surrogate_readout == "first" else surrogate_timesteps
    logits_fn = partial(_surrogate_logits, surrogate, horizon, surrogate_readout)
    for chunk in tqdm(grid.split(batch_size), desc=f"transfer {type(attack).__name__}", disable=not progress,
                      leave=False):
        e_idx, i_idx = chunk.unbind(1)
        x, label = images[i_idx].to(device), labels[i_idx].to(device)
        epsilon = eps_values[e_idx].to(device)
        seeds = [derived_seed(seed, eps_keys[e], 0, int(image_ids[i])) for e, i in chunk.tolist()]
        with torch.enable_grad():
            x_adv = attack(logits_fn, x, label, epsilon, seeds, targeted=targeted)
        with torch.no_grad():
            logits = target(x_adv, timesteps)  # [T+1, chunk, K]
            for t in range(timesteps + 1):
                outcome.record(e_idx, t, i_idx, logits[t], label, targeted)
    return outcome
