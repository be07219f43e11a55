"""Training: the backbone by cross-entropy, the feedback by Eq. 3 (reconstruction at t = 0, backbone frozen)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from pcrobust.errors import PcrobustError
from pcrobust.models import evaluation_mode
from pcrobust_predify.network import PredifyNet

SettingsT = TypeVar("SettingsT")


def settings_from_options(cls: type[SettingsT], options: Mapping[str, str]) -> SettingsT:
    """Fill the dataclass ``cls`` from ``KEY=VALUE`` strings, converting each to its field's default's type."""
    defaults: dict[str, Any] = {f.name: f.default for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(options) - set(defaults)
    if unknown:
        raise PcrobustError(f"unknown training option {sorted(unknown)[0]!r}; available: {', '.join(defaults)}")
    try:
        return cls(**{key: type(defaults[key])(value) for key, value in options.items()})
    except ValueError as exc:
        raise PcrobustError(f"training option values must be numbers: {exc}") from None


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    order = torch.randperm(n, generator=generator)
    yield from order.split(batch_size)


def train_classifier(model: nn.Module, images: Tensor, labels: Tensor, *, epochs: int, lr: float,
                     batch_size: int, seed: int) -> None:
    """Supervised cross-entropy training with Adam and a seeded shuffle."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        bar = tqdm(list(_batches(len(labels), batch_size, generator)), desc=f"backbone epoch {epoch + 1}/{epochs}",
                   leave=False)
        for idx in bar:
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()


def feedback_loss(net: PredifyNet, images: Tensor) -> Tensor:
    """Eq. 3: the summed per-layer reconstruction MSE after the first (feedforward) pass."""
    errors = net.unroll(images, 0).reconstruction_errors
    assert errors is not None
    return errors[0].mean(1).sum()


def reconstruction_losses(net: PredifyNet, images: Tensor, batch_size: int) -> list[float]:
    """Each pcoder's mean reconstruction MSE after the feedforward pass (the terms of Eq. 3), over ``images``."""
    totals = torch.zeros(len(net.pcoders))
    with torch.no_grad(), evaluation_mode(net):
        for batch in images.split(batch_size):
            errors = net.unroll(batch, 0).reconstruction_errors
            assert errors is not None
            totals += errors[0].sum(1)
    return (totals / len(images)).tolist()


def train_feedback(net: PredifyNet, images: Tensor, *, epochs: int, lr: float, batch_size: int, seed: int,
                   checkpoint_dir: Path | None = None) -> list[float]:
    """Train only the predictors; the backbone stays frozen **and in eval mode** (no BatchNorm drift).

    Saves ``feedback_epochNNN.pt`` (predictor weights) into ``checkpoint_dir`` after each epoch when given.
    Returns the mean loss of each epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    predictors = [p for pc in net.pcoders for p in pc.parameters()]
    optimizer = torch.optim.Adam(predictors, lr=lr)
    history = []
    with evaluation_mode(net.backbone):
        net.pcoders.train()
        for epoch in range(epochs):
            bar = tqdm(list(_batches(len(images), batch_size, generator)),
                       desc=f"feedback epoch {epoch + 1}/{epochs}", leave=False)
            total = 0.0
            for idx in bar:
                loss = feedback_loss(net, images[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
                bar.set_postfix(loss=f"{loss.item():.4f}")
            history.append(total / len(images))
            if checkpoint_dir is not None:
                checkpoint_dir.mkdir(parents=True, exist_ok=True)
                torch.save({"feedback": net.pcoders.state_dict(), "epoch": epoch + 1},
                           checkpoint_dir / f"feedback_epoch{epoch + 1:03d}.pt")
        net.pcoders.eval()
    return history
