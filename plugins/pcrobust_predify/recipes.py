"""PVGG16 and PEfficientNetB0 over torchvision backbones, from local weight files (needs the ``recipes`` extra).

Weights come from the user's disk, never from a hub: either a ``pcrobust-predify/1`` checkpoint (``--weights``),
or the torchvision backbone file (``-o backbone=FILE``) plus the reference feedback files of the Predify
paper (``-o feedback_dir=DIR``: PVGG16's ``*pc{n}_pmodule.pth`` or PEfficientNetB0's ``*pc{n}_*.pth``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pcrobust.errors import PcrobustError, first_line
from pcrobust.weights import load_tensors
from pcrobust_predify.checkpoint import load_checkpoint
from pcrobust_predify.config import load_config, predify, split_options
from pcrobust_predify.network import PredifyNet

FILE_OPTIONS = ("backbone", "feedback_dir")


@dataclass(frozen=True)
class Recipe:
    name: str
    torchvision_builder: str
    config_file: str

    @property
    def config_path(self) -> Path:
        return Path(str(files("pcrobust_predify") / "configs" / self.config_file))


RECIPES = {r.name: r for r in (Recipe("pvgg16", "vgg16", "pvgg16.toml"),
                               Recipe("pefficientnetb0", "efficientnet_b0", "pefficientnetb0.toml"))}


def torchvision_backbone(builder: str, weights: Path | None) -> nn.Module:
    """An untrained torchvision network of the named builder, filled from a local state-dict file."""
    try:
        import torchvision.models
    except ImportError:
        raise PcrobustError("this recipe needs torchvision: pip install 'pcrobust[recipes]'") from None
    net: nn.Module = getattr(torchvision.models, builder)(weights=None)
    if weights is not None:
        try:
            net.load_state_dict(load_tensors(weights))
        except RuntimeError as exc:
            raise PcrobustError(f"{weights} is not a {builder} state dict: {first_line(exc)}") from None
    return net


def reference_predictor_state(blob: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Predictor weights from a reference feedback file: a bare predictor state dict (PVGG16), or
    ``{'pcoderweights': PCoder.state_dict()}`` whose ``pmodule.`` keys hold them (PEfficientNetB0)."""
    if "pcoderweights" in blob:
        inner = blob["pcoderweights"]
        return {k.removeprefix("pmodule."): v for k, v in inner.items() if k.startswith("pmodule.")}
    return dict(blob)


def load_reference_feedback(net: PredifyNet, directory: Path) -> None:
    """Fill every predictor from the reference files ``*pc{n}_*.pth`` (n from 1) in ``directory``."""
    for n, pcoder in enumerate(net.pcoder_list, start=1):
        matches = sorted(directory.glob(f"*pc{n}_*.pth"))
        if not matches:
            raise PcrobustError(f"no feedback file matching '*pc{n}_*.pth' in {directory}")
        state = reference_predictor_state(load_tensors(matches[-1]))
        try:
            pcoder.predictor.load_state_dict(state)
        except RuntimeError as exc:
            raise PcrobustError(f"{matches[-1]} does not fit pcoder {n}: {first_line(exc)}") from None


def build_recipe(recipe: Recipe, weights: Path | None, options: Mapping[str, str]) -> PredifyNet:
    """The recipe's network with local weights; β/λ/α options apply to every pcoder after loading."""
    hps, files_given = split_options(options, FILE_OPTIONS)
    paths = {k: Path(v) for k, v in files_given.items()}
    if weights is None and set(paths) != set(FILE_OPTIONS):
        raise PcrobustError(f"{recipe.name} needs --weights CHECKPOINT, or -o backbone=FILE and -o feedback_dir=DIR")
    net = predify(torchvision_backbone(recipe.torchvision_builder, paths.get("backbone")),
                  load_config(recipe.config_path), hyperparameters=hps)
    if weights is not None:
        load_checkpoint(net, weights)
    else:
        load_reference_feedback(net, paths["feedback_dir"])
    return net.eval()


def weight_files(weights: Path | None, options: Mapping[str, str]) -> list[Path]:
    if weights is not None:
        return [weights]
    _, paths = split_options(options, FILE_OPTIONS)
    feedback = sorted(Path(paths["feedback_dir"]).glob("*pc*_*.pth")) if "feedback_dir" in paths else []
    return ([Path(paths["backbone"])] if "backbone" in paths else []) + feedback
