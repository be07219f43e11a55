"""FGSM (Goodfellow et al. 2015), L∞: one signed-gradient step of ``rel_stepsize · ε``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from pcrobust.attacks import Attack, AttackOptions, LogitsFn


class FGSMOptions(AttackOptions):
    """FGSM's typed options: a plan's ``[sections.options]`` table, validated before any work."""

    rel_stepsize: float = Field(1.0, gt=0, le=1, description="the step as a fraction of ε")
    loss: Literal["cross-entropy", "margin"] = Field("cross-entropy", description="the loss whose gradient is taken")


def margin(logits: Tensor, labels: Tensor) -> Tensor:
    """``logits[label] − max over the other classes``, per row."""
    own = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    return own - logits.scatter(1, labels.view(-1, 1), float("-inf")).amax(1)


class FGSM(Attack):
    """One step down the loss of the target (targeted) or up the loss of the true class (untargeted); the base
    class projects the result into the ε-ball and [0, 1]."""

    options: FGSMOptions

    def run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
            targeted: bool) -> Tensor:
        z = x.detach().requires_grad_(True)
        logits = logits_fn(z)
        if self.options.loss == "margin":
            goal = margin(logits, labels).sum()  # rises as the target is approached, falls as the label is left
            loss = -goal if targeted else goal
        else:
            cross_entropy = F.cross_entropy(logits, labels, reduction="sum")
            loss = cross_entropy if targeted else -cross_entropy
        (gradient,) = torch.autograd.grad(loss, z)  # the attack minimises ``loss``
        eps = epsilon.view(-1, *([1] * (x.dim() - 1)))
        return x - self.options.rel_stepsize * eps * gradient.sign()
