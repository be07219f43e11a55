"""``lateral-digits``: a small conv net whose second layer is driven by lateral recurrence for T steps.

    h(0) = relu(d),  h(t+1) = relu(d + gain · W_lat ∗ h(t)),  logits(t) = readout(h(t))

with ``d`` the feedforward drive of the image. t = 0 is the plain feedforward pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pcrobust.errors import PcrobustError
from pcrobust.models import Normalization, TimestepModel, TimestepOutput

MODEL_NAME = "lateral-digits"
DATASET = "mnist-5k"
OPTIONS = ("gain",)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


def shipped_weights() -> Path:
    """The trained state dict shipped in the package (made by ``scripts/train.py``)."""
    return Path(str(files("pcrobust_example") / "weights" / "lateral.pt"))


class LateralNet(TimestepModel):
    """Images [B, 1, 28, 28] in [0, 1] to logits [T+1, B, 10].

    Gradient modes: ``exact`` back-propagates through every recurrent step; ``truncated`` stops the gradient
    at the previous state, so each step's gradient reaches the image through its feedforward drive only.
    """

    num_classes = 10
    default_timesteps = 4
    gradient_modes = ("exact", "truncated")

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = gain
        self.normalization = Normalization(MNIST_MEAN, MNIST_STD)
        self.drive = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
        )
        self.lateral = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.readout = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 10))

    def unroll(self, x: Tensor, timesteps: int, *, reconstructions: bool = False,
               errors: bool = True) -> TimestepOutput:
        if timesteps < 0:
            raise ValueError(f"timesteps must be non-negative, got {timesteps}")
        drive = self.drive(self.normalization(x))
        state = torch.relu(drive)
        logits = [self.readout(state)]
        for _ in range(timesteps):
            previous = state.detach() if self.gradient_mode == "truncated" else state
            state = torch.relu(drive + self.gain * self.lateral(previous))
            logits.append(self.readout(state))
        return TimestepOutput(torch.stack(logits))  # no extras: errors and reconstructions stay None

    def describe(self) -> dict[str, Any]:
        return {"architecture": "conv8-pool-conv16 + 3×3 lateral recurrence, linear readout", "gain": self.gain,
                "normalization": self.normalization.describe()}


def parse_options(options: Mapping[str, str]) -> float:
    """The ``gain`` of the lateral connections (default 1, the trained value); other keys are errors."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise PcrobustError(f"unknown option {unknown[0]!r} of {MODEL_NAME}; options: {', '.join(OPTIONS)}")
    try:
        return float(options.get("gain", "1"))
    except ValueError:
        raise PcrobustError(f"option gain must be a number, got {options['gain']!r}") from None


def build(weights: Path | None, options: Mapping[str, str]) -> LateralNet:
    """The net with the shipped weights (or the state dict at ``weights``), ready for evaluation."""
    net = LateralNet(gain=parse_options(options))
    path = weights or shipped_weights()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except (OSError, RuntimeError) as exc:
        raise PcrobustError(f"cannot load {MODEL_NAME} weights {path}: {str(exc).splitlines()[0]}") from None
    return net.eval()


def weight_files(weights: Path | None, options: Mapping[str, str]) -> list[Path]:
    """The files whose checksums results record."""
    return [weights or shipped_weights()]
