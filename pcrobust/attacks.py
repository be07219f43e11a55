"""The attack contract: ``__call__`` guarantees the ε-ball and [0, 1]; subclasses implement ``run``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, final

import torch
from torch import Tensor

from pcrobust.seeding import per_item_draws

Norm = Literal["linf", "l2"]
LogitsFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class AttackSettings:
    """Budget of an iterative gradient attack; the step is ``rel_stepsize × ε`` per iteration."""

    steps: int = 10
    rel_stepsize: float = 0.2
    random_start: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if not self.rel_stepsize > 0:
            raise ValueError(f"rel_stepsize must be positive, got {self.rel_stepsize}")

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def project(x: Tensor, x_adv: Tensor, epsilon: Tensor, norm: Norm) -> Tensor:
    """Move ``x_adv`` into the per-sample ε-ball around ``x`` (``norm``), then into [0, 1].

    Clipping to [0, 1] after the ball projection cannot leave the ball: it moves every coordinate
    towards ``x``, which already lies in [0, 1].
    """
    delta = x_adv - x
    eps = epsilon.view(-1, *([1] * (x.dim() - 1)))
    if norm == "linf":
        delta = torch.maximum(torch.minimum(delta, eps), -eps)
    else:
        length = delta.flatten(1).norm(dim=1).view_as(eps)
        delta = delta * torch.clamp(eps / length.clamp_min(1e-12), max=1.0)
    return (x + delta).clamp(0.0, 1.0)


class Attack(ABC):
    """A (targeted) attack on a differentiable per-sample readout ``logits_fn(x) -> [N, K]``."""

    norm: Norm
    targeted: bool = True

    def __init__(self, settings: AttackSettings) -> None:
        self.settings = settings

    @final
    def __call__(self, logits_fn: LogitsFn, x: Tensor, target: Tensor, epsilon: Tensor,
                 seeds: Sequence[int]) -> Tensor:
        """Adversarial inputs inside the ε-ball and [0, 1], whatever ``run`` returned.

        ``seeds`` holds one seed per sample for any random draw (see :meth:`uniform`)."""
        if x.min() < 0 or x.max() > 1:
            raise ValueError("attack inputs must lie in [0, 1]")
        if len(seeds) != len(x):
            raise ValueError(f"need one seed per sample, got {len(seeds)} for {len(x)}")
        x_adv = self.run(logits_fn, x, target, epsilon, seeds)
        return project(x, x_adv.detach(), epsilon, self.norm)

    @abstractmethod
    def run(self, logits_fn: LogitsFn, x: Tensor, target: Tensor, epsilon: Tensor,
            seeds: Sequence[int]) -> Tensor:
        """Return candidate adversarials for ``x`` aimed at ``target`` with per-sample ``epsilon``."""

    @staticmethod
    def uniform(x: Tensor, seeds: Sequence[int]) -> Tensor:
        """U[0, 1) noise shaped like ``x``, each sample's from its own seed (independent of the batch)."""
        return per_item_draws(x.shape[1:], seeds, "uniform").to(device=x.device, dtype=x.dtype)

    def describe(self) -> dict[str, Any]:
        return {"norm": self.norm, "targeted": self.targeted, **self.settings.describe()}
