"""The resumable state of a CNN-F training run, written after every epoch and loaded with ``weights_only=True``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from pcrobust.errors import PcrobustError
from pcrobust.weights import load_format, save_tensors

FORMAT = "pcrobust-cnnf-training/1"
FILE_NAME = "state.pt"


@dataclass(frozen=True)
class TrainingState:
    """Everything an interrupted run needs to continue exactly: the weights, the optimiser and scheduler, the
    epochs done with their losses, the shuffle/attack generator, and what the run was made of (``identity``)."""

    identity: dict[str, Any]
    epoch: int
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: Tensor
    history: list[dict[str, float]]


def save_state(folder: Path, state: TrainingState) -> Path:
    """Replace ``folder/state.pt`` atomically: a run killed while writing keeps the previous epoch's state."""
    path = folder / FILE_NAME
    partial = save_tensors({"format": FORMAT, "identity": state.identity, "epoch": state.epoch,
                            "model": state.model, "optimizer": state.optimizer, "scheduler": state.scheduler,
                            "generator": state.generator, "history": state.history}, folder / f"{FILE_NAME}.partial")
    os.replace(partial, path)
    return path


def load_state(folder: Path, identity: dict[str, Any]) -> TrainingState:
    """The state in ``folder``, which must come from a run of the same ``identity`` (model, data, seed, recipe
    apart from the number of epochs)."""
    path = folder / FILE_NAME
    if not path.exists():
        raise PcrobustError(f"nothing to resume: {path} does not exist (run once with --state-dir {folder})")
    blob = load_format(path, FORMAT, "training state")
    if blob["identity"] != identity:
        differing = sorted(key for key in {*identity, *blob["identity"]}
                           if identity.get(key) != blob["identity"].get(key))
        raise PcrobustError(f"training state {path} comes from another run (its {differing[0]} differs): resume "
                            "with the same model, seed and options, or start afresh")
    return TrainingState(blob["identity"], int(blob["epoch"]), blob["model"], blob["optimizer"], blob["scheduler"],
                         blob["generator"], list(blob["history"]))
