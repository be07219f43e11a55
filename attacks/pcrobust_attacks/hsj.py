"""HopSkipJump (Chen, Jordan & Wainwright 2020), L2 and L∞: a decision-based attack that walks along the
decision boundary from an adversarial start towards the clean image, using only the model's decisions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pydantic import Field
from torch import Tensor

from pcrobust.attacks import Adversarials, Attack, AttackOptions, LogitsFn
from pcrobust.seeding import derived_seed
from pcrobust.vocabulary import Norm
from pcrobust_attacks.options import DECISION_BACKEND_HELP, DecisionBackend

DRAW_BLOCK = 100
"""Directions drawn per generator call; fixed, so a copy's draws depend on its seed and sample count alone."""

MAX_HALVINGS = 30
"""Halvings of the geometric step search before a copy gives up its step for the iteration."""


class HSJOptions(AttackOptions):
    """The paper's parameters (γ = 1, 100·√t boundary samples capped at 10⁴, geometric step search) with
    Foolbox's 64 iterations, and a query budget per copy."""

    steps: int = Field(64, ge=1, description="iterations (gradient estimate, geometric step, binary search)")
    initial_evals: int = Field(100, ge=1, description="boundary samples of the first gradient estimate "
                                                      "(initial_evals·√t at iteration t)")
    max_evals: int = Field(10000, ge=1, description="most boundary samples of one gradient estimate")
    gamma: float = Field(1.0, gt=0, description="binary-search threshold θ = γ/d^1.5 (L2) or γ/d² (L∞), "
                                                "d the number of pixels")
    max_queries: int = Field(10000, ge=1, description="model queries per copy; a copy stops once they are spent")
    max_batch: int = Field(8192, ge=1, description="most rows per model call")
    backend: DecisionBackend = Field("pcrobust", description=DECISION_BACKEND_HELP)


def distances(delta: Tensor, norm: Norm) -> Tensor:
    """Per-sample size of ``delta`` (``[N, ...]``) in ``norm``."""
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def _column(values: Tensor, like: Tensor) -> Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def between(x: Tensor, p: Tensor, alpha: Tensor, norm: Norm) -> Tensor:
    """Points from ``x`` (α = 0) towards ``p``: the blend ``(1 − α)·x + α·p`` (L2), or ``p`` clipped to the L∞
    ball of radius α around ``x`` (L∞)."""
    a = _column(alpha, x)
    if norm == "linf":
        return torch.minimum(torch.maximum(p, x - a), x + a)
    return (1 - a) * x + a * p


class Decisions:
    """Whether inputs are adversarial for their copies (rows of ``copies``), asked in model calls of at most
    ``max_batch`` rows; ``spent`` counts each copy's queries."""

    def __init__(self, logits_fn: LogitsFn, labels: Tensor, targeted: bool, max_batch: int) -> None:
        self._logits_fn = logits_fn
        self._labels = labels
        self._targeted = targeted
        self._max_batch = max_batch
        self.spent = torch.zeros(len(labels), dtype=torch.long, device=labels.device)

    def __call__(self, z: Tensor, copies: Tensor) -> Tensor:
        answers = []
        for rows, chunk in zip(copies.split(self._max_batch), z.split(self._max_batch), strict=True):
            hit = self._logits_fn(chunk, rows).argmax(1) == self._labels[rows]
            answers.append(hit if self._targeted else ~hit)
        self.spent.index_add_(0, copies, torch.ones_like(copies))
        return torch.cat(answers)


