"""Basic Iterative Method (Kurakin et al. 2017), L∞: signed-gradient steps with projection."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from pcrobust.attacks import Attack, GradientAttackOptions, LogitsFn, project
from pcrobust_attacks.options import BACKEND_HELP, Backend


class BIMOptions(GradientAttackOptions):
    """BIM's budget and the implementation that runs it."""

    backend: Backend = Field("pcrobust", description=BACKEND_HELP)


def summed_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """The cross-entropy summed over rows, computed in float64. Its gradient for the label is ``p − 1``: for a
    confidently classified image (the start of an untargeted attack) that is rounding noise in float32, and
    the step's direction with it."""
    return F.cross_entropy(logits.double(), labels, reduction="sum")


def step_lengths(rel_stepsize: float, epsilon: Tensor, like: Tensor) -> Tensor:
    """``rel_stepsize·ε`` per sample, shaped to broadcast over ``like``: computed in double precision and then
    rounded to ``like``'s dtype, as Foolbox and ART do with their Python-float step."""
    return (rel_stepsize * epsilon.double()).to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


class BIM(Attack):
    """Moves by ``rel_stepsize·ε`` per step along the sign of the cross-entropy gradient (down for the
    target's, up for the true class's), projecting onto the ε-ball and [0, 1] after every step; optional
    uniform random start (which makes it L∞ PGD). The last iterate is returned, as in Foolbox 3."""

    options: GradientAttackOptions

    def run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
            targeted: bool) -> Tensor:
        step = (-1.0 if targeted else 1.0) * step_lengths(self.options.rel_stepsize, epsilon, x)
        x_adv = x
        if self.options.random_start:
            eps = epsilon.view(-1, *([1] * (x.dim() - 1)))
            x_adv = project(x, x + (2 * self.uniform(x, seeds) - 1) * eps, epsilon, self.norm)
        for _ in range(self.options.steps):
            x_adv = x_adv.detach().requires_grad_(True)
            loss = summed_cross_entropy(logits_fn(x_adv), labels)
            (gradient,) = torch.autograd.grad(loss, x_adv)
            x_adv = project(x, x_adv + step * gradient.sign(), epsilon, self.norm)
        return x_adv.detach()
