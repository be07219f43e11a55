"""Corrupting images in worker processes, so the model scores one unit while the next one is being corrupted.

A unit's images go to a pool of processes as uint8 arrays in small groups; each image's draws come from its own
seed, so where it is corrupted (here, or in any worker) never changes it. The pool is started once per worker
count (``forkserver``: workers do not inherit the scoring process's threads) and ends with the process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Hashable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from pcrobust.corrupt import Strength, corrupt_array, from_library_array, to_library_array

MAX_DEFAULT_WORKERS = 4
GROUPS_PER_WORKER = 4  # a unit is split into about this many groups per worker, to share the load


def default_workers() -> int:
    """One worker per CPU core but one (the model's), at most :data:`MAX_DEFAULT_WORKERS`; 0 on one core."""
    return max(0, min(MAX_DEFAULT_WORKERS, (os.cpu_count() or 1) - 1))


def corrupt_arrays(arrays: Sequence[np.ndarray], name: str, severity: int, seeds: Sequence[int],
                   strength: Strength) -> list[tuple[np.ndarray, bool]]:
    """Library arrays corrupted one by one (what a worker runs), each with its fixed-output flag."""
    return [corrupt_array(array, name, severity, seed, strength)
            for array, seed in zip(arrays, seeds, strict=True)]


@lru_cache(maxsize=1)
def executor(workers: int) -> ProcessPoolExecutor:
    """The pool of ``workers`` processes, started on first use."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))


@dataclass(frozen=True)
class Corrupted:
    """Corrupted images ``[N, C, H, W]`` and, per image, whether the library's fixed output was used."""

    images: Tensor
    fixed: list[bool]


@dataclass(frozen=True)
class Job:
    """A unit's images on their way through the pool."""

    like: Tensor
    parts: list[Future[list[tuple[np.ndarray, bool]]]]

    def result(self) -> Corrupted:
        done = [item for part in self.parts for item in part.result()]
        return Corrupted(torch.stack([from_library_array(array, image) for (array, _), image
                                      in zip(done, self.like, strict=True)]), [fixed for _, fixed in done])


def corrupt_here(images: Tensor, name: str, severity: int, seeds: Sequence[int], strength: Strength) -> Corrupted:
    """The images corrupted in this process."""
    done = corrupt_arrays([to_library_array(image) for image in images], name, severity, seeds, strength)
    return Corrupted(torch.stack([from_library_array(array, image) for (array, _), image
                                  in zip(done, images, strict=True)]), [fixed for _, fixed in done])


def submit(images: Tensor, name: str, severity: int, seeds: Sequence[int], strength: Strength,
           workers: int) -> Job:
    """Start corrupting ``images`` in the pool of ``workers`` processes."""
    arrays = [to_library_array(image) for image in images]
    size = max(1, -(-len(arrays) // (workers * GROUPS_PER_WORKER)))
    pool = executor(workers)
    parts = [pool.submit(corrupt_arrays, arrays[start:start + size], name, severity,
                         list(seeds[start:start + size]), strength) for start in range(0, len(arrays), size)]
    return Job(images, parts)


class Ahead:
    """Jobs started ahead of their unit, by key; one that is not asked for next is dropped."""

    def __init__(self) -> None:
        self._jobs: dict[Hashable, Job] = {}

    def take(self, key: Hashable) -> Job | None:
        job = self._jobs.pop(key, None)
        self._jobs.clear()
        return job

    def put(self, key: Hashable, job: Job) -> None:
        self._jobs[key] = job
