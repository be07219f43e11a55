"""L2 projected gradient descent with a random start (Madry et al. 2018), "RPGD" in the Predify paper."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field
from torch import Tensor

from pcrobust.attacks import Attack, AttackOptions, LogitsFn, project
from pcrobust.engine import margins
from pcrobust.seeding import derived_seed, per_item_draws
from pcrobust_attacks.bim import step_lengths, summed_cross_entropy
from pcrobust_attacks.options import BACKEND_HELP, Backend


class RPGDOptions(AttackOptions):
    """Foolbox's ``L2PGD`` defaults: 50 steps of 0.025·ε, a random start; restarts keep each copy's best run."""

    steps: int = Field(50, ge=1, description="iterations per restart")
    rel_stepsize: float = Field(0.025, gt=0, description="step length as a fraction of ε")
    random_start: bool = Field(True, description="start uniformly in the L2 ball (off: L2 BIM)")
    restarts: int = Field(1, ge=1, description="independent random starts; the best final iterate is kept")
    backend: Backend = Field("pcrobust", description=BACKEND_HELP)


def uniform_in_l2_ball(x: Tensor, epsilon: Tensor, seeds: Sequence[int]) -> Tensor:
    """One draw per sample, uniform in the L2 ball of radius ε: a Gaussian direction, normalised, times
    ε·u^(1/d) with u ~ U[0, 1) and d the number of pixels; each sample's from its own seed."""
    direction = per_item_draws(x.shape[1:], seeds, "normal").to(device=x.device, dtype=x.dtype)
    direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
    u = per_item_draws((), [derived_seed(seed, 1) for seed in seeds], "uniform").to(device=x.device, dtype=x.dtype)
    radius = epsilon * u ** (1.0 / x[0].numel())
    return direction * radius.view(-1, *([1] * (x.dim() - 1)))


def unit_l2(gradient: Tensor) -> Tensor:
    """Each sample's gradient divided by its L2 length (a zero gradient stays zero).

    The length has no floor (Foolbox floors it at 1e-12): in untargeted attacks on confidently classified
    images, float32 gradients are often shorter than that, and a floor would shorten their steps."""
    length = gradient.flatten(1).norm(dim=1).view(-1, *([1] * (gradient.dim() - 1)))
    return gradient * torch.where(length > 0, 1 / length, 0)


class RPGD(Attack):
    """Steps of ``rel_stepsize·ε`` along the L2-normalised cross-entropy gradient (down for the target's, up
    for the true class's), each followed by the projection: rescaling onto the ε-ball, then clipping to [0, 1]
    (Foolbox's order and that of Madry et al.'s robustness library; ART clips first). The last iterate of each
    restart, and of the restarts the one with the largest margin towards the criterion."""

    options: RPGDOptions

    def _one_run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
                 targeted: bool) -> Tensor:
        step = (-1.0 if targeted else 1.0) * step_lengths(self.options.rel_stepsize, epsilon, x)
        x_adv = x
        if self.options.random_start:
            x_adv = project(x, x + uniform_in_l2_ball(x, epsilon, seeds), epsilon, self.norm)
        for _ in range(self.options.steps):
            x_adv = x_adv.detach().requires_grad_(True)
            loss = summed_cross_entropy(logits_fn(x_adv), labels)
            (gradient,) = torch.autograd.grad(loss, x_adv)
            x_adv = project(x, x_adv + step * unit_l2(gradient), epsilon, self.norm)
        return x_adv.detach()

    def run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
            targeted: bool) -> Tensor:
        best, best_score = x, torch.full((len(x),), float("-inf"), device=x.device, dtype=x.dtype)
        for restart in range(self.options.restarts):
            restart_seeds = [derived_seed(seed, restart) for seed in seeds] if restart else seeds
            candidate = self._one_run(logits_fn, x, labels, epsilon, restart_seeds, targeted)
            with torch.no_grad():
                margin = margins(logits_fn(candidate), labels)
            score = margin if targeted else -margin
            better = score > best_score
            best = torch.where(better.view(-1, *([1] * (x.dim() - 1))), candidate, best)
            best_score = torch.maximum(score, best_score)
        return best
