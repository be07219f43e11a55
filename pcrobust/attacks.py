"""The attack contract: ``__call__`` guarantees the ε-ball and [0, 1]; subclasses implement ``run``.

An attack declares its own typed options (a :class:`~pcrobust.schema.Schema`), the norms it supports and
default ε grids per norm; each norm validates its own ε. An attack reaches the model only through the
:class:`LogitsFn` it is given, which answers for the copies it attacks (and counts the queries).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, final

import torch
from pydantic import Field
from torch import Tensor

from pcrobust.schema import Schema
from pcrobust.seeding import per_item_draws
from pcrobust.vocabulary import Norm


class LogitsFn(Protocol):
    """The attacked readout of the copies an attack was called with: ``[M, K]`` logits for ``[M, ...]`` inputs.

    Without ``copies``, row ``i`` of the input is copy ``i`` (so ``M`` is the number of copies); with
    ``copies`` (``[M]`` long), row ``j`` is evaluated as copy ``copies[j]``, so an attack can query many
    points of one copy, or only the copies still running, in one call."""

    def __call__(self, z: Tensor, copies: Tensor | None = None) -> Tensor: ...


@dataclass(frozen=True)
class Adversarials:
    """What an attack returns: its candidates ``inputs`` and per-copy ``records`` (``[N]`` numbers each, e.g.
    the iteration a copy stopped at), stored beside each copy's outcome."""

    inputs: Tensor
    records: Mapping[str, Tensor] = field(default_factory=dict)


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
    """An attack on a per-copy readout ``logits_fn(x) -> [N, K]`` (differentiable for gradient attacks).

    Targeted: ``labels`` are the targets and success is hitting them; untargeted: ``labels`` are the true
    classes and success is leaving them. A ``minimizes`` attack looks for the smallest adversarial
    perturbation it can find (it is called with ε = ∞ once for a whole ε grid, and the engine clips its
    answer to each ε); one that ``needs_starts`` is given one adversarial starting point per copy; one that
    runs ``one_timestep_per_chunk`` (a library that sees one plain model) is called only on copies that all
    read the same timestep, so ``logits_fn`` is one function of the input."""

    minimizes: ClassVar[bool] = False
    needs_starts: ClassVar[bool] = False
    one_timestep_per_chunk: ClassVar[bool] = False

    def __init__(self, options: AttackOptions, norm: Norm) -> None:
        self.options = options
        self.norm: Norm = norm

    @final
    def __call__(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
                 *, targeted: bool = True, starts: Tensor | None = None) -> Tensor:
        """Adversarial inputs inside the ε-ball and [0, 1], whatever ``run`` returned."""
        return self.attack(logits_fn, x, labels, epsilon, seeds, targeted=targeted, starts=starts).inputs

    @final
    def attack(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
               *, targeted: bool = True, starts: Tensor | None = None) -> Adversarials:
        """Like ``__call__``, with the per-copy records of ``run``.

        ``seeds`` holds one seed per sample for any random draw (see :meth:`uniform`); ``starts`` (``[N, ...]``,
        each classified as the goal) is required by, and only given to, an attack that ``needs_starts``."""
        if x.min() < 0 or x.max() > 1:
            raise ValueError("attack inputs must lie in [0, 1]")
        if len(seeds) != len(x):
            raise ValueError(f"need one seed per sample, got {len(seeds)} for {len(x)}")
        if self.needs_starts != (starts is not None):
            raise ValueError(f"{type(self).__name__} {'needs' if self.needs_starts else 'takes no'} starting points")
        extra = {"starts": starts} if starts is not None else {}
        found = self.run(logits_fn, x, labels, epsilon, seeds, targeted, **extra)
        found = found if isinstance(found, Adversarials) else Adversarials(found)
        return Adversarials(project(x, found.inputs.detach(), epsilon, self.norm), found.records)

    @abstractmethod
    def run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
            targeted: bool) -> Tensor | Adversarials:
        """Return candidate adversarials for ``x`` with per-sample ``epsilon`` (an attack that ``needs_starts``
        takes them as a keyword ``starts``)."""

    @staticmethod
    def uniform(x: Tensor, seeds: Sequence[int]) -> Tensor:
        """U[0, 1) noise shaped like ``x``, each sample's from its own seed (independent of the batch)."""
        return per_item_draws(x.shape[1:], seeds, "uniform").to(device=x.device, dtype=x.dtype)

    def describe(self) -> dict[str, Any]:
        return {"norm": self.norm, "options": self.options.model_dump()}
