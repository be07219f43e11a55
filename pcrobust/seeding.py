"""Seeds derived from a run's seed and an item's identity, so random draws never depend on batching, and
numpy's global generator seeded for one block and restored after it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor


def derived_seed(*keys: int) -> int:
    """A 63-bit seed determined by ``keys`` (e.g. run seed, ε index, timestep, image index)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def per_item_draws(shape: Sequence[int], seeds: Sequence[int], kind: str = "normal") -> Tensor:
    """One draw of ``shape`` per seed, stacked: standard normal (``normal``) or uniform on [0, 1) (``uniform``)."""
    sample = torch.randn if kind == "normal" else torch.rand
    return torch.stack([sample(tuple(shape), generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def float_key(value: float) -> int:
    """A stable integer identity for a parameter value (its IEEE-754 double bits), for use in seed keys."""
    return int(np.array(float(value), dtype=np.float64).view(np.uint64))


@contextmanager
def seeded_global_numpy(seed: int) -> Iterator[None]:
    """numpy's global generator seeded with ``seed`` inside the block, its previous state restored after."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)
