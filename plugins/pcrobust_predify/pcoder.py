"""One predictive-coding layer ("pcoder"): the Eq. 2 update and the reconstruction error of Eq. 1."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Hyperparameters:
    """β (feedforward), λ (feedback), α (error correction) of one pcoder; 0 ≤ β + λ ≤ 1."""

    beta: float = 0.8
    lam: float = 0.1
    alpha: float = 0.01

    def __post_init__(self) -> None:
        if self.beta < 0 or self.lam < 0 or self.alpha < 0:
            raise ValueError(f"β, λ and α must be non-negative, got β={self.beta}, λ={self.lam}, α={self.alpha}")
        if self.beta + self.lam > 1:
            raise ValueError(f"need 0 ≤ β + λ ≤ 1, got β + λ = {self.beta + self.lam:g}")


def _kept(tensor: Tensor) -> Tensor:
    return tensor


@dataclass(frozen=True)
class Prediction:
    """What a pcoder computes from its representation at one timestep."""

    prediction: Tensor
    error: Tensor
    error_gradient: Tensor | None


class PCoder(nn.Module):
    """Holds the feedback predictor d_{n-1} = predictor(e_n) and the hyperparameters of layer n.

    The reconstruction error is per sample: the mean over C·H·W of (d_{n-1} − e_{n-1})², so the
    error-correction step of one image never depends on the batch (the reference package divides
    by B·C·H·W; ours equals it at batch size 1).
    """

    def __init__(self, predictor: nn.Module, hyperparameters: Hyperparameters, has_feedback: bool) -> None:
        super().__init__()
        self.predictor = predictor
        self.hyperparameters = hyperparameters
        self.has_feedback = has_feedback

    @property
    def effective_lambda(self) -> float:
        """λ as used: the top pcoder receives no feedback, so its λ is 0 (as in the reference package)."""
        return self.hyperparameters.lam if self.has_feedback else 0.0

    def update(self, feedforward: Tensor, feedback: Tensor | None, previous: Tensor, error_gradient: Tensor) -> Tensor:
        """Eq. 2: e_n(t+1) = β·ff + λ·d_n(t) + (1 − β − λ)·e_n(t) − α·∇ε_{n-1}(t)."""
        hp = self.hyperparameters
        lam = self.effective_lambda
        rep = hp.beta * feedforward + (1.0 - hp.beta - lam) * previous - hp.alpha * error_gradient
        if feedback is not None and lam > 0:
            rep = rep + lam * feedback
        return rep

    def predict(self, rep: Tensor, target: Tensor, *, need_gradient: bool, exact: bool) -> Prediction:
        """Prediction of the layer below, its per-sample MSE, and ∇ε with respect to ``rep``.

        ``exact`` keeps ∇ε differentiable (second order); otherwise it is a constant to autograd,
        which is what the reference package does.
        """
        outer_grad = torch.is_grad_enabled()
        with torch.enable_grad():
            tracked = outer_grad and rep.requires_grad
            source = rep if tracked else rep.detach().requires_grad_(True)
            # ∇ε is taken inside the forward pass: what it reads is kept as is, never deferred to a recomputation
            # (under activation checkpointing that would rerun the whole timestep from within itself)
            with torch.autograd.graph.saved_tensors_hooks(_kept, _kept):
                prediction = self.predictor(source)
                if prediction.shape != target.shape:
                    raise RuntimeError(f"predictor output {tuple(prediction.shape)} does not match its target "
                                       f"{tuple(target.shape)}")
                error = (prediction - target).pow(2).flatten(1).mean(1)
            gradient = None
            if need_gradient:
                (gradient,) = torch.autograd.grad(error.sum(), source, create_graph=exact and tracked,
                                                  retain_graph=True)
        if not outer_grad:
            prediction, error = prediction.detach(), error.detach()
        if gradient is not None and not (exact and tracked):
            gradient = gradient.detach()
        return Prediction(prediction, error, gradient)
