"""Targeted Basic Iterative Method (Kurakin et al. 2017), L∞: signed-gradient steps with projection."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pcrobust.attacks import Attack, LogitsFn, project


class TargetedBIM(Attack):
    """Descends the cross-entropy of the target class by ``rel_stepsize·ε`` per step in sign-gradient
    direction, projecting onto the ε-ball and [0, 1] after every step; optional uniform random start
    (which makes it L∞ PGD). The last iterate is returned, as in Foolbox 3."""

    norm = "linf"
    targeted = True

    def run(self, logits_fn: LogitsFn, x: Tensor, target: Tensor, epsilon: Tensor,
            seeds: Sequence[int]) -> Tensor:
        eps = epsilon.view(-1, *([1] * (x.dim() - 1)))
        step = self.settings.rel_stepsize * eps
        x_adv = x
        if self.settings.random_start:
            x_adv = project(x, x + (2 * self.uniform(x, seeds) - 1) * eps, epsilon, self.norm)
        for _ in range(self.settings.steps):
            x_adv = x_adv.detach().requires_grad_(True)
            loss = F.cross_entropy(logits_fn(x_adv), target, reduction="sum")
            (gradient,) = torch.autograd.grad(loss, x_adv)
            x_adv = project(x, x_adv - step * gradient.sign(), epsilon, self.norm)
        return x_adv.detach()
