"""The paper's Fashion-MNIST network: 4 conv + 3 linear layers, h after two convolutions (weights of your own,
or the reference code's released checkpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from pcrobust.errors import PcrobustError
from pcrobust.registry import TrainingRequest
from pcrobust_cnnf.checkpoint import load_checkpoint
from pcrobust_cnnf.network import CNNF, Architecture
from pcrobust_cnnf.options import REFERENCE_HELP, parse_eta, reference_path
from pcrobust_cnnf.reference import fmnist_layout, load_reference
from pcrobust_cnnf.training import train_to_checkpoint

MODEL_NAME = "fmnist-cnnf"
ARCHITECTURE = Architecture(channels=(16, 32, 32, 64), pools=(False, False, True, True), hidden=(1000, 128),
                            encode=2)
# The reference network (model_mnist.py, ind=2): no InsNorm on the linear layers, and its feedback restarts at
# the third convolution, so every nonlinearity from the third conv stage on is adaptive (k = 3 here).
REFERENCE_ARCHITECTURE = replace(ARCHITECTURE, encode=3, linear_norm=False)
TIMESTEPS = 1  # the paper's Fashion-MNIST CNN-F runs one feedback iteration


def build(weights: Path | None, options: Mapping[str, str]) -> CNNF:
    eta = parse_eta(options, REFERENCE_HELP)
    reference = reference_path(weights, options)
    if reference is not None:
        net = CNNF(REFERENCE_ARCHITECTURE, eta=eta, default_timesteps=TIMESTEPS)
        load_reference(net, reference, fmnist_layout(REFERENCE_ARCHITECTURE))
        return net.eval()
    if weights is None:
        raise PcrobustError(f"model {MODEL_NAME!r} ships no weights: pass --weights FILE, a checkpoint of "
                            f"'pcrobust train --plugin cnnf --model {MODEL_NAME} -o dataset=NAME', or "
                            "-o reference=FILE, the reference code's CNNF_1_fmnist.pt")
    net = CNNF(ARCHITECTURE, eta=eta, default_timesteps=TIMESTEPS)
    load_checkpoint(net, weights)
    return net.eval()


def weight_files(weights: Path | None, options: Mapping[str, str]) -> list[Path]:
    reference = reference_path(weights, options)
    return [reference] if reference else [weights] if weights else []


def train(request: TrainingRequest) -> Path:
    """Table 1's losses (or adversarial training) on ``-o dataset=NAME`` (28×28 grey images, 10 classes)."""
    options = dict(request.options)
    dataset = options.pop("dataset", "")
    if not dataset:
        raise PcrobustError("training needs -o dataset=NAME (a registered dataset with a train split)")
    return train_to_checkpoint(request, options, dataset, MODEL_NAME, ARCHITECTURE, TIMESTEPS)