class HopSkipJump(Attack):
    """From each copy's adversarial start (``starts``), a binary search to the boundary between it and the
    clean image, then ``steps`` iterations of: an estimate of the boundary's normal from ``initial_evals·√t``
    random directions (Gaussian for L2, uniform in the cube for L∞) of length δ (√d·θ·distance for L2,
    d·θ·distance for L∞; 0.1 at t = 1), drawn from ``derived_seed(the copy's seed, t)``; a geometric search
    from distance/√t, halving until the step along the estimate (its sign for L∞) stays adversarial; a binary
    search back to the boundary (threshold θ = γ/d^1.5 for L2, blending; γ/d² for L∞, clipping to a
    shrinking box). Every point a copy holds was asked and found adversarial; the smallest it found is
    returned. The estimate is normalised per copy, so no copy's step depends on the others.

    A copy stops when its iterations are done, its perturbation is zero, or its ``max_queries`` are spent
    (the last estimate may then use fewer samples, and a search stops where it is). A copy whose start is
    not adversarial costs one query and keeps its clean input. Records per copy: ``distance`` (the returned
    perturbation's size in the attack's norm; NaN where the start was not adversarial) and ``iterations``
    (steps taken). ε is ignored: the engine clips the answer to each budget."""

    minimizes = True
    needs_starts = True
    options: HSJOptions

    def run(self, logits_fn: LogitsFn, x: Tensor, labels: Tensor, epsilon: Tensor, seeds: Sequence[int],
            targeted: bool, starts: Tensor | None = None) -> Adversarials:
        if starts is None:
            raise ValueError("HopSkipJump needs starting points")
        with torch.no_grad():
            return self._run(Decisions(logits_fn, labels, targeted, self.options.max_batch), x, seeds,
                             starts.to(device=x.device, dtype=x.dtype))

    def _run(self, decide: Decisions, x: Tensor, seeds: Sequence[int], starts: Tensor) -> Adversarials:
        opts = self.options
        pixels = x[0].numel()
        theta = opts.gamma / (pixels ** 2 if self.norm == "linf" else pixels ** 1.5)
        iterations = torch.zeros(len(x), dtype=torch.long, device=x.device)

        running = decide(starts, torch.arange(len(x), device=x.device))
        valid = running.clone()
        current = torch.where(_column(running, x), starts, x)
        rows = running.nonzero().squeeze(1)
        current[rows] = self._binary_search(decide, x[rows], current[rows], rows, theta)
        distance = distances(current - x, self.norm)
        best, best_distance = current.clone(), distance.clone()

        for t in range(1, opts.steps + 1):
            running &= (distance > 0) & (decide.spent < opts.max_queries)
            rows = running.nonzero().squeeze(1)
            if not len(rows):
                break
            scale = pixels * theta if self.norm == "linf" else math.sqrt(pixels) * theta
            delta = torch.full_like(distance[rows], 0.1) if t == 1 else scale * distance[rows]
            evals = min(int(opts.initial_evals * math.sqrt(t)), opts.max_evals)
            gradient = self._gradient(decide, current[rows], rows, delta, evals,
                                      [derived_seed(seeds[r], t) for r in rows.tolist()])
            update = gradient.sign() if self.norm == "linf" else gradient
            stepped, found = self._geometric_step(decide, current[rows], update, distance[rows] / math.sqrt(t), rows)
            rows, stepped = rows[found], stepped[found]
            current[rows] = self._binary_search(decide, x[rows], stepped, rows, theta)
            distance[rows] = distances(current[rows] - x[rows], self.norm)
            iterations[rows] += 1
            better = rows[distance[rows] < best_distance[rows]]
            best[better], best_distance[better] = current[better], distance[better]

        best_distance[~valid] = float("nan")
        return Adversarials(best, {"distance": best_distance, "iterations": iterations})

    def _left(self, decide: Decisions, rows: Tensor) -> Tensor:
        return self.options.max_queries - decide.spent[rows]

    def _binary_search(self, decide: Decisions, x: Tensor, p: Tensor, rows: Tensor, theta: float) -> Tensor:
        """Per copy ``rows[i]``, the adversarial point nearest ``x[i]`` found by bisecting between ``x[i]`` and
        the adversarial ``p[i]`` until the bracket is below θ (L2, in blend units) or min(θ, θ·distance)
        (L∞, in radius), or the copy's queries are spent."""
        if self.norm == "linf":
            high = distances(p - x, self.norm)
            threshold = torch.clamp(high * theta, max=theta)
        else:
            high = torch.ones(len(x), dtype=x.dtype, device=x.device)
            threshold = torch.full_like(high, theta)
        low, found = torch.zeros_like(high), p.clone()
        while True:
            open_ = ((high - low > threshold) & (self._left(decide, rows) > 0)).nonzero().squeeze(1)
            if not len(open_):
                return found
            mid = (high[open_] + low[open_]) / 2
            points = between(x[open_], p[open_], mid, self.norm)
            adversarial = decide(points, rows[open_])
            high[open_] = torch.where(adversarial, mid, high[open_])
            low[open_] = torch.where(adversarial, low[open_], mid)
            found[open_[adversarial]] = points[adversarial]

    def _geometric_step(self, decide: Decisions, z: Tensor, update: Tensor, size: Tensor, rows: Tensor
                        ) -> tuple[Tensor, Tensor]:
        """Per copy, ``clip(z + s·update, 0, 1)`` for the first ``s`` of ``size, size/2, ...`` found adversarial,
        and whether one was found (not after ``MAX_HALVINGS`` halvings, or when the queries ran out)."""
        found, out, size = torch.zeros(len(z), dtype=torch.bool, device=z.device), z.clone(), size.clone()
        for _ in range(MAX_HALVINGS + 1):
            open_ = (~found & (self._left(decide, rows) > 0)).nonzero().squeeze(1)
            if not len(open_):
                break
            candidate = (z[open_] + _column(size[open_], z) * update[open_]).clamp(0.0, 1.0)
            adversarial = decide(candidate, rows[open_])
            out[open_[adversarial]] = candidate[adversarial]
            found[open_[adversarial]] = True
            size[open_[~adversarial]] /= 2
        return out, found

    def _directions(self, generator: torch.Generator, count: int, shape: Sequence[int]) -> Tensor:
        """``count`` random directions of unit L2 length: Gaussian (L2) or uniform in the cube (L∞)."""
        if self.norm == "linf":
            draws = torch.rand((count, *shape), generator=generator) * 2 - 1
        else:
            draws = torch.randn((count, *shape), generator=generator)
        return draws / _column(draws.flatten(1).norm(dim=1), draws)

    def _gradient(self, decide: Decisions, z: Tensor, rows: Tensor, delta: Tensor, evals: int,
                  seeds: Sequence[int]) -> Tensor:
        """Per copy, the unit-length Monte Carlo estimate of the boundary's normal at ``z[i]``: the mean of
        ``(φ(z + δu) − mean φ)·u`` over ``min(evals, queries left)`` directions u (φ = ±1 for adversarial or
        not; the mean of φ is not subtracted when every φ agrees), with u taken as what is left of ``δu``
        after clipping to [0, 1]."""
        counts = self._left(decide, rows).clamp(max=evals)
        weighted, plain = torch.zeros_like(z), torch.zeros_like(z)
        votes = torch.zeros(len(z), dtype=z.dtype, device=z.device)
        pending: list[tuple[int, Tensor]] = []

        def flush() -> None:
            owner = torch.cat([torch.full((len(u),), i, dtype=torch.long) for i, u in pending]).to(z.device)
            u = torch.cat([u for _, u in pending]).to(device=z.device, dtype=z.dtype)
            step = _column(delta[owner], z)
            probes = (z[owner] + step * u).clamp(0.0, 1.0)
            u = (probes - z[owner]) / step
            phi = decide(probes, rows[owner]).to(z.dtype) * 2 - 1
            weighted.index_add_(0, owner, _column(phi, z) * u)
            plain.index_add_(0, owner, u)
            votes.index_add_(0, owner, phi)
            pending.clear()

        queued = 0
        for i, (seed, count) in enumerate(zip(seeds, counts.tolist(), strict=True)):
            generator = torch.Generator().manual_seed(seed)
            for start in range(0, count, DRAW_BLOCK):
                block = min(DRAW_BLOCK, count - start)
                if pending and queued + block > self.options.max_batch:
                    flush()
                    queued = 0
                pending.append((i, self._directions(generator, block, z.shape[1:])))
                queued += block
        if pending:
            flush()
        n = _column(counts.to(z.dtype), z)
        mean_phi = _column(votes, z) / n
        gradient = (weighted - torch.where(mean_phi.abs() < 1, mean_phi, 0.0) * plain) / n
        return gradient / _column(gradient.flatten(1).norm(dim=1).clamp_min(1e-12), z)
