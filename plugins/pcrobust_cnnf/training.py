"""Training CNN-F with the losses of Table 1, optionally with adversarial training (section 3.2)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from pcrobust.errors import PcrobustError
from pcrobust.models import evaluation_mode
from pcrobust.registry import TrainingRequest
from pcrobust_cnnf.checkpoint import save_checkpoint
from pcrobust_cnnf.network import CNNF, Architecture, Pass, Trace
from pcrobust_cnnf.options import ETA
from pcrobust_cnnf.training_state import TrainingState, load_state, save_state


@dataclass(frozen=True)
class Recipe:
    """Every training setting (``-o KEY=VALUE`` of ``pcrobust train``).

    ``epsilon`` > 0 turns on adversarial training: PGD (L∞, pixel units, random start) on the first
    feedforward pass, cross-entropy on clean (weighted ``clean_weight``) and adversarial inputs, and the
    feedback of the adversarial pass reconstructing the clean features. ``lr_power`` > 0 decays the learning
    rate polynomially to 0, stepped per batch (the reference's poly schedule uses 0.9); ``train_size`` > 0 trains
    on the first that many training images only."""

    epochs: int = 6
    lr: float = 2e-3
    batch_size: int = 64
    cycles: int = 2
    reconstruction_weight: float = 0.1
    intermediate_weight: float = 0.1
    epsilon: float = 0.0
    pgd_steps: int = 7
    pgd_step_size: float = 0.035
    clean_weight: float = 0.1
    lr_power: float = 0.0
    train_size: int = 0


def recipe_from_options(options: Mapping[str, str]) -> Recipe:
    """A :class:`Recipe` from ``KEY=VALUE`` strings, each converted to its default's type."""
    defaults: dict[str, Any] = {f.name: f.default for f in fields(Recipe)}
    unknown = set(options) - set(defaults)
    if unknown:
        raise PcrobustError(f"unknown training option {sorted(unknown)[0]!r}; available: {', '.join(defaults)}")
    try:
        recipe = Recipe(**{key: type(defaults[key])(value) for key, value in options.items()})
    except ValueError as exc:
        raise PcrobustError(f"training option values must be numbers: {exc}") from None
    if recipe.cycles < 1 or recipe.epochs < 1 or recipe.batch_size < 1:
        raise PcrobustError("cycles, epochs and batch_size must be at least 1")
    if recipe.lr_power < 0 or recipe.train_size < 0:
        raise PcrobustError("lr_power and train_size must not be negative")
    return recipe


@dataclass(frozen=True)
class Losses:
    """Table 1, each averaged over the iterations: cross-entropy, reconstruction of h, intermediate."""

    cross_entropy: Tensor
    reconstruction: Tensor
    intermediate: Tensor

    def total(self, recipe: Recipe) -> Tensor:
        return (self.cross_entropy + recipe.reconstruction_weight * self.reconstruction
                + recipe.intermediate_weight * self.intermediate)


def _cross_entropy(trace: Trace, labels: Tensor) -> Tensor:
    return torch.stack([F.cross_entropy(p.logits, labels) for p in trace.passes]).mean()


def feedback_losses(trace: Trace, clean: Pass) -> tuple[Tensor, Tensor]:
    """‖h − g_t(k)‖² and the mean over the higher stages of ‖f_0(ℓ) − g_t(ℓ)‖², averaged over t.

    The targets are the clean pass's features, held fixed."""
    stages = sorted(clean.features)
    reconstruction, intermediate = [], []
    for feedback in trace.feedback:
        errors = [F.mse_loss(feedback.pre[s], clean.features[s].detach()) for s in stages]
        reconstruction.append(errors[0])
        intermediate.append(torch.stack(errors[1:]).mean() if len(errors) > 1 else errors[0].new_zeros(()))
    return torch.stack(reconstruction).mean(), torch.stack(intermediate).mean()


def standard_losses(net: CNNF, images: Tensor, labels: Tensor, cycles: int) -> Losses:
    """The losses of Table 1 on clean images, every iteration t = 0..cycles (feedback t = 0..cycles − 1)."""
    trace = net.trace(images, cycles)
    reconstruction, intermediate = feedback_losses(trace, trace.passes[0])
    return Losses(_cross_entropy(trace, labels), reconstruction, intermediate)


def pgd_first_pass(net: CNNF, images: Tensor, labels: Tensor, recipe: Recipe, generator: torch.Generator) -> Tensor:
    """L∞ PGD with a random start on the cross-entropy of the first feedforward pass, in eval mode."""
    noise = torch.rand(images.shape, generator=generator, dtype=images.dtype) * 2 - 1
    adversarial = (images + recipe.epsilon * noise.to(images.device)).clamp(0, 1)
    with evaluation_mode(net), torch.enable_grad():
        for _ in range(recipe.pgd_steps):
            adversarial.requires_grad_(True)
            loss = F.cross_entropy(net.trace(adversarial, 0).passes[0].logits, labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, adversarial)
            step = adversarial.detach() + recipe.pgd_step_size * grad.sign()
            adversarial = torch.min(torch.max(step, images - recipe.epsilon), images + recipe.epsilon).clamp(0, 1)
    return adversarial.detach()


def adversarial_losses(net: CNNF, images: Tensor, adversarial: Tensor, labels: Tensor, recipe: Recipe) -> Losses:
    """Section 3.2: CE on clean and adversarial inputs; the adversarial feedback reconstructs clean features."""
    clean = net.trace(images, recipe.cycles)
    attacked = net.trace(adversarial, recipe.cycles)
    cross_entropy = (recipe.clean_weight * _cross_entropy(clean, labels) + _cross_entropy(attacked, labels)) / 2
    reconstruction, intermediate = feedback_losses(attacked, clean.passes[0])
    return Losses(cross_entropy, reconstruction, intermediate)


@dataclass(frozen=True)
class Checkpointing:
    """Where the training state goes after every epoch, whether to continue from it, and the run's identity
    that a resumed run must share."""

    folder: Path
    resume: bool
    identity: dict[str, Any]


def poly_schedule(total_steps: int, power: float) -> Any:
    """The factor (1 − step/total)^power of the learning rate; power 0 keeps it constant."""
    return lambda step: max(0.0, 1 - step / total_steps) ** power


def train_cnnf(net: CNNF, images: Tensor, labels: Tensor, recipe: Recipe, seed: int,
               checkpointing: Checkpointing | None = None) -> list[dict[str, float]]:
    """Adam over every weight with a seeded shuffle; returns each epoch's mean losses.

    With ``checkpointing`` the state is saved after every epoch, and a resumed run continues from the saved
    epoch to the same weights as an uninterrupted one."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    total_steps = recipe.epochs * math.ceil(len(labels) / recipe.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_schedule(total_steps, recipe.lr_power))
    history: list[dict[str, float]] = []
    if checkpointing is not None and checkpointing.resume:
        state = load_state(checkpointing.folder, checkpointing.identity)
        if state.epoch > recipe.epochs:
            raise PcrobustError(f"the saved state has {state.epoch} epochs done, more than epochs={recipe.epochs}")
        net.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        generator.set_state(state.generator)
        history = state.history
    for epoch in range(len(history), recipe.epochs):
        net.train()
        sums = {"cross_entropy": 0.0, "reconstruction": 0.0, "intermediate": 0.0}
        order = torch.randperm(len(labels), generator=generator).split(recipe.batch_size)
        bar = tqdm(order, desc=f"cnnf epoch {epoch + 1}/{recipe.epochs}", leave=False)
        for idx in bar:
            x, y = images[idx], labels[idx]
            if recipe.epsilon > 0:
                losses = adversarial_losses(net, x, pgd_first_pass(net, x, y, recipe, generator), y, recipe)
            else:
                losses = standard_losses(net, x, y, recipe.cycles)
            loss = losses.total(recipe)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            for key in sums:
                sums[key] += getattr(losses, key).item() * len(idx)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        history.append({key: value / len(labels) for key, value in sums.items()})
        if checkpointing is not None:
            save_state(checkpointing.folder, TrainingState(
                checkpointing.identity, epoch + 1, net.state_dict(), optimizer.state_dict(),
                scheduler.state_dict(), generator.get_state(), history))
    net.eval()
    return history


def train_to_checkpoint(request: TrainingRequest, options: Mapping[str, str], dataset: str, model_name: str,
                        architecture: Architecture, timesteps: int) -> Path:
    """A CNN-F of ``architecture`` trained by the recipe of ``options`` on ``dataset``'s train split, seeded by
    the request, saved to ``request.out`` with what made it."""
    recipe = recipe_from_options(options)
    torch.manual_seed(request.seed)
    data = request.datasets.get(dataset).load("train")
    images, labels = data.images, data.labels
    if recipe.train_size:
        images, labels = images[:recipe.train_size], labels[:recipe.train_size]
    net = CNNF(architecture, eta=ETA, default_timesteps=timesteps)
    checkpointing = None
    if request.state_dir is not None:
        identity = {"model": model_name, "architecture": architecture.to_dict(), "dataset": f"{dataset}/train",
                    "seed": request.seed, "eta": ETA, "recipe": {**asdict(recipe), "epochs": None}}
        checkpointing = Checkpointing(request.state_dir, request.resume, identity)
    history = train_cnnf(net, images, labels, recipe, request.seed, checkpointing)
    metadata = {"model": model_name, "seed": request.seed, "dataset": f"{dataset}/train", "recipe": asdict(recipe),
                "eta": ETA, "losses_per_epoch": history, "torch": str(torch.__version__)}
    return save_checkpoint(net, request.out, metadata)
