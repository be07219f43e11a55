"""Runs split across processes started by ``torchrun``: each rank runs its share of the units into one folder.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; with a world of two or more, the ranks join a
``torch.distributed`` process group (gloo on the CPU, NCCL on CUDA), rank 0 prepares the folder, every rank runs
every ``WORLD_SIZE``-th unit (the plan's units are the same list in every process), and once all have finished
rank 0 assembles the results from the stored units, exactly as a single process would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from pcrobust.errors import PcrobustError
from pcrobust.run.execute import Shard

WAIT = timedelta(days=1)
"""How long a rank waits for the others at a barrier: a share of units may take hours."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among ``world`` processes."""

    rank: int
    local: int
    world: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Ranks | None:
        """The ranks ``torchrun`` describes, or ``None`` for a single process."""
        try:
            world = int(environ.get("WORLD_SIZE", "1"))
            rank, local = int(environ.get("RANK", "0")), int(environ.get("LOCAL_RANK", "0"))
        except ValueError:
            raise PcrobustError("RANK, LOCAL_RANK and WORLD_SIZE must be integers (as torchrun sets them)") from None
        if world < 2:
            return None
        if not 0 <= rank < world:
            raise PcrobustError(f"RANK {rank} is outside a world of {world}")
        return cls(rank, local, world)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> Shard:
        return Shard(self.rank + 1, self.world)

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: its own GPU (``LOCAL_RANK``) when the run is on CUDA."""
        return torch.device("cuda", self.local) if device.type == "cuda" else device


@contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """Join the ranks' process group for the duration of the block."""
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ranks.rank, world_size=ranks.world,
                            timeout=WAIT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def wait_for_all() -> None:
    """Every rank reaches this point before any goes on (nothing to do in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
