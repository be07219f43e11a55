"""PC learning in PyTorch (PCX appendix A–B): forward initialisation, T inference steps on the states (SGD with
momentum, the image and the label node clamped), then a weight step (AdamW) on the energy at the relaxed states;
iPC steps the weights after every inference step. A checkpoint is written after every epoch, with the optimiser
state until the last one; ``--resume`` continues an unfinished one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor
from tqdm import tqdm

from pcrobust.errors import PcrobustError
from pcrobust.registry import TrainingRequest
from pcrobust.schema import Schema, validated
from pcrobust.seeding import derived_seed
from pcrobust_pcx.algorithms import Algorithm, Clamp, clamp_for_epoch
from pcrobust_pcx.checkpoint import read_checkpoint, save_checkpoint
from pcrobust_pcx.network import Architecture, Inference, PCClassifier


class Recipe(Schema):
    """Every training setting (``--algorithm`` and ``-o KEY=VALUE`` of ``pcrobust train``)."""

    algorithm: Algorithm = "pc-ce"
    epochs: int = Field(15, ge=1)
    batch_size: int = Field(64, ge=1)
    steps: int = Field(8, ge=1, description="inference steps T per batch")
    state_lr: float = Field(0.1, gt=0, description="SGD step on the states")
    momentum: float = Field(0.5, ge=0, lt=1, description="SGD momentum on the states")
    lr: float = Field(3e-3, gt=0, description="AdamW learning rate of the weights")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    beta0: float = Field(0.3, gt=0, le=1, description="nudging strength |β| in the first epoch")
    beta_increase: float = Field(0.1, ge=0, description="added to |β| after every epoch (capped at 1)")
    hidden: tuple[int, ...] = (96, 64)
    activation: str = "tanh"
    generative_weight: float = Field(0.3, gt=0, description="λ, the weight of the top-down errors")


def recipe_from_options(options: Mapping[str, str]) -> Recipe:
    """A :class:`Recipe` from ``KEY=VALUE`` strings (``hidden=96,64``); unknown keys are one-line errors."""
    data: dict[str, Any] = dict(options)
    if "hidden" in data:
        data["hidden"] = [part for part in str(data["hidden"]).split(",") if part]
    recipe: Recipe = validated(Recipe, data, "training option")
    return recipe


def training_energy(net: PCClassifier, image: Tensor, states: list[Tensor], target: Tensor, clamp: Clamp
                    ) -> tuple[Tensor, Tensor]:
    """Batch means of (bottom-up energy with the clamped label node, weighted top-down energy)."""
    bottom_up = torch.stack(net.bottom_up_errors(image, states)).sum(0) + clamp.energy(target, net.logits_of(states))
    top_down = net.architecture.generative_weight * torch.stack(net.top_down_errors(image, states)).sum(0)
    return bottom_up.mean(), top_down.mean()


def weight_step(net: PCClassifier, optimizer: torch.optim.Optimizer, image: Tensor, states: list[Tensor],
                target: Tensor, clamp: Clamp) -> float:
    """One AdamW step on ∂F/∂θ at the given (fixed) states; the bottom-up gradient is scaled by 1/β (nudging),
    the top-down one is not (its errors do not shrink with β)."""
    fixed = [h.detach() for h in states]
    bottom_up, top_down = training_energy(net, image, fixed, target, clamp)
    optimizer.zero_grad()
    (clamp.gradient_scale * bottom_up + top_down).backward()
    optimizer.step()
    return float((bottom_up + top_down).detach())


def train_batch(net: PCClassifier, optimizer: torch.optim.Optimizer, x: Tensor, labels: Tensor, recipe: Recipe,
                clamp: Clamp) -> float:
    """Forward initialisation, ``recipe.steps`` state steps (and a weight step after each for iPC, else one at
    the end); returns the energy of the last weight step."""
    image = net.flat_image(x)
    with torch.no_grad():
        states = net.forward_states(image)
        logits = net.logits_of(states)
    target = clamp.target(F.one_hot(labels, net.num_classes).to(image.dtype), logits)
    states = [h.clone().requires_grad_(True) for h in states]
    state_optimizer = torch.optim.SGD(states, lr=recipe.state_lr, momentum=recipe.momentum)
    energy = 0.0
    for _ in range(recipe.steps):
        bottom_up, top_down = training_energy(net, image, states, target, clamp)
        state_optimizer.zero_grad()
        (bottom_up + top_down).backward(inputs=states)
        state_optimizer.step()
        if recipe.algorithm == "ipc":
            energy = weight_step(net, optimizer, image, states, target, clamp)
    if recipe.algorithm != "ipc":
        energy = weight_step(net, optimizer, image, states, target, clamp)
    return energy


@dataclass
class Progress:
    """Where training stands: the next epoch and the mean energy of each finished one."""

    epoch: int
    energies: list[float]


def train_epochs(net: PCClassifier, optimizer: torch.optim.Optimizer, images: Tensor, labels: Tensor,
                 recipe: Recipe, seed: int, progress: Progress, out: Path, metadata: dict[str, Any]) -> None:
    """Train from ``progress.epoch`` to ``recipe.epochs``, shuffling by (seed, epoch), checkpointing each epoch."""
    for epoch in range(progress.epoch, recipe.epochs):
        clamp = clamp_for_epoch(recipe.algorithm, epoch, seed, recipe.beta0, recipe.beta_increase)
        generator = torch.Generator().manual_seed(derived_seed(seed, epoch))
        order = torch.randperm(len(labels), generator=generator).split(recipe.batch_size)
        net.train()
        total = 0.0
        bar = tqdm(order, desc=f"pcx {recipe.algorithm} epoch {epoch + 1}/{recipe.epochs}", leave=False)
        for idx in bar:
            energy = train_batch(net, optimizer, images[idx], labels[idx], recipe, clamp)
            total += energy * len(idx)
            bar.set_postfix(energy=f"{energy:.3f}", beta=f"{clamp.beta:g}")
        net.eval()
        progress.epoch, progress.energies = epoch + 1, [*progress.energies, total / len(labels)]
        unfinished = progress.epoch < recipe.epochs  # a finished file keeps the weights alone (it stays small)
        save_checkpoint(net, out, {**metadata, "epochs_done": progress.epoch, "energy_per_epoch": progress.energies},
                        optimizer.state_dict() if unfinished else None)


def train_to_checkpoint(request: TrainingRequest, dataset: str, model_name: str, timesteps: int) -> Path:
    """A network trained by the recipe of the request's options on ``dataset``'s train split, saved (after every
    epoch) to ``request.out`` with its optimiser state; ``request.resume`` continues that file."""
    recipe = recipe_from_options(request.options)
    architecture = Architecture(hidden=recipe.hidden, activation=recipe.activation,
                                generative_weight=recipe.generative_weight)
    data = request.datasets.get(dataset).load("train")
    if tuple(data.images.shape[1:]) != architecture.image_shape or data.num_classes != architecture.classes:
        raise PcrobustError(f"dataset {dataset!r} does not hold 1×28×28 images in 10 classes")
    with torch.random.fork_rng(devices=[]):  # initialisation draws stay inside
        torch.manual_seed(request.seed)
        net = PCClassifier(architecture, Inference(), timesteps)
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    metadata = {"model": model_name, "seed": request.seed, "dataset": f"{dataset}/train",
                "recipe": recipe.model_dump(mode="json"), "inference": asdict(Inference()),
                "torch": str(torch.__version__)}
    progress = Progress(0, [])
    if request.resume:
        progress = resume_from(request.out, net, optimizer, metadata)
    train_epochs(net, optimizer, data.images, data.labels, recipe, request.seed, progress, request.out, metadata)
    return request.out


def resume_from(path: Path, net: PCClassifier, optimizer: torch.optim.Optimizer, metadata: dict[str, Any]) -> Progress:
    """Load ``path``'s weights and optimiser state into ``net``/``optimizer``; the file must come from the same
    recipe (``epochs`` may grow) and seed."""
    blob = read_checkpoint(path, net)
    saved = dict(blob["metadata"])
    same = {key: value for key, value in saved.items() if key not in ("epochs_done", "energy_per_epoch")}
    if {**same, "recipe": {**same["recipe"], "epochs": None}} != {**metadata,
                                                                  "recipe": {**metadata["recipe"], "epochs": None}}:
        raise PcrobustError(f"cannot resume {path}: it was trained with other settings ({saved['recipe']}, seed "
                            f"{saved['seed']})")
    if "optimizer" not in blob:
        raise PcrobustError(f"cannot resume {path}: its training finished ({saved['epochs_done']} epochs), so it "
                            "keeps no optimiser state")
    optimizer.load_state_dict(blob["optimizer"])
    return Progress(int(saved["epochs_done"]), [float(e) for e in saved["energy_per_epoch"]])
