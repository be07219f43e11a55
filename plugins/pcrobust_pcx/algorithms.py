"""The PC learning algorithms of PCX (section 4, appendix B): what the label node is clamped to, its energy,
how the weight gradient of the bottom-up pathway is scaled, and whether weights move at every inference step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from pcrobust.seeding import derived_seed

Algorithm = Literal["pc-ce", "pc-se", "ipc", "pn", "nn", "cn"]
ALGORITHMS: tuple[Algorithm, ...] = ("pc-ce", "pc-se", "ipc", "pn", "nn", "cn")
DESCRIPTIONS = {
    "pc-ce": "standard PC, label node clamped to the one-hot label under a cross-entropy energy",
    "pc-se": "standard PC, label node clamped to the one-hot label under a squared-error energy",
    "ipc": "incremental PC: a weight step after every inference step (squared-error label energy)",
    "pn": "positive nudging: label node fixed to μ_L + β(y − μ_L), weight gradient × 1/β",
    "nn": "negative nudging: label node fixed to μ_L − β(y − μ_L), weight gradient × −1/β (inverted)",
    "cn": "centred nudging: each epoch positive or negative nudging, drawn from (seed, epoch)",
}


@dataclass(frozen=True)
class Clamp:
    """One epoch's label node: its value from the one-hot label and the forward-initialised logits μ_L, its
    energy, and the factor of the bottom-up weight gradient."""

    beta: float
    cross_entropy: bool

    def target(self, onehot: Tensor, logits: Tensor) -> Tensor:
        return onehot if self.beta == 1 else logits + self.beta * (onehot - logits)

    def energy(self, target: Tensor, logits: Tensor) -> Tensor:
        """Per-sample energy of the label node: −Σ y·log softmax(μ_L) or ½‖h_L − μ_L‖²."""
        if self.cross_entropy:
            return -(target * F.log_softmax(logits, dim=1)).sum(1)
        return 0.5 * (target - logits).pow(2).sum(1)

    @property
    def gradient_scale(self) -> float:
        return 1.0 / self.beta


def nudging_sign(algorithm: Algorithm, seed: int, epoch: int) -> int:
    """+1 (towards the label) or −1 (away from it); centred nudging draws it per epoch from (seed, epoch)."""
    if algorithm == "cn":
        generator = torch.Generator().manual_seed(derived_seed(seed, epoch))
        return 1 if bool(torch.randint(0, 2, (1,), generator=generator).item()) else -1
    return -1 if algorithm == "nn" else 1


def clamp_for_epoch(algorithm: Algorithm, epoch: int, seed: int, beta0: float, beta_increase: float) -> Clamp:
    """The label clamp of epoch ``epoch`` (0-based): standard PC clamps to the label (β = 1); nudging uses
    |β| = min(β₀ + epoch·β_ir, 1), so it moves towards standard PC as training goes on (appendix B)."""
    if algorithm in ("pn", "nn", "cn"):
        size = min(beta0 + epoch * beta_increase, 1.0)
        return Clamp(nudging_sign(algorithm, seed, epoch) * size, cross_entropy=False)
    return Clamp(1.0, cross_entropy=algorithm == "pc-ce")
