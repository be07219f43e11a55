"""A predictive-coding classifier with test-time inference that means something.

Value nodes: the image h_0 (clamped), hidden states h_1..h_{L-1}, and the label node h_L. Two sets of
predictions enter the energy (PCX's Eq. 1, identity covariances):

- bottom-up: μ_l = σ(W_l h_{l-1} + b_l) for hidden l, and μ_L = W_L h_{L-1} + b_L (the logits);
- top-down: ν_{l-1} = σ(V_l h_l + c_l) predicts each hidden layer from the one above, and the image from h_1
  (linear, in normalised pixels), weighted by ``generative_weight``.

F = Σ_l ½‖h_l − μ_l‖² + λ Σ_l ½‖h_{l-1} − ν_{l-1}‖² (+ the label node's energy while training). At test time
the label node is free: its energy vanishes at h_L = μ_L, so the logits are read from the top hidden state. t = 0
is the feedforward pass (forward initialisation, every bottom-up error zero); each step t ≥ 1 is one step of SGD
with momentum on the hidden states, the image clamped. Without the top-down terms that state would already be the
minimum and nothing would move.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcrobust.errors import PcrobustError
from pcrobust.models import Normalization, TimestepModel, TimestepOutput

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh, "hard_tanh": F.hardtanh, "leaky_relu": F.leaky_relu, "gelu": F.gelu}
MEAN, STD = 0.5, 0.5  # PCX's MNIST normalisation (Table 6)


@dataclass(frozen=True)
class Architecture:
    """Layer sizes, the activation σ and the weight λ of the top-down errors in the energy."""

    image_shape: tuple[int, int, int] = (1, 28, 28)
    hidden: tuple[int, ...] = (96, 64)
    classes: int = 10
    activation: str = "tanh"
    generative_weight: float = 0.3

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise PcrobustError(f"unknown activation {self.activation!r}; available: {', '.join(ACTIVATIONS)}")
        if not self.hidden or min(self.hidden) < 1:
            raise PcrobustError("hidden must name at least one layer size, each at least 1")
        if self.generative_weight <= 0:
            raise PcrobustError(f"generative_weight must be positive, got {self.generative_weight}")

    @property
    def pixels(self) -> int:
        channels, height, width = self.image_shape
        return channels * height * width

    def to_dict(self) -> dict[str, Any]:
        return {"image_shape": list(self.image_shape), "hidden": list(self.hidden), "classes": self.classes,
                "activation": self.activation, "generative_weight": self.generative_weight}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        shape = tuple(int(v) for v in data["image_shape"])
        return cls((shape[0], shape[1], shape[2]), tuple(int(v) for v in data["hidden"]), int(data["classes"]),
                   str(data["activation"]), float(data["generative_weight"]))


@dataclass(frozen=True)
class Inference:
    """Test-time inference: SGD with momentum on the hidden states (``-o state_lr=... -o momentum=...``)."""

    state_lr: float = 0.1
    momentum: float = 0.5


class PCClassifier(TimestepModel):
    """The network of the module docstring; ``layers`` are bottom-up (``layers[-1]`` gives the logits),
    ``decoder[l]`` predicts layer l (0: the image) from layer l + 1."""

    gradient_modes = ("exact",)
    measure_names = ("energy", "image_error")

    def __init__(self, architecture: Architecture, inference: Inference, default_timesteps: int) -> None:
        super().__init__()
        self.architecture = architecture
        self.inference = inference
        self.num_classes = architecture.classes
        self.default_timesteps = default_timesteps
        self.normalization = Normalization([MEAN] * architecture.image_shape[0], [STD] * architecture.image_shape[0])
        sizes = [architecture.pixels, *architecture.hidden]
        above = [*sizes[1:], architecture.classes]
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes, above, strict=True)])
        self.decoder = nn.ModuleList([nn.Linear(b, a) for a, b in zip(sizes[:-1], sizes[1:], strict=True)])
        self.sigma = ACTIVATIONS[architecture.activation]

    # --- predictions and energies ---------------------------------------------------------------------------

    def flat_image(self, x: Tensor) -> Tensor:
        return self.normalization(x).flatten(1)

    def forward_states(self, image: Tensor) -> list[Tensor]:
        """Forward initialisation: every hidden state set to its bottom-up prediction."""
        states, below = [], image
        for layer in self.layers[:-1]:
            below = self.sigma(layer(below))
            states.append(below)
        return states

    def logits_of(self, states: list[Tensor]) -> Tensor:
        """μ_L, the label node's prediction, from the top hidden state."""
        return self.layers[-1](states[-1])

    def predict_down(self, level: int, state: Tensor) -> Tensor:
        """ν_level from h_{level+1}: the image (level 0) linearly, a hidden layer through σ."""
        out = self.decoder[level](state)
        return out if level == 0 else self.sigma(out)

    def bottom_up_errors(self, image: Tensor, states: list[Tensor]) -> list[Tensor]:
        """Per-sample ½‖h_l − μ_l‖² for every hidden layer."""
        below = [image, *states[:-1]]
        return [0.5 * (h - self.sigma(layer(b))).pow(2).sum(1)
                for h, b, layer in zip(states, below, self.layers[:-1], strict=True)]

    def top_down_errors(self, image: Tensor, states: list[Tensor]) -> list[Tensor]:
        """Per-sample ½‖h_{l-1} − ν_{l-1}‖² for the image and every hidden layer below the top."""
        below = [image, *states[:-1]]
        return [0.5 * (b - self.predict_down(level, h)).pow(2).sum(1)
                for level, (b, h) in enumerate(zip(below, states, strict=True))]

    def hidden_energy(self, image: Tensor, states: list[Tensor]) -> Tensor:
        """Per-sample F with the label node free (its energy zero): what test-time inference descends."""
        weight = self.architecture.generative_weight
        return (torch.stack(self.bottom_up_errors(image, states)).sum(0)
                + weight * torch.stack(self.top_down_errors(image, states)).sum(0))

    # --- test-time inference --------------------------------------------------------------------------------

    def relax(self, image: Tensor, steps: int) -> list[list[Tensor]]:
        """The hidden states after 0..steps inference steps. The steps are differentiable (the graph is kept)
        whenever autograd is on and something requires a gradient, so attacks see through them."""
        keep = torch.is_grad_enabled() and (image.requires_grad or any(p.requires_grad for p in self.parameters()))
        states = self.forward_states(image)
        trajectory = [states]
        velocity = [torch.zeros_like(h) for h in states]
        lr, momentum = self.inference.state_lr, self.inference.momentum
        for _ in range(steps):
            with torch.enable_grad():
                current = states if keep else [h.detach().requires_grad_(True) for h in states]
                energy = self.hidden_energy(image if keep else image.detach(), current).sum()
                grads = torch.autograd.grad(energy, current, create_graph=keep)
            velocity = [momentum * v + g for v, g in zip(velocity, grads, strict=True)]
            states = [h - lr * v for h, v in zip(current, velocity, strict=True)]
            if not keep:
                states = [h.detach() for h in states]
                velocity = [v.detach() for v in velocity]
            trajectory.append(states)
        return trajectory

    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        image = self.flat_image(x)
        trajectory = self.relax(image, timesteps)
        logits = torch.stack([self.logits_of(states) for states in trajectory])
        output = TimestepOutput(logits)
        if errors:
            output.measures = {
                "energy": torch.stack([self.hidden_energy(image, s) for s in trajectory]),
                "image_error": torch.stack([self.top_down_errors(image, s)[0] for s in trajectory]) * 2
                / self.architecture.pixels * STD ** 2,
            }
        if reconstructions:
            shape = (len(x), *self.architecture.image_shape)
            output.reconstructions = torch.stack(
                [(self.predict_down(0, s[0]) * STD + MEAN).view(shape) for s in trajectory])
        return output

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.architecture.to_dict(),
                "inference": {"state_lr": self.inference.state_lr, "momentum": self.inference.momentum,
                              "clamped": "image", "free": "label node (read out as the logits)",
                              "initialisation": "feedforward (t = 0)"},
                "measures": {"energy": "free energy F of the hidden states per image (label node free)",
                             "image_error": "mean squared error of the top-down image prediction, pixel units"},
                "normalization": self.normalization.describe()}
