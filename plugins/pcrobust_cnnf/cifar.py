"""The paper's CIFAR-10 CNN-F, a WideResNet-40-2 (h after five blocks, T = 2): random weights, or the reference
code's released checkpoint; for users with CIFAR-10 images and a GPU."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pcrobust.errors import PcrobustError
from pcrobust_cnnf.options import REFERENCE_HELP, parse_eta, reference_path
from pcrobust_cnnf.reference import load_reference, wide_resnet_layout
from pcrobust_cnnf.wide_resnet import WideResNetCNNF, WideResNetShape

MODEL_NAME = "cifar-wrn-cnnf"
SHAPE = WideResNetShape(depth=40, widen=2, num_classes=10, encode=5)  # the reference's evaluated ind=5
TIMESTEPS = 2  # cycles=2 in the reference's CIFAR runs


def build(weights: Path | None, options: Mapping[str, str]) -> WideResNetCNNF:
    """Seeded random weights unless ``-o reference=CNNF_2_cifar.pt`` gives the reference's own."""
    eta = parse_eta(options, REFERENCE_HELP)
    if weights is not None:
        raise PcrobustError(f"model {MODEL_NAME!r} takes -o reference=FILE (the reference code's CNNF_2_cifar.pt), "
                            "not --weights")
    net = WideResNetCNNF(SHAPE, eta=eta, default_timesteps=TIMESTEPS)
    reference = reference_path(weights, options)
    if reference is not None:
        load_reference(net, reference, wide_resnet_layout(SHAPE))
    return net.eval()


def weight_files(weights: Path | None, options: Mapping[str, str]) -> list[Path]:
    reference = reference_path(weights, options)
    return [reference] if reference else []
