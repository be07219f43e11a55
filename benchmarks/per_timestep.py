"""Shared by the benchmark scripts: the reference scripts' method (one attack per (ε, timestep)), the images
they attack (test digits right at every timestep), the model a library sees at one timestep, the options every
per-timestep attack benchmark takes, and interleaved timing."""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import torch
from torch import Tensor

from pcrobust.attacks import Attack
from pcrobust.engine import predict
from pcrobust.models import TimestepModel
from pcrobust.seeding import derived_seed, float_key
from pcrobust_datasets.mnist import load_mnist_5k

R = TypeVar("R")


def one_attack_per_timestep(model: TimestepModel, attack: Attack, images: Tensor, targets: Tensor,
                            ids: Sequence[int], epsilons: Sequence[float], timesteps: int) -> list[list[int]]:
    """Targeted successes [ε][t] from one attack per (ε, timestep) on the model unrolled to that timestep,
    each copy seeded as the engine seeds it (run seed 0)."""
    counts = [[0] * (timesteps + 1) for _ in epsilons]
    for t in range(timesteps + 1):
        def logits_at_t(z: Tensor, copies: Tensor | None = None, t: int = t) -> Tensor:
            return model(z, t)[t]

        for e, eps in enumerate(epsilons):
            seeds = [derived_seed(0, float_key(eps), t, i) for i in ids]
            x_adv = attack(logits_at_t, images, targets,
                           torch.full((len(images),), eps, device=images.device), seeds)
            with torch.no_grad():
                counts[e][t] = int((logits_at_t(x_adv).argmax(1) == targets).sum())
    return counts


def right_at_every_timestep(model: TimestepModel, timesteps: int, n: int, device: torch.device
                            ) -> tuple[Tensor, Tensor, list[int]]:
    """The first ``n`` test digits (in a permutation seeded 0) right at every timestep: images, targets
    (y + 1) mod 10 and dataset indices."""
    data = load_mnist_5k("test")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    logits = predict(model, data.images[order], timesteps, 500, device, progress=False)
    keep = order[(logits.argmax(2) == data.labels[order]).all(0)][:n]
    return data.images[keep].to(device), ((data.labels[keep] + 1) % 10).to(device), keep.tolist()


class LogitsAt(torch.nn.Module):
    """The logits of ``model`` unrolled to timestep ``t`` (what a library attack run once per timestep sees),
    counting the rows it is asked in ``rows``."""

    def __init__(self, model: TimestepModel, t: int) -> None:
        super().__init__()
        self.model, self.t, self.rows = model, t, 0
        self.train(False)

    def forward(self, z: Tensor) -> Tensor:
        self.rows += len(z)
        return self.model(z, self.t)[self.t]


def interleaved(contenders: Mapping[str, Callable[[], R]], repeats: int) -> tuple[dict[str, float], dict[str, R]]:
    """Each contender run ``repeats`` times in turn (A, B, A, B, ...): its median seconds and its last result."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    results: dict[str, R] = {}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}, results


def attack_options(description: str, *, n: int, epsilons: str, epsilons_help: str, steps: int,
                   steps_help: str) -> argparse.ArgumentParser:
    """A parser with the options every per-timestep attack benchmark takes: images, timesteps, budgets, steps,
    repeats, engine chunk size and intra-op threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=n, help="images right at every timestep")
    parser.add_argument("--timesteps", type=int, default=2, help="attack timesteps 0..T")
    parser.add_argument("--epsilons", default=epsilons, help=epsilons_help)
    parser.add_argument("--steps", type=int, default=steps, help=steps_help)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (median)")
    parser.add_argument("--batch-size", type=int, default=500, help="engine copies per chunk")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (more only lose time to contention on a loaded machine)")
    return parser


def parsed(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed options, with torch's intra-op threads set and deprecation warnings (Foolbox's) silenced."""
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    return args


def load_average() -> str:
    """The 1-minute load average, for the report of a measurement."""
    return f"1-minute load average {os.getloadavg()[0]:.2f} at the start"
