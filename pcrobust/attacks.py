"""The attack contract: ``__call__`` guarantees the ε-ball and [0, 1]; subclasses implement ``run``.

An attack declares its own typed options (a :class:`~pcrobust.schema.Schema`), the norms it supports and
default ε grids per norm; each norm validates its own ε.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, final

import torch
from pydantic import Field
from torch import Tensor

from pcrobust.schema import Schema
from pcrobust.seeding import per_item_draws
from pcrobust.vocabulary import Norm

LogitsFn = Callable[[Tensor], Tensor]


def epsilon_problem(norm: Norm, epsilon: float) -> str | None:
    """Why ``epsilon`` is not a valid budget for ``norm`` (pixel units of images in [0, 1]), or ``None``."""
    if norm == "linf" and not 0 < epsilon <= 1:
        return f"linf epsilons must lie in (0, 1] (pixel units of images in [0, 1]), got {epsilon:g}"
    if norm == "l2" and not epsilon > 0:
        return f"l2 epsilons must be > 0, got {epsilon:g}"
    return None


class AttackOptions(Schema):
    """Options an attack takes; subclasses add typed fields with defaults."""


class GradientAttackOptions(AttackOptions):
    """Budget of an iterative gradient attack; the step is ``rel_stepsize × ε`` per iteration."""

    steps: int = Field(10, ge=1, description="iterations")
    rel_stepsize: float = Field(0.2, gt=0, description="step size as a fraction of ε (Foolbox's convention)")
    random_start: bool = Field(False, description="start from a uniform draw in the ε-ball")


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
    """An attack on a differentiable per-sample readout ``logits_fn(x) -> [N, K]``.

    Targeted: ``labels`` are the targets and success is hitting them; untargeted: ``labels`` are the true
    classes and success is leaving them."""

    def __init__(self, options: AttackOptions, norm: Norm) -> None:
        self.options = options
        self.norm: Norm = norm

    @final
    def __call__(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
                 *, targeted: bool = True) -> Tensor:
        """Adversarial inputs inside the ε-ball and [0, 1], whatever ``run`` returned.

        ``seeds`` holds one seed per sample for any random draw (see :meth:`uniform`)."""
        if x.min() < 0 or x.max() > 1:
            raise ValueError("attack inputs must lie in [0, 1]")
        if len(seeds) != len(x):
            raise ValueError(f"need one seed per sample, got {len(seeds)} for {len(x)}")
        x_adv = self.run(logits_fn, x, labels, epsilon, seeds, targeted)
        return project(x, x_adv.detach(), epsilon, self.norm)

    @abstractmethod
    def run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
            targeted: bool) -> Tensor:
        """Return candidate adversarials for ``x`` with per-sample ``epsilon``."""

    @staticmethod
    def uniform(x: Tensor, seeds: Sequence[int]) -> Tensor:
        """U[0, 1) noise shaped like ``x``, each sample's from its own seed (independent of the batch)."""
        return per_item_draws(x.shape[1:], seeds, "uniform").to(device=x.device, dtype=x.dtype)

    def describe(self) -> dict[str, Any]:
        return {"norm": self.norm, "options": self.options.model_dump()}
