"""Predify a user's own backbone from the command line: ``--model custom -o config=FILE -o backbone=MOD:FN``.

``backbone`` names an importable zero-argument callable that returns the (trained) ``nn.Module``; it is
imported with :mod:`importlib`, never ``eval``'d. ``pcrobust train --plugin predify --model custom`` trains the
feedback (Eq. 3) on a registered dataset's ``train`` split and writes a checkpoint for ``--weights``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from pcrobust.errors import PcrobustError
from pcrobust.registry import TrainingRequest
from pcrobust_predify.checkpoint import load_checkpoint, save_checkpoint
from pcrobust_predify.config import load_config, predify, split_options
from pcrobust_predify.network import PredifyNet
from pcrobust_predify.training import settings_from_options, train_feedback

MODEL_NAME = "custom"
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def import_backbone(spec: str) -> nn.Module:
    """Call ``package.module:factory`` and check that it returns an ``nn.Module``."""
    if not _CALLABLE.match(spec):
        raise PcrobustError(f"backbone must look like 'package.module:factory', got {spec!r}")
    module_name, _, attribute = spec.partition(":")
    try:
        target: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise PcrobustError(f"cannot import backbone {spec!r}: {exc}") from None
    if not callable(target):
        raise PcrobustError(f"backbone {spec!r} is not callable")
    backbone = target()
    if not isinstance(backbone, nn.Module):
        raise PcrobustError(f"backbone {spec!r} returned {type(backbone).__name__}, not an nn.Module")
    return backbone


def _network(options: Mapping[str, str], allowed: tuple[str, ...]) -> PredifyNet:
    hps, rest = split_options(options, ("config", "backbone", *allowed))
    missing = [key for key in ("config", "backbone") if key not in rest]
    if missing:
        raise PcrobustError(f"model {MODEL_NAME!r} needs -o {missing[0]}=...")
    return predify(import_backbone(rest["backbone"]), load_config(Path(rest["config"])), hyperparameters=hps)


def build(weights: Path | None, options: Mapping[str, str]) -> PredifyNet:
    if weights is None:
        raise PcrobustError(f"model {MODEL_NAME!r} needs --weights: a checkpoint from "
                            f"'pcrobust train --plugin predify --model {MODEL_NAME}'")
    net = _network(options, ())
    load_checkpoint(net, weights)
    return net.eval()


def weight_files(weights: Path | None, options: Mapping[str, str]) -> list[Path]:
    return [weights] if weights else []


@dataclass(frozen=True)
class FeedbackTraining:
    """``pcrobust train --model custom`` options beyond the model's own."""

    dataset: str = ""
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64


def train(request: TrainingRequest) -> Path:
    """Train the feedback of the configured backbone on ``-o dataset=NAME`` (its train split)."""
    names = tuple(f.name for f in fields(FeedbackTraining))
    net = _network(request.options, names)
    settings = settings_from_options(FeedbackTraining, {k: v for k, v in request.options.items() if k in names})
    if not settings.dataset:
        raise PcrobustError("training needs -o dataset=NAME (a registered dataset with a train split)")
    data = request.datasets.get(settings.dataset).load("train")
    torch.manual_seed(request.seed)
    losses = train_feedback(net, data.images, epochs=settings.epochs, lr=settings.lr,
                            batch_size=settings.batch_size, seed=request.seed)
    return save_checkpoint(net, request.out, {"model": MODEL_NAME, "seed": request.seed, "options": dict(
        request.options), "feedback_loss_per_epoch": losses, "torch": str(torch.__version__)})
