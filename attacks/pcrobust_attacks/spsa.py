"""SPSA (Uesato et al. 2018), L∞: a gradient-free attack on the margin loss, with Adam on the perturbation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial

import torch
from pydantic import Field
from torch import Tensor

from pcrobust.attacks import Adversarials, Attack, AttackOptions, LogitsFn, project
from pcrobust.engine import margins
from pcrobust.seeding import derived_seed

LossFn = Callable[[Tensor], Tensor]

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class SPSAOptions(AttackOptions):
    """Uesato et al.'s parameters (δ = 0.01, Adam with lr = 0.01, 128 antithetic pairs per step), with
    100 iterations. The reference CNN-F evaluation ran only 7 iterations; this default does not."""

    steps: int = Field(100, ge=1, description="iterations (Adam updates)")
    delta: float = Field(0.01, gt=0, description="size of the Rademacher perturbations of the finite differences")
    lr: float = Field(0.01, gt=0, description="Adam learning rate on the perturbation")
    samples: int = Field(128, ge=1, description="antithetic ± pairs per step (2·samples evaluations)")
    early_stop_margin: float | None = Field(
        None, description="freeze a copy once its margin loss is below this value (None: never)")


def rademacher(shape: Sequence[int], seeds: Sequence[int], samples: int) -> Iterator[Tensor]:
    """``samples`` draws of ``[N, *shape]`` ±1, one at a time; row ``i`` of each comes from a generator seeded
    with ``seeds[i]`` alone, so a copy's directions do not depend on the batch it is in."""
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    for _ in range(samples):
        yield torch.stack([torch.randint(0, 2, tuple(shape), generator=g) for g in generators]) * 2 - 1


def margin_loss(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """Per-row loss to minimise: max other − target logit (targeted), label logit − max other (untargeted)."""
    margin = margins(logits, labels)
    return -margin if targeted else margin


def estimate_gradient(loss_fn: LossFn, x: Tensor, directions: Iterable[Tensor], delta: float) -> Tensor:
    """SPSA estimate of each row's loss gradient at ``x`` (``[N, ...]``): the mean over ``directions``
    (each ``[N, ...]`` of ±1) of ``(f(x + δv) − f(x − δv)) / 2δ · v``; one ``loss_fn`` call of N rows per
    evaluation, so row ``i`` of every call is copy ``i``'s own input."""
    shape = (-1, *([1] * (x.dim() - 1)))
    gradient, count = torch.zeros_like(x), 0
    for v in directions:
        v = v.to(device=x.device, dtype=x.dtype)
        difference = loss_fn(x + delta * v) - loss_fn(x - delta * v)
        gradient += (difference / (2 * delta)).view(shape) * v
        count += 1
    return gradient / count


class SPSA(Attack):
    """From the clean image, ``steps`` Adam updates of the perturbation along SPSA estimates of the margin
    loss's gradient, projected onto the ε-ball and [0, 1] after each. Each step's Rademacher directions of a
    copy come from ``derived_seed(its seed, step)``. The finite differences are taken at the current iterate
    and may reach δ outside [0, 1]. A copy whose loss falls below ``early_stop_margin`` is frozen and no
    longer queried; the last iterate of each copy is returned, with the number of updates each copy took
    (``iterations``: fewer than ``steps`` where it stopped early)."""

    options: SPSAOptions

    def run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
            targeted: bool) -> Adversarials:
        with torch.no_grad():
            return self._run(logits_fn, x, labels, epsilon, seeds, targeted)

    def _run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
             targeted: bool) -> Adversarials:
        opts = self.options
        beta1, beta2 = ADAM_BETAS

        x_adv = x.clone()
        first, second = torch.zeros_like(x), torch.zeros_like(x)
        active = torch.ones(len(x), dtype=torch.bool, device=x.device)
        iterations = torch.zeros(len(x), dtype=torch.long, device=x.device)

        def loss_fn(z: Tensor, rows: Tensor) -> Tensor:
            return margin_loss(logits_fn(z, rows), labels[rows], targeted)

        rows, running = torch.arange(len(x), device=x.device), list(range(len(x)))
        for step in range(opts.steps):
            if opts.early_stop_margin is not None:  # which copies still run is data: one host synchronisation
                rows = active.nonzero().squeeze(1)
                active[rows] = loss_fn(x_adv[rows], rows) >= opts.early_stop_margin
                rows = active.nonzero().squeeze(1)
                if not len(rows):
                    break
                running = rows.tolist()
            directions = rademacher(x.shape[1:], [derived_seed(seeds[r], step) for r in running], opts.samples)
            gradient = estimate_gradient(partial(loss_fn, rows=rows), x_adv[rows], directions, opts.delta)
            first[rows] = beta1 * first[rows] + (1 - beta1) * gradient
            second[rows] = beta2 * second[rows] + (1 - beta2) * gradient ** 2
            update = ((first[rows] / (1 - beta1 ** (step + 1)))
                      / ((second[rows] / (1 - beta2 ** (step + 1))).sqrt() + ADAM_EPS))
            x_adv[rows] = project(x[rows], x_adv[rows] - opts.lr * update, epsilon[rows], self.norm)
            iterations[rows] += 1
        return Adversarials(x_adv, {"iterations": iterations})
