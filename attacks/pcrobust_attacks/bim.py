"""Basic Iterative Method (Kurakin et al. 2017), L∞: signed-gradient steps with projection."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pcrobust.attacks import Attack, GradientAttackOptions, LogitsFn, project


class BIM(Attack):
    """Moves by ``rel_stepsize·ε`` per step along the sign of the cross-entropy gradient (down for the
    target's, up for the true class's), projecting onto the ε-ball and [0, 1] after every step; optional
    uniform random start (which makes it L∞ PGD). The last iterate is returned, as in Foolbox 3."""

    options: GradientAttackOptions

    def run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
            targeted: bool) -> Tensor:
        eps = epsilon.view(-1, *([1] * (x.dim() - 1)))
        step = (-1.0 if targeted else 1.0) * self.options.rel_stepsize * eps
        x_adv = x
        if self.options.random_start:
            x_adv = project(x, x + (2 * self.uniform(x, seeds) - 1) * eps, epsilon, self.norm)
        for _ in range(self.options.steps):
            x_adv = x_adv.detach().requires_grad_(True)
            loss = F.cross_entropy(logits_fn(x_adv), labels, reduction="sum")
            (gradient,) = torch.autograd.grad(loss, x_adv)
            x_adv = project(x, x_adv + step * gradient.sign(), epsilon, self.norm)
        return x_adv.detach()
